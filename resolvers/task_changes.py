"""Changing tasks after they were created: updateTask, addSubscribers, removeSubscribers.
Any employee of the account may (ADR 0020): tasks are the team's work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from common.time import utcnow
from db import task_changes as db_task_changes
from domain.validation import validate_title
from resolvers.context import Info, parse_id
from resolvers.errors import not_found
from resolvers.queries import existing_people


async def update_task(
    info: Info, task_id: str, *, title: str | None, closed: bool | None
) -> uuid.UUID:
    viewer = info.context.require_viewer()
    parsed = parse_id(task_id, "task")
    cleaned = None if title is None else validate_title(title)
    async with info.context.db.write() as conn:
        found = await db_task_changes.update_task(
            conn,
            viewer.account_id,
            parsed,
            title=cleaned,
            closed=closed,
            now=utcnow(),
        )
    if not found:
        raise not_found("task")
    info.context.reset_loaders()
    return parsed


async def change_subscribers(
    info: Info, task_id: str, person_ids: Sequence[str], *, add: bool
) -> uuid.UUID:
    parsed = parse_id(task_id, "task")
    if await info.context.loaders.task.load(parsed) is None:
        raise not_found("task")
    people = [row.id for row in await existing_people(info, person_ids, "personIds")]
    async with info.context.db.write() as conn:
        if add:
            await db_task_changes.add_subscribers(conn, parsed, people)
        else:
            await db_task_changes.remove_subscribers(conn, parsed, people)
    info.context.reset_loaders()
    return parsed
