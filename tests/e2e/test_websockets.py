"""Subscriptions over websockets: both protocols, and sign-in in `connection_init`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.helpers import DELIVERY_UPDATED, Beacon, UpdateLog, caused_by_comment
from tests.support.graphql_client import LEGACY_WS, TRANSPORT_WS

pytestmark = pytest.mark.e2e

NO_PAYLOAD = object()


async def given_a_task_with_a_subscriber(beacon: Beacon) -> str:
    ann = await beacon.add_contact("Ann", "ann@example.test")
    return await beacon.create_task("Ship v2", [ann])


async def first_reply(base_url: str, protocol: str, payload: object) -> str:
    """What the server answers a `connection_init`: the first message's type, or
    "closed <code>" when it closes the socket instead."""
    init: dict[str, Any] = {"type": "connection_init"}
    if payload is not NO_PAYLOAD:
        init["payload"] = payload
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps(init))
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else None}"
        return str(message["type"])


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_given_either_websocket_protocol_when_a_comment_is_added_then_the_subscription_delivers_its_update(  # noqa: E501
    beacon: Beacon, protocol: str
) -> None:
    # Given a task, and a subscription to it over this protocol
    task_id = await given_a_task_with_a_subscriber(beacon)
    async with beacon.subscribe(task_id, protocol=protocol) as log:
        # When a comment is added
        comment, update = await log.trigger(
            lambda: beacon.add_comment(task_id, "Over the wire"), caused_by_comment
        )

    # Then the update names the task, the comment and the delivery
    assert update["taskId"] == task_id
    assert update["delivery"]["address"] == "ann@example.test"
    assert update["delivery"]["channel"] == "EMAIL"
    assert update["delivery"]["state"] in {"QUEUED", "SENT"}
    assert update["status"]["total"] == 1
    assert comment["deliveryStatus"]["total"] == 1


# What a client may send in connection_init that must not sign it in; TOKEN is replaced
# by the account's real token.
NOT_SIGNED_IN: list[tuple[str, object]] = [
    ("no payload at all", NO_PAYLOAD),
    ("an empty payload", {}),
    ("an empty authorization", {"authorization": ""}),
    ("an unknown token", {"authorization": "Bearer bcn_not-a-real-token"}),
    ("another scheme", {"authorization": "Basic dXNlcjpwYXNz"}),
    ("the token under another key", {"token": "Bearer TOKEN"}),
    ("the token without 'Bearer'", {"authorization": "TOKEN"}),
]


async def test_given_no_valid_token_in_connection_init_when_a_websocket_connects_then_it_is_refused_without_an_ack(  # noqa: E501
    beacon: Beacon,
) -> None:
    for why, payload in NOT_SIGNED_IN:
        if isinstance(payload, dict):
            payload = {key: value.replace("TOKEN", beacon.token) for key, value in payload.items()}
        for protocol in (TRANSPORT_WS, LEGACY_WS):
            # When a websocket signs in with it
            reply = await first_reply(beacon.base_url, protocol, payload)

            # Then it is refused: closed (graphql-transport-ws) or a connection_error (graphql-ws)
            expected = "closed 4403" if protocol == TRANSPORT_WS else "connection_error"
            assert reply == expected, f"{protocol} with {why}"

    # And with the valid token the same connection is acknowledged
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        reply = await first_reply(
            beacon.base_url, protocol, {"authorization": f"Bearer {beacon.token}"}
        )
        assert reply == "connection_ack", protocol


async def test_given_the_authorization_key_in_any_case_when_a_websocket_subscribes_then_it_is_signed_in(  # noqa: E501
    beacon: Beacon,
) -> None:
    task_id = await given_a_task_with_a_subscriber(beacon)
    for key in ("authorization", "Authorization", "AUTHORIZATION"):
        # When the token comes under this spelling of the key
        async with beacon.client.subscribe(
            DELIVERY_UPDATED,
            {"taskId": task_id},
            connection_params={key: f"Bearer {beacon.token}"},
        ) as subscription:
            # Then the connection is acknowledged and the subscription delivers
            body = f"Signed in with {key}"
            _, update = await UpdateLog(subscription).trigger(
                lambda: beacon.add_comment(task_id, body),  # noqa: B023 - awaited at once
                caused_by_comment,
            )
        assert update["taskId"] == task_id, key
