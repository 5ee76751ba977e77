"""Writing: people, tasks, comments, resends, account settings.

Each mutation validates first, then writes in one transaction, then publishes what
changed and wakes the in-process worker.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError

from broadcast import publish_changes
from channels.addresses import is_blocked, literal_address
from channels.email.sender import MASK, SmtpServer
from common.domain import (
    Channel,
    DeliveryState,
    NotificationKind,
    PersonKind,
    ScenarioTrigger,
)
from common.settings import Settings
from common.time import utcnow
from db import accounts as db_accounts
from db import deliveries as db_deliveries
from db import outbox
from db import suppressions as db_suppressions
from db import tasks as db_tasks
from db.records import AccountRecord, DeliveryRow, PersonRecord
from domain.channels import configured_channels
from domain.notifications import enqueue_notification
from domain.recipients import message_id_domain
from domain.roles import NEWCOMER
from domain.scenarios import fire_scenarios
from domain.text import one_line
from domain.validation import (
    PersonFields,
    not_null,
    optional_line,
    validate_body,
    validate_title,
)
from resolvers.context import Info, parse_id
from resolvers.errors import (
    address_suppressed,
    bad_input,
    duplicate_address,
    forbidden,
    not_found,
)
from resolvers.idempotency import remember, replayed, request_key
from resolvers.queries import existing_people, require_within_history
from resolvers.roles import may_edit_person, require_manager


async def add_person(
    info: Info, kind: PersonKind, fields: PersonFields, idempotency_key: str | None = None
) -> PersonRecord:
    viewer = info.context.require_viewer()
    role = None
    if kind is PersonKind.EMPLOYEE:
        viewer, role = require_manager(info, "Adding an employee"), NEWCOMER.value
    key = request_key(info, "addPerson", idempotency_key, {"kind": kind, **fields.values})
    try:
        async with info.context.db.write() as conn:
            if (first := await replayed(conn, key, utcnow())) is not None:
                found = await db_accounts.people_by_ids(conn, viewer.account_id, [first])
                if first not in found:
                    raise not_found("person")
                return found[first]
            row = await db_accounts.add_person(
                conn, account_id=viewer.account_id, kind=kind, role=role, **fields.values
            )
            await remember(conn, key, row.id)
            return row
    except db_accounts.AddressTaken as taken:
        raise _duplicate(taken) from None


async def update_person(info: Info, person_id: str, fields: PersonFields) -> PersonRecord:
    viewer = info.context.require_viewer()
    parsed = parse_id(person_id, "person")
    await may_edit_person(info, parsed)
    try:
        async with info.context.db.write() as conn:
            row = await db_accounts.update_person(conn, viewer.account_id, parsed, fields.values)
    except db_accounts.AddressTaken as taken:
        raise _duplicate(taken) from None
    if row is None:
        raise not_found("person")
    info.context.reset_loaders()
    return row


def _duplicate(taken: db_accounts.AddressTaken) -> GraphQLError:
    return duplicate_address(taken.column, str(taken.holder.id), taken.holder.name)


async def create_task(
    info: Info, title: str, subscriber_ids: Sequence[str], idempotency_key: str | None = None
) -> uuid.UUID:
    viewer = info.context.require_viewer()
    title = validate_title(title)
    subscribers = await existing_people(info, subscriber_ids, "subscriberIds")
    key = request_key(
        info,
        "createTask",
        idempotency_key,
        {"title": title, "subscriberIds": [row.id for row in subscribers]},
    )
    account = await info.context.account()
    now = utcnow()
    async with info.context.db.write() as conn:
        if (first := await replayed(conn, key, now)) is not None:
            return first
        task_id = await db_tasks.insert_task(
            conn,
            account_id=viewer.account_id,
            title=title,
            created_by=viewer.person_id,
            subscriber_ids=[row.id for row in subscribers],
            now=now,
        )
        changes = await enqueue_notification(
            conn,
            account=account,
            task_id=task_id,
            comment_id=None,
            kind=NotificationKind.TASK_CREATED,
            recipients=[row for row in subscribers if row.id != viewer.person_id],
            configured=await configured_channels(conn, viewer.account_id),
            message_id_domain=message_id_domain(info.context.services.settings.mail_from),
            now=now,
        )
        task = await db_tasks.get_task(conn, viewer.account_id, task_id)
        assert task is not None
        changes += await fire_scenarios(
            conn,
            account=account,
            task=task,
            subscribers=subscribers,
            triggers={ScenarioTrigger.TASK_CREATED},
            comment=None,
            message_id_domain=message_id_domain(info.context.services.settings.mail_from),
            now=now,
            author_id=viewer.person_id,
        )
        await remember(conn, key, task_id)
    await _after_write(info, changes)
    return task_id


async def add_comment(
    info: Info, task_id: str, body: str, idempotency_key: str | None = None
) -> uuid.UUID:
    viewer = info.context.require_viewer()
    body = validate_body(body)
    task = await info.context.loaders.task.load(parse_id(task_id, "task"))
    if task is None:
        raise not_found("task")
    key = request_key(info, "addComment", idempotency_key, {"taskId": task.id, "body": body})
    account = await info.context.account()
    subscriber_ids = await info.context.loaders.subscriber_ids.load(task.id)
    subscribers = [
        row for row in await info.context.loaders.person.load_many(subscriber_ids) if row
    ]
    recipients = [row for row in subscribers if row.id != viewer.person_id]
    now = utcnow()
    async with info.context.db.write() as conn:
        if (first := await replayed(conn, key, now)) is not None:
            return first
        comment_id = await db_tasks.insert_comment(
            conn,
            account_id=viewer.account_id,
            task_id=task.id,
            author_id=viewer.person_id,
            body=body,
            is_system=False,
            now=now,
        )
        changes = await enqueue_notification(
            conn,
            account=account,
            task_id=task.id,
            comment_id=comment_id,
            kind=NotificationKind.COMMENT_ADDED,
            recipients=recipients,
            configured=await configured_channels(conn, viewer.account_id),
            message_id_domain=message_id_domain(info.context.services.settings.mail_from),
            now=now,
        )
        changes += await fire_scenarios(
            conn,
            account=account,
            task=task,
            subscribers=subscribers,
            triggers={ScenarioTrigger.COMMENT_ADDED, ScenarioTrigger.KEYWORD},
            comment=body,
            message_id_domain=message_id_domain(info.context.services.settings.mail_from),
            now=now,
            author_id=viewer.person_id,
        )
        await remember(conn, key, comment_id)
    await _after_write(info, changes)
    return comment_id


async def resend_delivery(
    info: Info, delivery_id: str, idempotency_key: str | None = None
) -> DeliveryRow:
    viewer = info.context.require_viewer()
    parsed = parse_id(delivery_id, "delivery")
    await info.context.require_tracking()
    key = request_key(info, "resendDelivery", idempotency_key, {"id": parsed})
    now = utcnow()
    async with info.context.db.write() as conn:
        if await replayed(conn, key, now) is not None:
            # The same delivery, as it is now (the retry must not fail on "not FAILED").
            replay = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
            if replay is None:
                raise not_found("delivery")
            await require_within_history(info, replay)
            return replay
        row = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
        if row is None:
            raise not_found("delivery")
        await require_within_history(info, row)
        if row.state != DeliveryState.FAILED.value:
            raise bad_input(
                f"Only a failed delivery can be resent; this one is {row.state}.", field="id"
            )
        suppression = await db_suppressions.find(conn, viewer.account_id, row.channel, row.address)
        if suppression is not None:
            raise address_suppressed(
                row.channel, suppression.address, suppression.reason, suppression.created_at
            )
        # A new attempt series: the old attempts and error stay in the event history.
        await db_deliveries.transition(
            conn,
            [row.id],
            DeliveryState.QUEUED,
            {
                "attempts": 0,
                "failed_at": None,
                "error_code": None,
                "error_message": None,
                "error_permanent": None,
            },
        )
        await db_deliveries.add_event(conn, [row.id], "resend_requested", now)
        await outbox.enqueue(conn, row.message_id, now)
        await remember(conn, key, row.id)
        updated = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
    assert updated is not None
    await _after_write(info, [db_deliveries.change_of(updated)])
    return updated


async def mark_read(info: Info, delivery_id: str) -> DeliveryRow:
    """The viewer read one of their in-app notifications."""
    viewer = info.context.require_viewer()
    parsed = parse_id(delivery_id, "delivery")
    now = utcnow()
    async with info.context.db.write() as conn:
        row = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
        if row is None:
            raise not_found("delivery")
        if row.channel != Channel.IN_APP.value:
            raise bad_input("Only in-app notifications are marked read.", field="deliveryId")
        if row.recipient_id != viewer.person_id:
            raise forbidden("Only the recipient marks a notification read.")
        moved = await db_deliveries.transition(
            conn,
            [row.id],
            DeliveryState.READ,
            {"read_at": now, "sent_at": row.sent_at or now},
        )
        if moved:
            await db_deliveries.add_event(conn, [row.id], "read", now)
        updated = await db_deliveries.get_delivery(conn, viewer.account_id, parsed)
    assert updated is not None
    if moved:
        await publish_changes(info.context.services.broadcast, [db_deliveries.change_of(updated)])
    return updated


_ACCOUNT_FLAGS = ("open_tracking", "show_all_recipients", "require_tracking_consent",
                  "count_machine_opens")  # fmt: skip


async def update_account(info: Info, given: dict[str, Any]) -> AccountRecord:
    """Change the settings given; a flag left out stays as it is."""
    viewer = require_manager(info, "Changing account settings")
    values: dict[str, Any] = {}
    for name in _ACCOUNT_FLAGS:
        if name not in given:
            continue
        not_null(name, given[name])
        values[name] = given[name]
    relay = optional_line(given["smtp_relay"], "smtpRelay") if "smtp_relay" in given else None
    server = None if relay is None else _relay(relay, info.context.services.settings)
    async with info.context.db.write() as conn:
        if "smtp_relay" in given:
            if server is not None and server.password == MASK:
                relay = _keep_password(
                    server, (await db_accounts.get_account(conn, viewer.account_id)).smtp_relay
                )
            values["smtp_relay"] = relay
        row = await db_accounts.update_account(conn, viewer.account_id, values)
    info.context.reset_loaders()
    return row


def _relay(url: str, settings: Settings) -> SmtpServer:
    """The account's relay, checked: a valid SMTP URL of bounded length, and not an IP
    literal in a private network (a host name is checked when mail is sent, against what
    it resolves to then: channels/addresses.py)."""
    try:
        server = SmtpServer.from_url(url)
    except ValueError as error:
        raise bad_input(f"smtpRelay: {error}.", field="smtpRelay") from None
    if not settings.allow_private_networks:
        literal = literal_address(server.host)
        if literal is not None and is_blocked(literal):
            raise bad_input(
                f"smtpRelay: {literal} is not a public address; the account's SMTP relay "
                "must be a public server.",
                field="smtpRelay",
            )
    return server


def _keep_password(given: SmtpServer, stored_url: str | None) -> str:
    """The stored URL, when the client sent back the masked URL it was shown (the
    password is write-only): the same server and login keep their password."""
    stored = None
    if stored_url is not None:
        with contextlib.suppress(ValueError):
            stored = SmtpServer.from_url(stored_url)
    if stored_url is None or stored is None or not stored.same_place(given):
        raise bad_input(
            f"smtpRelay: the password {MASK} is the mask the API shows; send the real "
            "password (it is write-only).",
            field="smtpRelay",
        )
    return stored_url


async def lift_suppression(info: Info, channel: Channel, address: str) -> bool:
    viewer = require_manager(info, "Lifting a suppression")
    async with info.context.db.write() as conn:
        return await db_suppressions.lift(
            conn, viewer.account_id, channel.value, one_line(address, "address")
        )


async def _after_write(info: Info, changes: Sequence[Any]) -> None:
    services = info.context.services
    if changes:
        services.wake_worker()
    await publish_changes(services.broadcast, changes)
