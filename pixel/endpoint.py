"""GET /p/<token>.gif: always the same tiny GIF; a genuine token records an open."""

from __future__ import annotations

import base64
import datetime as dt
import logging

from broadcaster import Broadcast
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.broadcast import publish_changes
from db.deliveries import record_open
from db.engine import Database
from common.tokens import verify

log = logging.getLogger(__name__)

# A transparent 1x1 GIF89a.
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
assert len(GIF) == 43

_HEADERS = {
    # Every load must reach us: a cached pixel records nothing.
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}


def pixel_route(db: Database, broadcast: Broadcast, secret_key: bytes) -> Route:
    async def pixel(request: Request) -> Response:
        pixel_id = verify(request.path_params["token"], secret_key)
        if pixel_id is not None:
            try:
                async with db.write() as conn:
                    changes = await record_open(conn, pixel_id, dt.datetime.now(dt.UTC))
            except Exception:
                # The image is still answered: a mail client must never see an error.
                log.exception("could not record a pixel open")
            else:
                await publish_changes(broadcast, changes)
        return Response(GIF, media_type="image/gif", headers=_HEADERS)

    return Route("/p/{token}.gif", pixel, methods=["GET", "HEAD"], name="pixel")
