"""Tasks, their subscribers and comments, with keyset pagination."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.cursors import decode_cursor
from common.domain import NoticeKind
from db.records import CommentRecord, TaskRecord
from db.tables import comments, insert_new, people, task_subscribers, tasks

R = TypeVar("R")


@dataclass(frozen=True)
class Page(Generic[R]):
    rows: Sequence[R]
    has_next: bool
    # Only a page read backwards (`last`/`before`) tells whether earlier rows exist.
    has_previous: bool = False


async def insert_task(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    title: str,
    created_by: uuid.UUID | None,
    subscriber_ids: Sequence[uuid.UUID],
    now: dt.datetime,
) -> uuid.UUID:
    task_id = uuid.uuid4()
    await conn.execute(
        tasks.insert().values(
            id=task_id, account_id=account_id, title=title, created_by=created_by, created_at=now
        )
    )
    if subscriber_ids:
        await conn.execute(
            task_subscribers.insert(),
            [
                {"task_id": task_id, "person_id": person_id, "position": position}
                for position, person_id in enumerate(subscriber_ids)
            ],
        )
    return task_id


async def insert_comment(
    conn: AsyncConnection,
    *,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    author_id: uuid.UUID | None,
    body: str,
    is_system: bool,
    now: dt.datetime,
) -> uuid.UUID:
    return await insert_new(
        conn,
        comments,
        account_id=account_id,
        task_id=task_id,
        author_id=author_id,
        body=body,
        is_system=is_system,
        created_at=now,
    )


async def get_task(
    conn: AsyncConnection, account_id: uuid.UUID, task_id: uuid.UUID
) -> TaskRecord | None:
    row = (
        await conn.execute(
            tasks.select().where(tasks.c.id == task_id, tasks.c.account_id == account_id)
        )
    ).first()
    return None if row is None else TaskRecord.of(row)


async def tasks_by_ids(
    conn: AsyncConnection, account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TaskRecord]:
    rows = (
        await conn.execute(
            tasks.select().where(tasks.c.account_id == account_id, tasks.c.id.in_(ids))
        )
    ).all()
    return {row.id: TaskRecord.of(row) for row in rows}


async def comments_by_ids(
    conn: AsyncConnection, account_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CommentRecord]:
    rows = (
        await conn.execute(
            comments.select().where(comments.c.account_id == account_id, comments.c.id.in_(ids))
        )
    ).all()
    return {row.id: CommentRecord.of(row) for row in rows}


async def subscriber_ids_by_task(
    conn: AsyncConnection, task_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = (
        await conn.execute(
            sa.select(task_subscribers.c.task_id, task_subscribers.c.person_id)
            .where(task_subscribers.c.task_id.in_(task_ids))
            .order_by(task_subscribers.c.task_id, task_subscribers.c.position)
        )
    ).all()
    result: dict[uuid.UUID, list[uuid.UUID]] = {task_id: [] for task_id in task_ids}
    for row in rows:
        result[row.task_id].append(row.person_id)
    return result


async def page_tasks(
    conn: AsyncConnection, account_id: uuid.UUID, *, first: int, after: str | None
) -> Page[TaskRecord]:
    """Newest first."""
    query = tasks.select().where(tasks.c.account_id == account_id)
    if after is not None:
        created_at, row_id = decode_cursor(after)
        query = query.where(sa.tuple_(tasks.c.created_at, tasks.c.id) < (created_at, row_id))
    rows = (
        await conn.execute(
            query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(first + 1)
        )
    ).all()
    return Page(rows=TaskRecord.of_all(rows[:first]), has_next=len(rows) > first)


async def page_comments(
    conn: AsyncConnection,
    task_id: uuid.UUID,
    *,
    include_system: bool,
    first: int,
    after: str | None,
) -> Page[CommentRecord]:
    """Oldest first, as an activity feed reads."""
    query = comments.select().where(comments.c.task_id == task_id)
    if not include_system:
        query = query.where(comments.c.is_system.is_(False))
    if after is not None:
        created_at, row_id = decode_cursor(after)
        query = query.where(sa.tuple_(comments.c.created_at, comments.c.id) > (created_at, row_id))
    rows = (
        await conn.execute(query.order_by(comments.c.created_at, comments.c.id).limit(first + 1))
    ).all()
    return Page(rows=CommentRecord.of_all(rows[:first]), has_next=len(rows) > first)


async def page_comments_backwards(
    conn: AsyncConnection,
    task_id: uuid.UUID,
    *,
    include_system: bool,
    last: int,
    before: str | None,
) -> Page[CommentRecord]:
    """The `last` comments before the cursor (the newest, without one), still oldest
    first: a feed that opens at its newest comments and loads earlier ones on demand."""
    query = comments.select().where(comments.c.task_id == task_id)
    if not include_system:
        query = query.where(comments.c.is_system.is_(False))
    if before is not None:
        created_at, row_id = decode_cursor(before)
        query = query.where(sa.tuple_(comments.c.created_at, comments.c.id) < (created_at, row_id))
    newest_first = query.order_by(comments.c.created_at.desc(), comments.c.id.desc())
    rows = (await conn.execute(newest_first.limit(last + 1))).all()
    return Page(
        rows=CommentRecord.of_all(rows[:last][::-1]), has_next=False, has_previous=len(rows) > last
    )


@dataclass(frozen=True)
class NotificationContent:
    task_title: str
    comment_body: str | None
    author_name: str | None
    kind: NoticeKind = NoticeKind.NEW_COMMENT


async def notification_content(
    conn: AsyncConnection,
    task_id: uuid.UUID | None,
    comment_id: uuid.UUID | None,
    message_text: str | None = None,
) -> NotificationContent:
    """What a notification says: the task's title and who created it, or, for a comment,
    its text and author (or the notification's own text, when a scenario wrote it)."""
    if task_id is None:  # an invitation: sending/invitation_email.py writes the email
        return NotificationContent("", message_text, None, kind=NoticeKind.SCENARIO_MESSAGE)
    task = (
        await conn.execute(
            sa.select(tasks.c.title, people.c.name)
            .select_from(tasks.outerjoin(people, people.c.id == tasks.c.created_by))
            .where(tasks.c.id == task_id)
        )
    ).one()
    if message_text is not None:
        return NotificationContent(task.title, message_text, None, kind=NoticeKind.SCENARIO_MESSAGE)
    if comment_id is None:
        return NotificationContent(task.title, None, task.name, kind=NoticeKind.NEW_TASK)
    row = (
        await conn.execute(
            sa.select(comments.c.body, comments.c.is_system, people.c.name)
            .select_from(comments.outerjoin(people, people.c.id == comments.c.author_id))
            .where(comments.c.id == comment_id)
        )
    ).one()
    kind = NoticeKind.SYSTEM_COMMENT if row.is_system else NoticeKind.NEW_COMMENT
    return NotificationContent(task.title, row.body, row.name, kind=kind)
