"""`deliveryUpdated(taskId, after)`: the arguments checked, then the updates the live
feed has for the viewer (live/resume.py), its failures as GraphQL errors."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from graphql import GraphQLError

from live.feed import Overflow
from live.positions import InvalidCursor, Position, decode_cursor
from live.resume import CursorAhead, updates_after
from live.updates import LiveUpdate
from resolvers.context import Info, parse_id
from resolvers.errors import bad_input, not_found


def overflow() -> GraphQLError:
    return GraphQLError(
        "This subscription fell too far behind. Subscribe again with the last cursor.",
        extensions={"code": "SUBSCRIPTION_OVERFLOW"},
    )


async def delivery_updates(
    info: Info, task_id: str | None, after: str | None
) -> AsyncIterator[LiveUpdate]:
    info.context.require_viewer()
    wanted: uuid.UUID | None = None
    if task_id is not None:
        wanted = parse_id(task_id, "task")
        if await info.context.loaders.task.load(wanted) is None:
            raise not_found("task")
    since: Position | None = None
    if after is not None:
        try:
            since = decode_cursor(after)
        except InvalidCursor as error:
            raise bad_input(f"'after': {error}.", field="after") from None
    async with (
        info.context.services.live.listen(info.context) as listener,
        contextlib.aclosing(updates_after(listener, since, wanted)) as updates,
    ):
        try:
            async for update in updates:
                yield update
        except CursorAhead:
            raise bad_input("'after' is ahead of every delivery event.", field="after") from None
        except Overflow:
            raise overflow() from None
