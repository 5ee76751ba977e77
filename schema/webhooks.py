"""Status webhooks in the schema: the endpoint, its attempt log, and the queries and
mutations, as mixins that Query and Mutation (schema/operations.py) inherit."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from common import domain
from db.records import WebhookAttemptRecord, WebhookEndpointRecord
from domain.webhook_events import WebhookEventType, event_id
from resolvers import webhooks
from resolvers.context import Info
from schema.types import Connection, Edge, connection_of, id_of

strawberry.enum(WebhookEventType, description="Which status changes an endpoint receives.")


@strawberry.type(description="Where an account's delivery status changes are sent.")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    events: list[WebhookEventType]
    channels: list[domain.Channel] = strawberry.field(
        description="The channels whose deliveries are reported; empty: every channel."
    )
    enabled: bool
    disabled_at: dt.datetime | None
    disabled_reason: str | None = strawberry.field(
        description="Why it was disabled: by a user, a 410 answer, a URL that cannot be "
        "used, or failures for WEBHOOK_DISABLE_AFTER_SECONDS (3 days) in a row."
    )
    failing_since: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: WebhookEndpointRecord) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            events=[WebhookEventType(t) for t in row.event_types],
            channels=[domain.Channel(c) for c in row.channels],
            enabled=row.disabled_at is None,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            created_at=row.created_at,
        )


@strawberry.type
class WebhookEndpointSecret:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="The signing secret (whsec_…), shown only now: give it to your "
        "Standard Webhooks library to verify each request."
    )


@strawberry.type(description="One attempt to send one event.")
class WebhookAttempt:
    id: strawberry.ID
    event_id: str = strawberry.field(description="The webhook-id the receiver saw.")
    event_type: WebhookEventType
    delivery_id: strawberry.ID | None
    at: dt.datetime
    status_code: int | None
    latency_ms: float
    response: str | None = strawberry.field(description="The first KiB of the answer.")
    error: str | None
    succeeded: bool

    @classmethod
    def from_row(cls, row: WebhookAttemptRecord) -> WebhookAttempt:
        return cls(
            id=strawberry.ID(str(row.id)),
            event_id=event_id(row.event_id),
            event_type=WebhookEventType(row.type),
            delivery_id=id_of(row.delivery_id),
            at=row.at,
            status_code=row.status_code,
            latency_ms=round(row.latency_ms, 3),
            response=row.response,
            error=row.error,
            succeeded=row.succeeded,
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    events: list[WebhookEventType]
    channels: list[domain.Channel] = strawberry.field(default_factory=list)


@strawberry.input(description="Only the fields given change.")
class UpdateWebhookEndpointInput:
    url: str | None = strawberry.UNSET
    events: list[WebhookEventType] | None = strawberry.UNSET
    channels: list[domain.Channel] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET


def _with_secret(found: webhooks.EndpointWithSecret) -> WebhookEndpointSecret:
    return WebhookEndpointSecret(
        endpoint=WebhookEndpoint.from_row(found.endpoint), secret=found.secret
    )


@strawberry.type
class WebhookQueries:
    @strawberry.field
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        return [WebhookEndpoint.from_row(row) for row in await webhooks.endpoints(info)]

    # An endpoint's attempts, newest first.
    @strawberry.field
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        failed_only: bool = False,
    ) -> Connection[WebhookAttempt]:
        page = await webhooks.attempts(info, endpoint_id, first, after, failed_only)
        edges = [Edge(node=WebhookAttempt.from_row(r), cursor=str(r.id)) for r in page.rows]
        return connection_of(edges, page.has_next)


@strawberry.type
class WebhookMutations:
    @strawberry.mutation
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> WebhookEndpointSecret:
        found = await webhooks.create_endpoint(info, input.url, input.events, input.channels)
        return _with_secret(found)

    @strawberry.mutation
    async def update_webhook_endpoint(
        self, info: Info, id: strawberry.ID, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpoint:
        given = {k: v for k, v in vars(input).items() if v is not strawberry.UNSET}
        return WebhookEndpoint.from_row(await webhooks.update_endpoint(info, id, given))

    @strawberry.mutation
    async def disable_webhook_endpoint(self, info: Info, id: strawberry.ID) -> WebhookEndpoint:
        return WebhookEndpoint.from_row(await webhooks.disable_endpoint(info, id))

    @strawberry.mutation
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> bool:
        return await webhooks.delete_endpoint(info, id)

    # A new secret; the previous one keeps signing too, for 24 hours.
    @strawberry.mutation
    async def rotate_webhook_secret(self, info: Info, id: strawberry.ID) -> WebhookEndpointSecret:
        return _with_secret(await webhooks.rotate_secret(info, id))

    # Send the endpoint's events since a time, or after an event id (evt_…), again: in
    # order, under the same ids. Returns how many.
    @strawberry.mutation
    async def replay_webhook_events(
        self,
        info: Info,
        endpoint_id: strawberry.ID,
        since: dt.datetime | None = None,
        after: Annotated[str | None, strawberry.argument(description="An event id.")] = None,
    ) -> int:
        return await webhooks.replay(info, endpoint_id, since, after)
