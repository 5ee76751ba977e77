"""The two websocket protocols as Beacon serves them: strawberry's handlers, kept from
tracebacks and idle sockets.

- A frame that is JSON but no message object (`1`, `[]`), or a message without the
  fields its type needs, is the client's mistake: graphql-transport-ws closes with 4400
  (as it does for a frame that is not JSON), graphql-ws answers a `start` with an
  `error` and ignores the rest (as it ignores unknown types). strawberry indexes into
  them unchecked, which ends the connection with a traceback.
- The legacy graphql-ws protocol gets the deadline for `connection_init` that
  graphql-transport-ws has (WS_CONNECTION_INIT_TIMEOUT_SECONDS; close code 4408):
  strawberry's graphql-ws handler waits for ever.
- `refuse_with` lets `on_ws_connect` choose the close code of a refused
  `connection_init` (strawberry closes with 4403, or 1011 on graphql-ws): 4429 for a
  token over its connection or rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from common.metrics import REQUESTS_LIMITED
from live.shared_results import LiveTransportWS

INIT_TIMEOUT_CODE = 4408
INIT_TIMEOUT_REASON = "Connection initialisation timeout"
_REFUSAL = "beacon.ws_refusal"


def refuse_with(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with `code` and `reason` when the handler next closes this websocket (it
    does once on_ws_connect raises ConnectionRejectionError)."""
    websocket.scope[_REFUSAL] = (code, reason)


class WebSocketAdapter(ASGIWebSocketAdapter):
    async def close(self, code: int, reason: str) -> None:
        refusal = self.ws.scope.pop(_REFUSAL, None)
        if refusal is not None:
            code, reason = refusal
        await super().close(code, reason)


def _optional(value: object, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _operation_payload_ok(payload: object) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("query"), str)
        and _optional(payload.get("variables"), dict)
        and _optional(payload.get("operationName"), str)
    )


class TransportWS(LiveTransportWS):
    """graphql-transport-ws."""

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.handle_invalid_message("Failed to parse message")
            return
        if message["type"] == "subscribe" and not (
            isinstance(message.get("id"), str) and _operation_payload_ok(message.get("payload"))
        ):
            await self.handle_invalid_message("Failed to parse message")
            return
        await super().handle_message(cast(Any, message))


class LegacyWS(BaseGraphQLWSHandler[Any, Any]):
    """graphql-ws (subscriptions-transport-ws)."""

    connection_init_received = False

    async def handle(self) -> None:
        timeout = self.view.connection_init_wait_timeout.total_seconds()
        deadline = asyncio.create_task(self._close_unless_initialised(timeout))
        try:
            await super().handle()
        finally:
            deadline.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deadline

    async def _close_unless_initialised(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self.connection_init_received:
            REQUESTS_LIMITED.labels("ws_init_timeout").inc()
            await self.websocket.close(code=INIT_TIMEOUT_CODE, reason=INIT_TIMEOUT_REASON)

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return
        kind = message["type"]
        if kind == "connection_init":
            self.connection_init_received = True
        elif kind in ("start", "stop") and not isinstance(message.get("id"), str):
            return
        elif kind == "start" and not _operation_payload_ok(message.get("payload")):
            await self.send_message(
                {
                    "type": "error",
                    "id": message["id"],
                    "payload": {
                        "message": "A start message needs a payload with a string query.",
                        "extensions": {"code": "GRAPHQL_PARSE_FAILED"},
                    },
                }
            )
            return
        await super().handle_message(cast(Any, message))
