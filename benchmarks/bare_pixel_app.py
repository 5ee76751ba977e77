"""The baseline of `benchmarks.pixel_throughput`: a bare Starlette route that checks the
same HMAC and answers the same GIF with the same headers, and records nothing.

    SECRET_KEY=... python -m uvicorn benchmarks.bare_pixel_app:app
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.tokens import PIXEL, verify
from pixel.endpoint import GIF

KEY = os.environ.get("SECRET_KEY", "benchmark-secret-key").encode()
HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}


async def pixel(request: Request) -> Response:
    verify(request.path_params["token"], KEY, PIXEL)
    return Response(GIF, media_type="image/gif", headers=HEADERS)


async def healthz(_: Request) -> Response:
    return Response("ok")


app = Starlette(routes=[Route("/p/{token}.gif", pixel), Route("/healthz", healthz)])
