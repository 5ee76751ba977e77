"""Rate limits on /graphql, per token and per client address, against the real server
(issue 13, item 10). Their defaults are unit-tested (tests/unit/test_rate_limits.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.helpers import create_account
from tests.e2e.limits_support import running
from tests.e2e.test_request_limits import close_code, init
from tests.support.graphql_client import TRANSPORT_WS

pytestmark = pytest.mark.e2e

VIEWER = {"query": "{ viewer { id } }"}


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"


async def test_a_token_past_its_limit_gets_429_with_retry_after_and_other_tokens_do_not(
    tmp_path: Path,
) -> None:
    async with running(
        tmp_path, RATE_LIMIT_PER_MINUTE="3", RATE_LIMIT_PER_IP_PER_MINUTE="0"
    ) as server:
        other = await create_account(
            server.server.env, name="Other", plan="PREMIUM", email="owner@other.test"
        )
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            mine = {"Authorization": f"Bearer {server.token}"}
            # Given a token that used its 3 requests
            for _ in range(3):
                answer = await http.post("/graphql", json=VIEWER, headers=mine)
                assert answer.status_code == 200, answer.text
            # Then the next one, by POST or GET, is refused
            assert_rate_limited(await http.post("/graphql", json=VIEWER, headers=mine))
            assert_rate_limited(await http.get("/graphql", params=VIEWER, headers=mine))
            # While another token, from the same address, is served
            theirs = {"Authorization": f"Bearer {other.token}"}
            answer = await http.post("/graphql", json=VIEWER, headers=theirs)
            assert answer.json()["data"]["viewer"]["id"]

        # And a websocket signing in with the limited token is closed with 4429
        async with websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
            await ws.send(init(server.token))
            assert await close_code(ws) == 4429


async def test_an_address_past_its_limit_gets_429_on_graphql_only(tmp_path: Path) -> None:
    async with running(
        tmp_path, RATE_LIMIT_PER_MINUTE="0", RATE_LIMIT_PER_IP_PER_MINUTE="3"
    ) as server:
        # The client address as uvicorn's proxy handling gives it (the proxy: 127.0.0.1)
        client_a = {"X-Forwarded-For": "203.0.113.7"}
        client_b = {"X-Forwarded-For": "203.0.113.8"}
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            for _ in range(3):
                assert (
                    await http.post("/graphql", json=VIEWER, headers=client_a)
                ).status_code == 200
            # Unauthenticated or not, a 4th request from that address is refused
            assert_rate_limited(await http.post("/graphql", json=VIEWER, headers=client_a))
            assert (await http.post("/graphql", json=VIEWER, headers=client_b)).status_code == 200
            # The pixel, health and metrics are not limited
            for path in ("/p/not-a-token.gif", "/healthz", "/metrics"):
                assert (await http.get(path, headers=client_a)).status_code == 200, path

        # A websocket handshake from that address is refused with 429 too
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(
                server.ws_url,
                subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                additional_headers=client_a,
            ):
                pass
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        error = json.loads(refused.value.response.body)["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
