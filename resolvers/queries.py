"""Reading the viewer's tasks, comments and their delivery status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from common.cursors import InvalidCursor
from common.domain import Channel, Plan
from db import accounts as db_accounts
from db import bounces as db_bounces
from db import deliveries as db_deliveries
from db import suppressions as db_suppressions
from db import tasks as db_tasks
from db.records import (
    AccountRecord,
    BounceRecord,
    CommentRecord,
    DeliveryRow,
    PersonRecord,
    StatusCount,
    SuppressionRecord,
    TaskRecord,
)
from domain import channels as domain_channels
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, history_expired, not_found

DEFAULT_PAGE = 50
MAX_PAGE = 200


def page_size(first: int | None, field: str = "first") -> int:
    if first is None:
        return DEFAULT_PAGE
    if not 0 <= first <= MAX_PAGE:
        raise bad_input(f"'{field}' must be between 0 and {MAX_PAGE}.", field=field)
    return first


async def account(info: Info) -> AccountRecord:
    return await info.context.account()


async def viewer(info: Info) -> PersonRecord:
    person = await info.context.loaders.person.load(info.context.require_viewer().person_id)
    assert person is not None, "a token's person is never deleted while in use"
    return person


async def people(info: Info) -> list[PersonRecord]:
    async with info.context.db.read() as conn:
        return await db_accounts.list_people(conn, info.context.require_viewer().account_id)


async def account_channels(info: Info) -> frozenset[Channel]:
    """The channels the viewer's account can send on (the rule: domain/channels.py)."""
    async with info.context.db.read() as conn:
        return await domain_channels.configured_channels(
            conn, info.context.require_viewer().account_id
        )


async def suppressions(info: Info) -> list[SuppressionRecord]:
    async with info.context.db.read() as conn:
        return await db_suppressions.list_suppressions(
            conn, info.context.require_viewer().account_id
        )


async def bounces(info: Info, unparsed_only: bool) -> list[BounceRecord]:
    await info.context.require_tracking()
    async with info.context.db.read() as conn:
        return await db_bounces.list_bounces(
            conn, info.context.require_viewer().account_id, unparsed_only=unparsed_only
        )


async def task(info: Info, task_id: str) -> TaskRecord | None:
    return await info.context.loaders.task.load(parse_id(task_id, "task"))


async def require_task(info: Info, task_id: str) -> TaskRecord:
    row = await task(info, task_id)
    if row is None:
        raise not_found("task")
    return row


async def existing_people(info: Info, ids: Sequence[str], field: str) -> list[PersonRecord]:
    """The people these ids name, each once; BAD_USER_INPUT naming every id that is not
    a live person of the account (an erased person is nobody now)."""
    parsed = list(dict.fromkeys(parse_id(value, "person") for value in ids))
    found = await info.context.loaders.person.load_many(parsed)
    missing = [
        str(pid)
        for pid, row in zip(parsed, found, strict=True)
        if row is None or row.erased_at is not None
    ]
    if missing:
        raise bad_input(f"No person with id {', '.join(missing)} in your account.", field=field)
    return [row for row in found if row is not None]


async def fresh_task(info: Info, task_id: uuid.UUID) -> TaskRecord:
    """A task just written, read past the loaders' cache."""
    info.context.reset_loaders()
    row = await info.context.loaders.task.load(task_id)
    assert row is not None
    return row


async def fresh_comment(info: Info, comment_id: uuid.UUID) -> CommentRecord:
    async with info.context.db.read() as conn:
        rows = await db_tasks.comments_by_ids(
            conn, info.context.require_viewer().account_id, [comment_id]
        )
    info.context.reset_loaders()
    return rows[comment_id]


async def tasks_page(info: Info, first: int | None, after: str | None) -> db_tasks.Page[TaskRecord]:
    viewer_ = info.context.require_viewer()
    try:
        async with info.context.db.read() as conn:
            return await db_tasks.page_tasks(
                conn, viewer_.account_id, first=page_size(first), after=after
            )
    except InvalidCursor as error:
        raise bad_input(str(error), field="after") from None


async def comments_page(
    info: Info,
    task_id: uuid.UUID,
    include_system: bool,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> db_tasks.Page[CommentRecord]:
    """Forwards from the oldest (`first`/`after`) or backwards from the newest
    (`last`/`before`); a page is oldest first either way."""
    backwards = last is not None or before is not None
    if backwards and (first is not None or after is not None):
        raise bad_input("Page forwards (first, after) or backwards (last, before), not both.")
    try:
        async with info.context.db.read() as conn:
            if backwards:
                return await db_tasks.page_comments_backwards(
                    conn,
                    task_id,
                    include_system=include_system,
                    last=page_size(last, "last"),
                    before=before,
                )
            return await db_tasks.page_comments(
                conn, task_id, include_system=include_system, first=page_size(first), after=after
            )
    except InvalidCursor as error:
        raise bad_input(str(error), field="before" if backwards else "after") from None


async def subscribers(info: Info, task_id: uuid.UUID) -> list[PersonRecord]:
    ids = await info.context.loaders.subscriber_ids.load(task_id)
    rows = await info.context.loaders.person.load_many(ids)
    return [row for row in rows if row is not None]


async def task_deliveries(info: Info, task_id: uuid.UUID) -> Sequence[DeliveryRow] | None:
    """The deliveries behind a task's icon; None where the plan has no tracking."""
    if not await info.context.tracking_allowed():
        return None
    return await info.context.visible(await info.context.loaders.task_deliveries.load(task_id))


async def comment_deliveries(info: Info, comment_id: uuid.UUID) -> Sequence[DeliveryRow] | None:
    if not await info.context.tracking_allowed():
        return None
    return await info.context.visible(
        await info.context.loaders.comment_deliveries.load(comment_id)
    )


async def task_status_counts(
    info: Info, task_id: uuid.UUID, include_system: bool
) -> list[StatusCount] | None:
    """The counts behind a task's overall icon (its own notification and its comments');
    None where the plan has no tracking."""
    if not await info.context.tracking_allowed():
        return None
    rows = await info.context.loaders.task_status_counts.load(task_id)
    return [row for row in rows if include_system or not row.is_system]


async def all_task_deliveries(
    info: Info, task_id: uuid.UUID, include_system: bool
) -> Sequence[DeliveryRow]:
    """The deliveries behind a task's overall icon."""
    rows = await info.context.loaders.all_task_deliveries.load(task_id)
    return await info.context.visible([row for row in rows if include_system or not row.is_system])


async def suppression(info: Info, channel: str, address: str) -> SuppressionRecord | None:
    """Why this address may not be sent to on this channel, if it may not."""
    return await info.context.loaders.suppression.load((channel, address))


async def delivery(info: Info, delivery_id: str) -> DeliveryRow | None:
    """A delivery of the viewer's account; a clear error on a plan without tracking."""
    parsed = parse_id(delivery_id, "delivery")
    async with info.context.db.read() as conn:
        row = await db_deliveries.get_delivery(
            conn, info.context.require_viewer().account_id, parsed
        )
    if row is None:
        return None
    await info.context.require_tracking()
    await require_within_history(info, row)
    return row


async def require_within_history(info: Info, row: DeliveryRow) -> None:
    if row.notified_at < await info.context.history_cutoff():
        account = await info.context.account()
        raise history_expired(info.context.services.settings.history_days(Plan(account.plan)))
