"""GET /p/<token>.gif: always the same tiny GIF; a genuine token records an open, with
what its user agent and address say about who loaded it (read confidence)."""

from __future__ import annotations

import base64
import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.metrics import PIXEL_HITS
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


def pixel_route(recorder: OpenRecorder, secret_key: bytes, rules: OpenRules) -> Route:
    async def pixel(request: Request) -> Response:
        pixel_id = verify(request.path_params["token"], secret_key, PIXEL)
        if pixel_id is None:
            PIXEL_HITS.labels("invalid").inc()
        elif request.method == "GET":
            # A HEAD (link checkers, some proxies) shows no image to anyone: no open.
            # The address is the client's as uvicorn's proxy headers give it; only its
            # network's label is kept.
            hit = classify_hit(
                rules,
                user_agent=request.headers.get("user-agent"),
                client_ip=request.client.host if request.client else None,
            )
            verdict = hit.verdict
            await recorder.record(
                Open(
                    pixel_id,
                    dt.datetime.now(dt.UTC),
                    verdict.confidence,
                    verdict.network,
                    verdict.reason,
                    hit.machine_within_seconds,
                    hit.fast_network,
                )
            )
        return Response(GIF, media_type="image/gif", headers=_HEADERS)

    return Route("/p/{token}.gif", pixel, methods=["GET", "HEAD"], name="pixel")
