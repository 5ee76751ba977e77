"""A receiver of Beacon's status webhooks that verifies each request with the
`standardwebhooks` library (what customers use), records what arrived, and answers with
the status codes a test lines up (200 once they run out).

    async with StatusReceiver(secret) as receiver:
        receiver.answers.extend([500, 500])   # fail twice, then recover
        await receiver.wait_for(3)            # until three requests arrived
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.providers.server import LocalServer


@dataclass(frozen=True)
class Received:
    webhook_id: str
    verified: bool
    payload: dict[str, Any]
    status: int
    body: bytes


class StatusReceiver(LocalServer):
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.answers: list[int] = []
        self.received: list[Received] = []
        # While set, requests wait here before they are answered (and are recorded only
        # once answered); `waiting` counts those that arrived at the gate.
        self.gate: asyncio.Event | None = None
        self.waiting = 0
        self.someone_waits = asyncio.Event()
        self._arrived = asyncio.Condition()
        super().__init__(Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])]))

    def ids(self, *, status: int | None = 200) -> list[str]:
        """The webhook ids received (answered `status`; None: all), in arrival order."""
        return [r.webhook_id for r in self.received if status is None or r.status == status]

    def delivered(self) -> list[dict[str, Any]]:
        """The payloads answered 2xx, in arrival order."""
        return [r.payload for r in self.received if 200 <= r.status < 300]

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        """Until at least `count` requests have arrived."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        verified = False
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        if self.gate is not None and not self.gate.is_set():
            self.waiting += 1
            self.someone_waits.set()
            await self.gate.wait()
        status = self.answers.pop(0) if self.answers else 200
        async with self._arrived:
            self.received.append(
                Received(headers.get("webhook-id", ""), verified, json.loads(body), status, body)
            )
            self._arrived.notify_all()
        return PlainTextResponse("ok" if status < 300 else "nope", status_code=status)
