"""A live update's data is serialised once and spliced into each subscriber's message."""

from __future__ import annotations

import json

from web.shared_results import SharedData, encode_next


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
