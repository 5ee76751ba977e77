"""Executing and serialising a live update once for all of its subscribers.

graphql-core executes a subscription's selection for every event of every subscriber,
and strawberry serialises every result on its own. With 200 dashboards watching one
account that is 200 executions and 200 `json.dumps` of the same data. Here a payload
that carries `SharedResults` (resolvers/live.py) is executed once per selection (query
text, operation name, variables), in the update's own context; the result's data is a
`SharedData`, which `encode_next` serialises once and splices into each subscriber's
message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from copy import copy
from typing import Any

from graphql import ExecutionResult, OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.live import SharedResults

# As strawberry's own encode_json.
_COMPACT = (",", ":")


class SharedData(dict[str, Any]):
    """A result's data shared by several subscribers; serialised at most once."""

    __slots__ = ("encoded",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.encoded: str | None = None


class SharedResultExecutor(StrawberryGraphQLCoreExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        shared = getattr(self.root_value, "shared", None)
        if not isinstance(shared, SharedResults) or (
            self.operation.operation is not OperationType.SUBSCRIPTION
        ):
            return super().execute_operation(serially)
        return self._shared(shared, serially)

    async def _shared(self, shared: SharedResults, serially: bool | None) -> ExecutionResult:
        key = self._selection_key()
        execution = shared.results.get(key)
        if execution is None:
            executor = copy(self)
            executor.context_value = shared.context
            # A task of its own: the subscriber that started it may go away meanwhile.
            run = super(SharedResultExecutor, executor).execute_operation
            execution = asyncio.ensure_future(_execute(run, serially))
            execution.add_done_callback(_retrieve)
            shared.results[key] = execution
        result: ExecutionResult = await asyncio.shield(execution)
        return result

    def _selection_key(self) -> tuple[str, str | None, str]:
        location = self.operation.loc
        text = location.source.body if location is not None else repr(self.operation)
        name = self.operation.name.value if self.operation.name else None
        variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
        return text, name, variables


async def _execute(run: Callable[[bool | None], Any], serially: bool | None) -> ExecutionResult:
    result = run(serially)
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    assert isinstance(result, ExecutionResult)
    data = SharedData(result.data) if result.data is not None else None
    return ExecutionResult(data=data, errors=result.errors)


def _retrieve(execution: asyncio.Future[ExecutionResult]) -> None:
    """Mark an error as seen: the subscribers that awaited it have reported it."""
    if not execution.cancelled():
        execution.exception()


def encode_next(message: Mapping[str, Any]) -> str | None:
    """The JSON of a `next` (or legacy `data`) message whose data is shared, with the
    data serialised once for every subscriber; None for any other message."""
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    data = payload.get("data")
    if not isinstance(data, SharedData):
        return None
    if data.encoded is None:
        data.encoded = json.dumps({"data": data}, separators=_COMPACT)
    head = json.dumps(
        {key: value for key, value in message.items() if key != "payload"}, separators=_COMPACT
    )
    return f'{head[:-1]},"payload":{data.encoded}}}'
