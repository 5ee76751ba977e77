"""The root types: Query, Mutation, Subscription, and their inputs."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry

from common import domain
from domain.validation import PersonFields
from live.updates import LiveUpdate, send_directly
from resolvers import credentials, mutations, queries, scenarios, subscriptions
from resolvers.context import Info
from schema.delivery_log import DeliveryLogQueries
from schema.team import TeamMutation, TeamQuery, TeamSubscription
from schema.types import (
    Account,
    Bounce,
    Comment,
    Connection,
    Delivery,
    DeliveryStatus,
    DeliveryUpdate,
    Person,
    Scenario,
    Suppression,
    Task,
    id_of,
    task_connection,
)
from schema.webhooks import WebhookMutations, WebhookQueries

_IDEMPOTENCY_KEY = (
    "Makes a retry safe: the same key within 24 hours returns the first result and sends "
    "nothing again; the same key with other input is IDEMPOTENCY_KEY_REUSED. Up to 255 "
    "printable ASCII characters, scoped to the account. The `Idempotency-Key` HTTP header "
    "does the same for a request with one such mutation."
)


def idempotency_key() -> Any:
    """The optional `idempotencyKey` input field (an argument, for resendDelivery)."""
    return strawberry.field(default=None, description=_IDEMPOTENCY_KEY)


@strawberry.input
class AddPersonInput:
    name: str
    kind: domain.PersonKind = domain.PersonKind.CONTACT
    email: str | None = None
    telegram_chat_id: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    disabled_channels: list[domain.Channel] = strawberry.field(default_factory=list)
    tracking_consent: domain.TrackingConsent = domain.TrackingConsent.UNKNOWN
    idempotency_key: str | None = idempotency_key()


@strawberry.input(
    description="Only the fields given change; null clears an address (and "
    "`disabledChannels`); `name` and `trackingConsent` cannot be null."
)
class UpdatePersonInput:
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    telegram_chat_id: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    webhook_url: str | None = strawberry.UNSET
    disabled_channels: list[domain.Channel] | None = strawberry.UNSET
    tracking_consent: domain.TrackingConsent | None = strawberry.UNSET


@strawberry.input(
    description="Provider credentials. Write-only: never returned. Only the fields given "
    "change; null or an empty string clears one."
)
class ChannelCredentialsInput:
    telegram_bot_token: str | None = strawberry.UNSET
    whatsapp_phone_number_id: str | None = strawberry.UNSET
    whatsapp_access_token: str | None = strawberry.UNSET
    whatsapp_app_secret: str | None = strawberry.UNSET
    whatsapp_verify_token: str | None = strawberry.UNSET
    twilio_account_sid: str | None = strawberry.UNSET
    twilio_auth_token: str | None = strawberry.UNSET
    twilio_from_number: str | None = strawberry.UNSET
    webhook_signing_secret: str | None = strawberry.UNSET


def _given(input: object) -> dict[str, Any]:
    """The fields of an input object the client actually sent."""
    return {name: value for name, value in vars(input).items() if value is not strawberry.UNSET}


@strawberry.input
class CreateTaskInput:
    title: str
    subscriber_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    idempotency_key: str | None = idempotency_key()


@strawberry.input
class AddCommentInput:
    task_id: strawberry.ID
    body: str
    idempotency_key: str | None = idempotency_key()


@strawberry.input(
    description="Only the fields given change; null clears `smtpRelay` (the system's relay)."
)
class UpdateAccountInput:
    open_tracking: bool | None = strawberry.UNSET
    show_all_recipients: bool | None = strawberry.UNSET
    smtp_relay: str | None = strawberry.UNSET
    require_tracking_consent: bool | None = strawberry.UNSET
    count_machine_opens: bool | None = strawberry.UNSET


@strawberry.input
class CreateScenarioInput:
    name: str
    trigger: domain.ScenarioTrigger
    action: domain.ScenarioAction
    template: str
    keyword: str | None = None
    person_id: strawberry.ID | None = None


@strawberry.type
class Query(TeamQuery, WebhookQueries, DeliveryLogQueries):
    @strawberry.field
    async def viewer(self, info: Info) -> Person:
        return Person.from_row(await queries.viewer(info))

    @strawberry.field
    async def account(self, info: Info) -> Account:
        return Account.from_row(await queries.account(info))

    @strawberry.field
    async def people(self, info: Info) -> list[Person]:
        return [Person.from_row(row) for row in await queries.people(info)]

    @strawberry.field
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        row = await queries.task(info, id)
        return Task(row=row) if row is not None else None

    @strawberry.field
    async def tasks(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Task]:
        page = await queries.tasks_page(info, first, after)
        return task_connection(page.rows, page.has_next)

    @strawberry.field
    async def scenarios(self, info: Info) -> list[Scenario]:
        return [Scenario.from_row(row) for row in await scenarios.scenarios(info)]

    @strawberry.field
    async def suppressions(self, info: Info) -> list[Suppression]:
        return [Suppression.from_row(row) for row in await queries.suppressions(info)]

    @strawberry.field
    async def bounces(self, info: Info, unparsed_only: bool = False) -> list[Bounce]:
        return [Bounce.from_row(row) for row in await queries.bounces(info, unparsed_only)]

    @strawberry.field
    async def delivery(self, info: Info, id: strawberry.ID) -> Delivery | None:
        row = await queries.delivery(info, id)
        return Delivery(row=row) if row is not None else None


@strawberry.type
class Mutation(TeamMutation, WebhookMutations):
    @strawberry.mutation
    async def add_person(self, info: Info, input: AddPersonInput) -> Person:
        given = _given(input)
        kind = domain.PersonKind(given.pop("kind"))
        key = given.pop("idempotency_key", None)
        row = await mutations.add_person(info, kind, PersonFields.validate(**given), key)
        return Person.from_row(row)

    @strawberry.mutation
    async def update_person(
        self, info: Info, id: strawberry.ID, input: UpdatePersonInput
    ) -> Person:
        given = _given(input)
        if "disabled_channels" in given and given["disabled_channels"] is None:
            given["disabled_channels"] = []
        row = await mutations.update_person(info, id, PersonFields.validate(**given))
        return Person.from_row(row)

    @strawberry.mutation
    async def set_channel_credentials(self, info: Info, input: ChannelCredentialsInput) -> Account:
        return Account.from_row(await credentials.set_channel_credentials(info, _given(input)))

    @strawberry.mutation
    async def mark_read(self, info: Info, delivery_id: strawberry.ID) -> Delivery:
        return Delivery(row=await mutations.mark_read(info, delivery_id))

    @strawberry.mutation
    async def create_task(self, info: Info, input: CreateTaskInput) -> Task:
        task_id = await mutations.create_task(
            info, input.title, input.subscriber_ids, input.idempotency_key
        )
        return Task(row=await queries.fresh_task(info, task_id))

    @strawberry.mutation
    async def add_comment(self, info: Info, input: AddCommentInput) -> Comment:
        comment_id = await mutations.add_comment(
            info, input.task_id, input.body, input.idempotency_key
        )
        return Comment(row=await queries.fresh_comment(info, comment_id))

    @strawberry.mutation
    async def resend_delivery(
        self,
        info: Info,
        id: strawberry.ID,
        idempotency_key: Annotated[
            str | None, strawberry.argument(description=_IDEMPOTENCY_KEY)
        ] = None,
    ) -> Delivery:
        return Delivery(row=await mutations.resend_delivery(info, id, idempotency_key))

    @strawberry.mutation
    async def update_account(self, info: Info, input: UpdateAccountInput) -> Account:
        return Account.from_row(await mutations.update_account(info, _given(input)))

    @strawberry.mutation
    async def create_scenario(self, info: Info, input: CreateScenarioInput) -> Scenario:
        row = await scenarios.create_scenario(
            info,
            name=input.name,
            trigger=domain.ScenarioTrigger(input.trigger),
            keyword=input.keyword,
            action=domain.ScenarioAction(input.action),
            person_id=input.person_id,
            template=input.template,
        )
        return Scenario.from_row(row)

    @strawberry.mutation
    async def delete_scenario(self, info: Info, id: strawberry.ID) -> bool:
        return await scenarios.delete_scenario(info, id)

    @strawberry.mutation
    async def lift_suppression(self, info: Info, channel: domain.Channel, address: str) -> bool:
        return await mutations.lift_suppression(info, domain.Channel(channel), address)


@strawberry.type
class Subscription(TeamSubscription):
    @strawberry.subscription
    async def delivery_updated(
        self,
        info: Info,
        task_id: strawberry.ID | None = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="A `cursor` from an earlier update: what came after it first."
            ),
        ] = None,
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        async for update in subscriptions.delivery_updates(info, task_id, after):
            if not await send_directly(update):
                yield update.view(_delivery_update)


def _delivery_update(update: LiveUpdate) -> DeliveryUpdate:
    status = DeliveryStatus.from_rows(update.status_rows)
    assert status is not None, "the changed delivery is among its target's"
    return DeliveryUpdate(
        delivery=Delivery(row=update.delivery),
        task_id=strawberry.ID(str(update.delivery.task_id)),
        comment_id=id_of(update.delivery.comment_id),
        status=status,
        cursor=update.cursor,
        shared=update.shared,
    )
