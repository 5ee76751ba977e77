"""The live dashboard at `/`: one HTML page and its static assets (ES modules, CSS, SVG).

The files under web/static/ are written by hand and served as they are: there is no build
step, no bundler and nothing fetched from a CDN, so the page works on a machine with no
internet access and a newcomer can read its source in the browser.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page renders user text (task titles, comments, SMTP replies) with textContent only;
# this policy is the second line of defence should that ever slip: no inline script, no
# script from anywhere but this server, no plugins, and no framing by other sites.
# `ws:`/`wss:` are listed because older browsers do not count the page's own websocket
# origin as 'self'.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self' ws: wss:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is tiny and changes with each release: always revalidate (ETag).
    "Cache-Control": "no-cache",
}


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser revalidates on each load, so that an upgraded server
    never runs a page whose modules come half from the cache and half from the new release."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def dashboard_routes() -> list[BaseRoute]:
    """`/` (the page) and `/static/…` (its modules, styles and icons)."""

    async def page(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    return [
        Route("/", page, methods=["GET"], name="dashboard"),
        Mount("/static", _RevalidatedStaticFiles(directory=STATIC_DIR), name="static"),
    ]
