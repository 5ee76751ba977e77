"""Request limits against the real server over real sockets: bodies, documents, slow and
idle clients, connection caps, websocket sign-in deadlines and caps (issue 13, items 4
and 5; docs/adr/0015-request-limits.md)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.limits_support import RawConnection, body_of, running, status_of
from tests.support.graphql_client import LEGACY_WS, TRANSPORT_WS
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

VIEWER = "{ viewer { id } }"


def post_head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: beacon.test\r\nContent-Type: application/json\r\n"
        f"{extra}\r\n"
    ).encode()


# --------------------------------------------------------------------------- bodies


async def test_a_graphql_body_declared_over_the_cap_is_answered_413_and_the_rest_is_never_read(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, GRAPHQL_MAX_BODY_BYTES="10000") as server:
        # Given a client that announces 100 MB and sends the first bytes of it
        connection = await RawConnection.open(
            server, post_head("/graphql", "Content-Length: 100000000\r\n") + b'{"query": "#'
        )
        try:
            # Then the server answers 413 at once and closes: it waits for no more
            answer = await connection.until_closed(timeout=5)
        finally:
            await connection.close()
        assert status_of(answer) == 413
        error = json.loads(body_of(answer))["errors"][0]
        assert error["extensions"]["code"] == "REQUEST_TOO_LARGE"
        assert "10000 bytes" in error["message"]


async def test_a_chunked_graphql_body_growing_past_the_cap_is_answered_413_as_soon_as_it_does(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, GRAPHQL_MAX_BODY_BYTES="10000") as server:
        connection = await RawConnection.open(
            server, post_head("/graphql", "Transfer-Encoding: chunked\r\n")
        )
        try:
            # Given a chunked body that stays under the cap: nothing is answered yet
            chunk = b"#" * 4000
            for _ in range(2):
                await connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            with pytest.raises(TimeoutError):
                await connection.until_closed(timeout=0.5)
            # When one more chunk takes it past the cap (and no last chunk ever comes)
            await connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            answer = await connection.until_closed(timeout=5)
        finally:
            await connection.close()
        # Then it is answered 413 and the connection closed
        assert status_of(answer) == 413


async def test_a_body_that_stops_arriving_is_answered_408_after_the_body_timeout(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, BODY_TIMEOUT_SECONDS="1") as server:
        for path in ("/graphql", "/callbacks/sms"):
            # Given a client that sends 10 of the 100 bytes it announced, then nothing
            connection = await RawConnection.open(
                server, post_head(path, "Content-Length: 100\r\n") + b'{"query":"'
            )
            started = time.monotonic()
            try:
                answer = await connection.until_closed()
            finally:
                await connection.close()
            # Then after about a second it gets 408 and the connection is closed
            assert status_of(answer) == 408, (path, answer)
            assert time.monotonic() - started >= 0.9
        assert await server.tracebacks_at_exit() == []


# --------------------------------------------------------------------------- documents


async def test_a_document_over_the_byte_limit_is_refused_before_parsing_however_it_comes(
    tmp_path: Path,
) -> None:
    # A comment: no tokens, so the token limit never counts it
    padding = "# " + "x" * 3000 + "\n"
    too_large = padding + VIEWER
    async with running(tmp_path, GRAPHQL_MAX_DOCUMENT_BYTES="2000") as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
            # A document under the limit, comment and all, is answered
            small = await http.post("/graphql", json={"query": "# hello\n" + VIEWER})
            assert small.json()["data"]["viewer"]["id"]

            # POST and GET
            posted = (await http.post("/graphql", json={"query": too_large})).json()
            got = (await http.get("/graphql", params={"query": too_large})).json()
            for answer in (posted, got):
                assert "data" not in answer or answer["data"] is None, answer
                [error] = answer["errors"]
                assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
                assert "at most 2000" in error["message"]

        # Both websocket protocols
        for protocol, start in ((TRANSPORT_WS, "subscribe"), (LEGACY_WS, "start")):
            async with websockets.connect(server.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
                await signed_in(ws, server.token)
                payload = {
                    "query": "# " + "x" * 3000 + "\nsubscription { deliveryUpdated { taskId } }"
                }
                await ws.send(json.dumps({"id": "1", "type": start, "payload": payload}))
                message = await next_message(ws)
                assert message["type"] == "error", message
                errors = message["payload"]
                error = errors[0] if isinstance(errors, list) else errors
                assert error["extensions"]["code"] == "QUERY_TOO_LARGE", message


async def signed_in(ws: Any, token: str) -> None:
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    ack = await next_message(ws)
    assert ack["type"] == "connection_ack", ack


async def next_message(ws: Any) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] not in ("ka", "ping", "pong"):
            return message


# --------------------------------------------------------------------------- slow clients


async def test_connections_that_never_complete_their_headers_are_closed_after_the_timeout(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, HEADER_TIMEOUT_SECONDS="1") as server:
        # Given connections that send nothing, half a request line, half the headers
        partial = [b"", b"GET /healthz HT", b"GET /healthz HTTP/1.1\r\nHost: beacon.test\r\n"]
        connections = [await RawConnection.open(server, data) for data in partial]
        started = time.monotonic()
        try:
            # Then the server closes each of them, answering 408 those that began a request
            answers = await asyncio.gather(*(c.until_closed() for c in connections))
        finally:
            for connection in connections:
                await connection.close()
        assert time.monotonic() - started >= 0.9
        assert answers[0] == b""
        assert [status_of(answer) for answer in answers[1:]] == [408, 408]

        # And a client that completes its request in time is answered as usual
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_headers_past_the_size_cap_are_answered_431(tmp_path: Path) -> None:
    async with running(tmp_path, MAX_HEADER_BYTES="8192") as server:
        connection = await RawConnection.open(
            server, b"GET /healthz HTTP/1.1\r\nHost: beacon.test\r\nX-Padding: " + b"a" * 20000
        )
        try:
            answer = await connection.until_closed(timeout=5)
        finally:
            await connection.close()
        assert status_of(answer) == 431


async def test_connections_past_the_cap_are_refused_with_503_until_others_close(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, MAX_CONNECTIONS="20") as server:
        # Given 20 idle connections (the cap)
        idle = [await RawConnection.open(server) for _ in range(20)]
        try:
            # When one more connects and asks for something
            extra = await RawConnection.open(
                server, b"GET /healthz HTTP/1.1\r\nHost: beacon.test\r\n\r\n"
            )
            try:
                answer = await extra.until_closed(timeout=5)
            finally:
                await extra.close()
            # Then it is answered 503 and closed at once
            assert status_of(answer) == 503
        finally:
            for connection in idle[:5]:
                await connection.close()
        try:
            # And once some of the others close, new connections are served again
            async def served() -> None:
                async with httpx.AsyncClient(base_url=server.base_url) as http:
                    assert (await http.get("/healthz")).status_code == 200

            await eventually(served)
        finally:
            for connection in idle[5:]:
                await connection.close()


# --------------------------------------------------------------------------- websockets


async def close_code(ws: Any, timeout: float = 10) -> int | None:
    """The code the server closes `ws` with (messages before it are skipped)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_that_never_sends_connection_init_is_closed_with_4408(
    tmp_path: Path, protocol: str
) -> None:
    async with running(tmp_path, WS_CONNECTION_INIT_TIMEOUT_SECONDS="1") as server:
        async with websockets.connect(server.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            started = time.monotonic()
            assert await close_code(ws) == 4408
        assert time.monotonic() - started >= 0.9


async def test_websockets_past_the_cap_per_token_are_refused_with_4429_until_one_closes(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, WS_MAX_CONNECTIONS_PER_TOKEN="2") as server:
        # Given two signed-in websockets for one token, one of each protocol
        first = await websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
        second = await websockets.connect(server.ws_url, subprotocols=[LEGACY_WS])  # type: ignore[list-item]
        try:
            await signed_in(first, server.token)
            await signed_in(second, server.token)

            # When a third signs in with graphql-transport-ws, it is closed with 4429
            async with websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as third:  # type: ignore[list-item]
                await third.send(init(server.token))
                assert await close_code(third) == 4429
            # And with graphql-ws it gets a connection_error with a code, then 4429
            async with websockets.connect(server.ws_url, subprotocols=[LEGACY_WS]) as third:  # type: ignore[list-item]
                await third.send(init(server.token))
                refusal = await next_message(third)
                assert refusal["type"] == "connection_error"
                assert refusal["payload"]["extensions"]["code"] == "TOO_MANY_CONNECTIONS"
                assert await close_code(third) == 4429
        finally:
            await first.close()

        # Then, once one closes, another may sign in
        async def signs_in() -> None:
            async with websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
                await ws.send(init(server.token))
                try:
                    reply = await ws.recv()
                except ConnectionClosed as refused:
                    raise AssertionError(f"refused: {refused}") from refused
                assert json.loads(reply)["type"] == "connection_ack"

        try:
            await eventually(signs_in)
        finally:
            await second.close()


def init(token: str) -> str:
    return json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
