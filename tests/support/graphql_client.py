"""Small GraphQL clients for tests: HTTP (httpx) and websockets (both protocols)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class GraphQLError(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(json.dumps(errors, indent=2))
        self.errors = errors

    @property
    def codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


class GraphQLClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.http = httpx.AsyncClient(base_url=base_url, timeout=15)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self.headers(),
        )
        body: dict[str, Any] = response.json()
        return body

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The `data` of a result; raises GraphQLError when there are errors."""
        body = await self.raw(query, variables)
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]

    async def close(self) -> None:
        await self.http.aclose()

    @asynccontextmanager
    async def subscribe(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        protocol: str = TRANSPORT_WS,
        connection_params: dict[str, Any] | None = None,
    ) -> AsyncIterator[Subscription]:
        ws_url = self.base_url.replace("http://", "ws://") + "/graphql"
        params = (
            connection_params
            if connection_params is not None
            else {"authorization": f"Bearer {self.token}"}
        )
        async with websockets.connect(ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": params}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if ack["type"] != "connection_ack":
                raise ConnectionRefusedError(f"connection not acknowledged: {ack}")
            start = "subscribe" if protocol == TRANSPORT_WS else "start"
            payload = {"query": query, "variables": variables or {}}
            await ws.send(json.dumps({"id": "1", "type": start, "payload": payload}))
            yield Subscription(ws, protocol)


class Subscription:
    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    async def next(self, timeout: float = 15) -> Any:
        """The next result's data; raises GraphQLError on an error message."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            kind = message["type"]
            if kind in ("ka", "ping", "pong"):
                if kind == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                continue
            if kind in ("next", "data"):
                if message["payload"].get("errors"):
                    raise GraphQLError(message["payload"]["errors"])
                return message["payload"]["data"]
            if kind == "error":
                payload = message["payload"]
                raise GraphQLError(payload if isinstance(payload, list) else [payload])
            raise AssertionError(f"unexpected message {message}")

    async def until(self, predicate: Any, timeout: float = 20) -> Any:
        """Read results until one satisfies `predicate`; returns it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("no matching subscription result in time")
            data = await self.next(timeout=remaining)
            if predicate(data):
                return data
