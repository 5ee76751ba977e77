"""What wraps the application, outermost first: the request log (every request, once),
then the pixel's short way, then Starlette's own middleware and routes.

The pixel is the hottest route by far: its hits skip Starlette's error middleware and
the routing through every other route, and go straight to it (it never raises: a pixel
is always answered)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from web.logging import RequestLog


class PixelFirst:
    def __init__(self, app: ASGIApp, pixel: Route) -> None:
        self.app = app
        self.pixel = pixel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/p/"):
            match, child = self.pixel.matches(scope)
            if match is Match.FULL:
                await self.pixel.handle({**scope, **child}, receive, send)
                return
        await self.app(scope, receive, send)


class BeaconApp(Starlette):
    """Starlette, with the request log and the pixel's short way around its stack."""

    pixel: Route | None = None

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        if self.pixel is not None:
            app = PixelFirst(app, self.pixel)
        return RequestLog(app)
