"""Changing a task after it was created: its title, closing it, its subscribers."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import task_subscribers, tasks


async def update_task(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    title: str | None,
    closed: bool | None,
    now: dt.datetime,
) -> bool:
    """Change what is given; False when the account has no such task. Closing a closed
    task keeps the time it was first closed."""
    mine = sa.and_(tasks.c.id == task_id, tasks.c.account_id == account_id)
    found = (await conn.execute(sa.select(tasks.c.closed_at).where(mine))).first()
    if found is None:
        return False
    values: dict[str, Any] = {}
    if title is not None:
        values["title"] = title
    if closed is not None:
        values["closed_at"] = (found.closed_at or now) if closed else None
    if values:
        await conn.execute(tasks.update().where(mine).values(**values))
    return True


async def add_subscribers(
    conn: AsyncConnection, task_id: uuid.UUID, person_ids: Sequence[uuid.UUID]
) -> None:
    """Append the people not yet subscribed, in the order given."""
    rows = (
        await conn.execute(
            sa.select(task_subscribers.c.person_id, task_subscribers.c.position).where(
                task_subscribers.c.task_id == task_id
            )
        )
    ).all()
    subscribed = {row.person_id for row in rows}
    position = max((row.position for row in rows), default=-1) + 1
    new = [person_id for person_id in dict.fromkeys(person_ids) if person_id not in subscribed]
    if new:
        await conn.execute(
            task_subscribers.insert(),
            [
                {"task_id": task_id, "person_id": person_id, "position": position + offset}
                for offset, person_id in enumerate(new)
            ],
        )


async def remove_subscribers(
    conn: AsyncConnection, task_id: uuid.UUID, person_ids: Sequence[uuid.UUID]
) -> None:
    await conn.execute(
        task_subscribers.delete().where(
            task_subscribers.c.task_id == task_id,
            task_subscribers.c.person_id.in_(list(person_ids)),
        )
    )
