"""GET /p/<token>.gif: always the same tiny GIF; a genuine token records an open, with
what its user agent and address say about who loaded it (read confidence).

The pixel is the hottest path by far, so it is a bare ASGI application: it reads the two
headers it needs from the scope and sends prebuilt response messages, without Starlette's
Request and Response objects. web/stack.py sends pixel hits straight to `answer`; the
route (`pixel_route`) serves anything that reaches it through Starlette's routing."""

from __future__ import annotations

import base64

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from common.metrics import PIXEL_HITS
from common.time import utcnow
from common.tokens import PIXEL, verify
from db.opens import Open
from pixel.confidence import OpenRules, classify_hit
from pixel.recorder import OpenRecorder

# A transparent 1x1 GIF89a.
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
assert len(GIF) == 43

_HEADERS = {
    # Every load must reach us: a cached pixel records nothing.
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
# What Starlette's Response(GIF, media_type="image/gif", headers=_HEADERS) sends.
RESPONSE_HEADERS: list[tuple[bytes, bytes]] = [
    *((name.lower().encode(), value.encode()) for name, value in _HEADERS.items()),
    (b"content-length", str(len(GIF)).encode()),
    (b"content-type", b"image/gif"),
]
_BODY = {"type": "http.response.body", "body": GIF}
_USER_AGENT = b"user-agent"
_INVALID = PIXEL_HITS.labels("invalid")


class PixelEndpoint:
    """The pixel as an ASGI application (the token in the path parameters)."""

    def __init__(self, recorder: OpenRecorder, secret_key: bytes, rules: OpenRules) -> None:
        self.recorder = recorder
        self.secret_key = secret_key
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope, scope["path_params"]["token"], send, [])

    async def answer(
        self, scope: Scope, token: str, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Take the open a genuine token carries (a GET's) for recording, then send the
        GIF with `headers` added to the pixel's own. Never raises but for `send`."""
        pixel_id = verify(token, self.secret_key, PIXEL)
        if pixel_id is None:
            _INVALID.inc()
        elif scope["method"] == "GET":
            # A HEAD (link checkers, some proxies) shows no image to anyone: no open.
            # The address is the client's as uvicorn's proxy headers give it; only its
            # network's label is kept.
            user_agent = None
            for name, value in scope["headers"]:
                if name == _USER_AGENT:
                    user_agent = value.decode("latin-1")
                    break
            client = scope.get("client")
            hit = classify_hit(
                self.rules, user_agent=user_agent, client_ip=client[0] if client else None
            )
            verdict = hit.verdict
            await self.recorder.record(
                Open(
                    pixel_id,
                    utcnow(),
                    verdict.confidence,
                    verdict.network,
                    verdict.reason,
                    hit.machine_within_seconds,
                    hit.fast_network,
                )
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": RESPONSE_HEADERS + headers if headers else RESPONSE_HEADERS,
            }
        )
        await send(_BODY)


def pixel_route(recorder: OpenRecorder, secret_key: bytes, rules: OpenRules) -> Route:
    return Route(
        "/p/{token}.gif",
        PixelEndpoint(recorder, secret_key, rules),
        methods=["GET", "HEAD"],
        name="pixel",
    )
