"""Deeply nested JSON, malformed websocket frames and clients that go away, against the
real server: a 4xx or a protocol error, never a 500 or a traceback in the log; and what
the log must not hold (issue 13, items 6 and 9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.helpers import ADD_COMMENT, ADD_CONTACT, CREATE_TASK
from tests.e2e.limits_support import RawConnection, running
from tests.e2e.test_request_limits import close_code, next_message, signed_in
from tests.support.graphql_client import LEGACY_WS, TRANSPORT_WS, GraphQLClient
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

DEEP = "[" * 5000 + "]" * 5000


async def test_deeply_nested_json_is_answered_400_on_graphql_and_the_whatsapp_callback(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            json_body = {"Content-Type": "application/json"}
            answers = {
                "POST /graphql": await http.post(
                    "/graphql",
                    content='{"query": "{ viewer { id } }", "variables": {"a": ' + DEEP + "}}",
                    headers=json_body,
                ),
                "POST /graphql, a batch": await http.post(
                    "/graphql", content=DEEP, headers=json_body
                ),
                "GET /graphql": await http.get(
                    "/graphql", params={"query": "{ viewer { id } }", "variables": DEEP}
                ),
                "POST /callbacks/whatsapp": await http.post(
                    "/callbacks/whatsapp", content=DEEP, headers=json_body
                ),
            }
        for what, answer in answers.items():
            assert answer.status_code == 400, (what, answer.status_code, answer.text)
            assert "nested too deeply" in answer.text, (what, answer.text)
        assert await server.tracebacks_at_exit() == []


# Frames a client may send after signing in: none may end in a traceback.
JUNK_FRAMES = [
    DEEP,
    "1",
    "[]",
    '"connection_init"',
    '{"x": 1}',
    '{"type": 1}',
    '{"type": "subscribe", "id": "1"}',
    '{"type": "subscribe", "id": "1", "payload": []}',
    '{"type": "subscribe", "id": ["1"], "payload": {"query": "{ viewer { id } }"}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": 1}}',
    '{"type": "start", "id": "1"}',
    '{"type": "start", "id": "1", "payload": {"query": "{ viewer { id } }", "variables": []}}',
    '{"type": "stop", "id": {}}',
]


async def test_junk_websocket_frames_end_in_a_close_or_an_error_never_a_traceback(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as server:
        for frame in JUNK_FRAMES:
            # graphql-transport-ws: a protocol error closes the socket with 4400
            async with websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
                await signed_in(ws, server.token)
                await ws.send(frame)
                assert await close_code(ws) == 4400, frame[:60]

        # graphql-ws: a bad `start` is answered with an error, the rest is ignored, and
        # the socket stays usable
        async with websockets.connect(server.ws_url, subprotocols=[LEGACY_WS]) as ws:  # type: ignore[list-item]
            await signed_in(ws, server.token)
            for frame in JUNK_FRAMES:
                await ws.send(frame)
            errors = [await next_message(ws) for _ in range(2)]
            assert [error["type"] for error in errors] == ["error", "error"], errors
            await ws.send(json.dumps({"type": "start", "id": "last", "payload": {"query": 1}}))
            last = await next_message(ws)
            assert (last["type"], last["id"]) == ("error", "last"), last
        assert await server.tracebacks_at_exit() == []


async def test_clients_that_go_away_leave_no_traceback_and_are_logged_as_499(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as server:
        # A client that leaves in the middle of its body, on /graphql and on a callback
        for path in ("/graphql", "/callbacks/whatsapp"):
            connection = await RawConnection.open(
                server,
                f"POST {path} HTTP/1.1\r\nHost: beacon.test\r\nContent-Type: application/json"
                "\r\nContent-Length: 1000\r\n\r\n{".encode(),
            )
            await connection.close()

        def abandoned() -> list[dict[str, Any]]:
            return [
                line
                for line in server.log_lines()
                if line.get("msg") == "request" and line.get("status") == 499
            ]

        async def both_logged() -> None:
            assert sorted(line["path"] for line in abandoned()) == [
                "/callbacks/whatsapp",
                "/graphql",
            ]

        await eventually(both_logged)

        # Subscribers whose connections drop while updates are sent to them
        client = GraphQLClient(server.base_url, server.token)
        try:
            contact = await client.execute(ADD_CONTACT, {"name": "Ann", "email": "a@x.test"})
            task = await client.execute(
                CREATE_TASK, {"title": "Gone", "subscriberIds": [contact["addPerson"]["id"]]}
            )
            task_id = task["createTask"]["id"]
            sockets = []
            for protocol, start in ((TRANSPORT_WS, "subscribe"), (LEGACY_WS, "start")) * 2:
                ws = await websockets.connect(server.ws_url, subprotocols=[protocol])  # type: ignore[list-item]
                await signed_in(ws, server.token)
                query = "subscription($t: ID) { deliveryUpdated(taskId: $t) { taskId } }"
                payload = {"query": query, "variables": {"t": task_id}}
                await ws.send(json.dumps({"id": "1", "type": start, "payload": payload}))
                sockets.append(ws)
            # Each subscribed: a first update reaches every one of them
            await client.execute(ADD_COMMENT, {"taskId": task_id, "body": "first"})
            for ws in sockets:
                assert (await next_message(ws))["type"] in ("next", "data")
            for ws in sockets:
                ws.transport.abort()  # no close frame: the TCP connection just ends
            for n in range(3):
                await client.execute(ADD_COMMENT, {"taskId": task_id, "body": f"after {n}"})

            async def all_closed() -> None:
                closed = [
                    line
                    for line in server.log_lines()
                    if line.get("msg") == "request" and line.get("method") == "WS"
                ]
                assert len(closed) == len(sockets)

            await eventually(all_closed)
        finally:
            await client.close()
        assert await server.tracebacks_at_exit() == []
        assert not [line for line in server.log_lines() if line["level"] == "error"]


async def test_the_log_holds_no_token_from_a_websocket_url(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        secrets = ["s3cr3t-token-value", "s3cr3t-access-token"]
        url = f"{server.ws_url}?token={secrets[0]}&access_token={secrets[1]}&page=2"
        async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
            await signed_in(ws, server.token)

        async def logged() -> None:
            assert "page=2" in server.log

        await eventually(logged)
        log = await server.log_at_exit()
        for secret in secrets:
            assert secret not in log


async def test_the_log_holds_no_recipient_address_or_verp_token_at_info_level(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as server:
        client = GraphQLClient(server.base_url, server.token)
        address = "ann.private@example.test"
        try:
            contact = await client.execute(ADD_CONTACT, {"name": "Ann", "email": address})
            await client.execute(
                CREATE_TASK, {"title": "Private", "subscriberIds": [contact["addPerson"]["id"]]}
            )
        finally:
            await client.close()
        async with httpx.AsyncClient(base_url=server.base_url) as http:

            async def delivered() -> dict[str, Any]:
                messages: list[dict[str, Any]] = (await http.get("/mailbox/messages.json")).json()
                assert len(messages) == 1, messages
                return messages[0]

            message = await eventually(delivered)
        # The mail catcher (aiosmtpd) got the whole SMTP conversation
        verp = message["envelope_from"]
        assert verp.startswith("bounces+"), verp
        assert message["envelope_to"] == [address]
        # And the log holds neither the address nor the VERP token
        log = await server.log_at_exit()
        assert address not in log
        assert verp.partition("+")[2].partition("@")[0] not in log
