"""Executing and serialising a live update once for all of its subscribers.

graphql-core executes a subscription's selection for every event of every subscriber,
and strawberry serialises every result on its own. With 200 dashboards watching one
account that is 200 executions and 200 `json.dumps` of the same data. Here a payload
that carries `SharedResults` (live/updates.py) is executed once per selection (query
text, operation name, variables), in the update's own context; the result's data is a
`SharedData`, which `encode_next` serialises once and splices into each subscriber's
message. And once a graphql-transport-ws subscription's selection has been executed for
one update, it sends the next updates' shared results itself (LiveTransportWS).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable, Mapping
from copy import copy
from typing import Any, cast

from graphql import ExecutionResult, OperationType
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from live.updates import SharedResults, direct_sender

# As strawberry's own encode_json.
_COMPACT = (",", ":")


class SharedData(dict[str, Any]):
    """A result's data shared by several subscribers; serialised at most once."""

    __slots__ = ("encoded",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.encoded: str | None = None


class _OperationSender:
    """Sends `next` messages of one graphql-transport-ws operation: the shared, already
    serialised data spliced into the message's text, which goes to the websocket as it
    is. The same message strawberry's `Operation.send_next` would send, without its
    layers (message dict, handler, adapter, encode_json) for every subscriber."""

    def __init__(self, operation: Operation[Any, Any], websocket: WebSocket | None) -> None:
        self.operation = operation
        self.selection_key: Hashable | None = None
        self._websocket = websocket
        self._head = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":'

    async def send(self, data: Any) -> None:
        if not isinstance(data, SharedData) or self._websocket is None:
            message = {"id": self.operation.id, "type": "next", "payload": {"data": data}}
            await self.operation.send_operation_message(cast(Any, message))
            return
        if self.operation.completed:
            return  # as Operation.send_operation_message
        if data.encoded is None:
            data.encoded = json.dumps({"data": data}, separators=_COMPACT)
        try:
            await self._websocket.send_text(f"{self._head}{data.encoded}}}")
        except WebSocketDisconnect as error:  # as strawberry's ASGIWebSocketAdapter
            raise WebSocketDisconnected from error


class LiveTransportWS(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, where a subscription may send an update's shared result
    itself (live.updates.send_directly) once its selection is known."""

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        # The operation's own task: the subscription's resolver runs in it.
        websocket = getattr(self.websocket, "ws", None)
        direct_sender.set(
            _OperationSender(operation, websocket if isinstance(websocket, WebSocket) else None)
        )
        await super().run_operation(operation)


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
        sender = direct_sender.get()
        if sender is not None and sender.selection_key is None:
            sender.selection_key = key
        execution = shared.results.get(key)
        if execution is None:
            executor = copy(self)
            executor.context_value = shared.context
            run = super(SharedResultExecutor, executor).execute_operation
            execution = _start(run, serially)
            shared.results[key] = execution
        if execution.done():
            # The usual case: every field of the selection resolved at once.
            done: ExecutionResult = execution.result()
            return done
        result: ExecutionResult = await asyncio.shield(execution)
        return result

    def _selection_key(self) -> tuple[str, str | None, str]:
        location = self.operation.loc
        text = location.source.body if location is not None else repr(self.operation)
        name = self.operation.name.value if self.operation.name else None
        variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
        return text, name, variables


def _start(run: Callable[[bool | None], Any], serially: bool | None) -> asyncio.Future[Any]:
    """The shared execution: done at once when no resolver of the selection awaits
    anything (then the update's other subscribers find it done, and none of them waits
    for it), otherwise a task of its own (the subscriber that started it may go away
    meanwhile)."""
    try:
        result = run(serially)
    except Exception as error:
        result = None
        failed: BaseException | None = error
    else:
        failed = None
    if failed is None and (asyncio.iscoroutine(result) or isinstance(result, asyncio.Future)):
        execution = asyncio.ensure_future(_finish(result))
        execution.add_done_callback(_retrieve)
        return execution
    done: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
    if failed is not None:
        done.set_exception(failed)
        _retrieve(done)
    else:
        done.set_result(_shared_result(result))
    return done


async def _finish(pending: Awaitable[Any]) -> ExecutionResult:
    return _shared_result(await pending)


def _shared_result(result: Any) -> ExecutionResult:
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
    if message.keys() == {"id", "type", "payload"}:
        # The usual shape, put together without a dict to encode.
        return (
            f'{{"id":{json.dumps(message["id"])},"type":{json.dumps(message["type"])},'
            f'"payload":{data.encoded}}}'
        )
    head = json.dumps(
        {key: value for key, value in message.items() if key != "payload"}, separators=_COMPACT
    )
    return f'{head[:-1]},"payload":{data.encoded}}}'
