"""What wraps the application, outermost first: the pixel's short way, then the request
log (every other request, once), the limits on request bodies (web/request_limits.py),
then Starlette's own middleware and routes.

The pixel is the hottest route by far: its hits skip the request log's middleware,
Starlette's error middleware and the routing through every other route, and go straight
to the pixel's endpoint, which never raises (a pixel is always answered). A hit is logged
(`log_pixel_request`, with its request id, which its answer carries) only with
LOG_PIXEL_HITS: the line could name neither the message nor the reader, so at thousands
of hits a second it would be volume without information (the metrics count hits by
outcome)."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pixel.endpoint import PixelEndpoint
from web.logging import REQUEST_ID_HEADER, RequestLog, log_pixel_request, request_id_of
from web.request_limits import BodyLimits

_PREFIX = "/p/"
_SUFFIX = ".gif"


class PixelFirst:
    def __init__(self, app: ASGIApp, pixel: PixelEndpoint, *, log_hits: bool = False) -> None:
        self.app = app
        self.pixel = pixel
        self.log_hits = log_hits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        # What the route "/p/{token}.gif" matches, for the methods it allows; anything
        # else (a 405, a 404) takes the ordinary way.
        if (
            path.startswith(_PREFIX)
            and path.endswith(_SUFFIX)
            and scope["method"] in ("GET", "HEAD")
        ):
            token = path[len(_PREFIX) : -len(_SUFFIX)]
            if token and "/" not in token:
                if not self.log_hits:
                    await self.pixel.answer(scope, token, send, [])
                    return
                started = time.perf_counter()
                rid = request_id_of(scope)
                status = 500
                try:
                    await self.pixel.answer(
                        scope, token, send, [(REQUEST_ID_HEADER, rid.encode("ascii"))]
                    )
                    status = 200
                finally:
                    log_pixel_request(scope["method"], status, time.perf_counter() - started, rid)
                return
        await self.app(scope, receive, send)


class BeaconApp(Starlette):
    """Starlette, with the request log and the pixel's short way around its stack."""

    pixel: Route | None = None
    log_pixel_hits = False
    body_caps: dict[str, int] = {}
    body_timeout = 30.0

    def build_middleware_stack(self) -> ASGIApp:
        limited = BodyLimits(
            super().build_middleware_stack(), caps=self.body_caps, timeout=self.body_timeout
        )
        app: ASGIApp = RequestLog(limited)
        endpoint = self.pixel.endpoint if self.pixel is not None else None
        if isinstance(endpoint, PixelEndpoint):
            app = PixelFirst(app, endpoint, log_hits=self.log_pixel_hits)
        return app
