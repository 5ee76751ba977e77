"""A live update's data is serialised once and spliced into each subscriber's message."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from graphql import ExecutionResult
from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected

from live.shared_results import SharedData, _OperationSender, _start, encode_next


def test_a_next_message_with_shared_data_encodes_as_plain_json_would() -> None:
    data = SharedData({"deliveryUpdated": {"cursor": "c1", "delivery": {"state": "READ"}}})
    message = {"id": "7", "type": "next", "payload": {"data": data}}

    encoded = encode_next(message)

    assert encoded is not None
    assert json.loads(encoded) == json.loads(json.dumps(message))


def test_shared_data_is_serialised_once_for_every_subscriber() -> None:
    data = SharedData({"deliveryUpdated": {"cursor": "c1"}})
    first = encode_next({"id": "1", "type": "next", "payload": {"data": data}})
    cached = data.encoded
    second = encode_next({"id": "2", "type": "data", "payload": {"data": data}})

    assert cached is not None
    assert data.encoded is cached
    assert first is not None
    assert second is not None
    assert json.loads(second) == {"id": "2", "type": "data", "payload": json.loads(cached)}


def test_other_messages_are_left_to_the_ordinary_encoder() -> None:
    assert encode_next({"type": "connection_ack"}) is None
    assert encode_next({"id": "1", "type": "next", "payload": {"data": {"a": 1}}}) is None
    errors = {"data": SharedData({}), "errors": [{"message": "x"}]}
    assert encode_next({"id": "1", "type": "next", "payload": errors}) is None


class _Operation:
    def __init__(self, operation_id: str) -> None:
        self.id = operation_id
        self.completed = False
        self.messages: list[Any] = []

    async def send_operation_message(self, message: Any) -> None:
        self.messages.append(message)


class _WebSocket:
    def __init__(self, error: Exception | None = None) -> None:
        self.texts: list[str] = []
        self.error = error

    async def send_text(self, text: str) -> None:
        if self.error is not None:
            raise self.error
        self.texts.append(text)


def _sender(operation: _Operation, websocket: _WebSocket | None) -> _OperationSender:
    return _OperationSender(cast(Any, operation), cast(Any, websocket))


async def test_a_shared_result_goes_to_the_websocket_as_the_next_message_strawberry_sends() -> None:
    # given
    data = SharedData({"deliveryUpdated": {"cursor": "c1", "delivery": {"address": 'é"x'}}})
    operation, websocket = _Operation('op "1"'), _WebSocket()

    # when
    await _sender(operation, websocket).send(data)

    # then
    assert operation.messages == []
    assert [json.loads(text) for text in websocket.texts] == [
        {"id": 'op "1"', "type": "next", "payload": {"data": data}}
    ]


async def test_a_completed_operation_sends_no_more_shared_results() -> None:
    operation, websocket = _Operation("1"), _WebSocket()
    operation.completed = True

    await _sender(operation, websocket).send(SharedData({"a": 1}))

    assert websocket.texts == []


async def test_a_closed_websocket_ends_the_operation_as_strawberry_expects() -> None:
    websocket = _WebSocket(WebSocketDisconnect(1006))

    with pytest.raises(WebSocketDisconnected):
        await _sender(_Operation("1"), websocket).send(SharedData({"a": 1}))


async def test_data_that_is_not_shared_takes_strawberrys_way() -> None:
    operation, websocket = _Operation("1"), _WebSocket()

    await _sender(operation, websocket).send({"a": 1})

    assert websocket.texts == []
    assert operation.messages == [{"id": "1", "type": "next", "payload": {"data": {"a": 1}}}]


async def test_an_execution_that_resolves_at_once_is_shared_already_done() -> None:
    result = ExecutionResult(data={"a": 1})

    execution = _start(lambda _: result, None)

    assert execution.done()
    shared = execution.result()
    assert isinstance(shared.data, SharedData)
    assert shared.data == {"a": 1}


async def test_an_execution_that_awaits_runs_as_a_task_of_its_own() -> None:
    async def later() -> ExecutionResult:
        await asyncio.sleep(0)
        return ExecutionResult(data={"a": 2})

    execution = _start(lambda _: later(), None)

    assert not execution.done()
    shared = await execution
    assert isinstance(shared.data, SharedData)
    assert shared.data == {"a": 2}


async def test_an_execution_that_raises_at_once_hands_its_error_to_every_subscriber() -> None:
    def boom(_: bool | None) -> ExecutionResult:
        raise ValueError("boom")

    execution = _start(boom, None)

    assert execution.done()
    with pytest.raises(ValueError, match="boom"):
        execution.result()
