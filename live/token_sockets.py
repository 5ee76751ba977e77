"""Websockets end when the token that opened them is revoked, on every API node.

`revokeApiToken` publishes the token's id on REVOKED_CHANNEL after its commit. Each node
keeps its open websockets by token; on a message it asks the database which of the
named tokens no longer sign anyone in and closes their sockets. The broadcast only
rings the bell: after a reconnect (a `Resync`, when messages may have been lost) every
token with an open socket is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from broadcaster import Broadcast, Event
from starlette.websockets import WebSocket, WebSocketDisconnect

from db import api_tokens as db_api_tokens
from db.engine import Database
from live.listening import listen

log = logging.getLogger(__name__)

REVOKED_CHANNEL = "beacon.tokens.revoked"
# Close code and reason a client sees: its credentials are no longer valid (4403 is what
# graphql-transport-ws uses for a refused connection).
REVOKED_CODE = 4403
REVOKED_REASON = "API token revoked"


async def publish_revoked(broadcast: Broadcast, token_id: uuid.UUID) -> None:
    """After the revocation committed. A lost message leaves sockets open only until
    the next reconnect's check, so a failure is logged, not raised."""
    try:
        await broadcast.publish(channel=REVOKED_CHANNEL, message=token_id.hex)
    except Exception:
        log.exception("could not publish a token revocation")


class TokenSockets:
    def __init__(self, db: Database, broadcast: Broadcast) -> None:
        self.db = db
        self.broadcast = broadcast
        self.open: dict[uuid.UUID, set[WebSocket]] = {}

    def add(self, token_id: uuid.UUID, websocket: WebSocket) -> None:
        self.open.setdefault(token_id, set()).add(websocket)

    def discard(self, token_id: uuid.UUID, websocket: WebSocket) -> None:
        sockets = self.open.get(token_id)
        if sockets is not None:
            sockets.discard(websocket)
            if not sockets:
                del self.open[token_id]

    async def run(self, subscribed: asyncio.Future[None]) -> None:
        """Listen until cancelled; `subscribed` resolves once revocations are heard."""

        async def check(event: Event) -> None:
            await self._check(self._named(event.message))

        await listen(self.broadcast, REVOKED_CHANNEL, subscribed, check)

    def _named(self, message: str) -> set[uuid.UUID]:
        try:
            named = {uuid.UUID(hex=message)}
        except ValueError:
            return set(self.open)  # a resync (empty message): check them all
        return named & set(self.open)

    async def _check(self, token_ids: set[uuid.UUID]) -> None:
        if not token_ids:
            return
        try:
            async with self.db.read() as conn:
                revoked = await db_api_tokens.revoked_among(conn, token_ids)
        except Exception:
            log.exception("could not check revoked tokens")
            return
        for token_id in revoked:
            for websocket in list(self.open.pop(token_id, ())):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await websocket.close(code=REVOKED_CODE, reason=REVOKED_REASON)
