"""POST /callbacks/<channel>: reports that providers and mail servers send us."""

from __future__ import annotations

from broadcaster import Broadcast
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.broadcast import publish_changes
from db.engine import Database
from sending.bounces import MAX_BOUNCE_BYTES, record_bounce


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def email_bounce_route(db: Database, broadcast: Broadcast, secret_key: bytes) -> Route:
    """For an MTA that pipes a returned message in (e.g. Postfix `pipe` to curl): the
    body is the raw RFC 5322 message. The VERP token inside proves which message it is
    about; a bounce without a valid one is kept for review and changes nothing."""

    async def email_bounce(request: Request) -> Response:
        try:
            raw = await _body(request, MAX_BOUNCE_BYTES)
        except _TooLarge:
            return JSONResponse({"error": "a bounce is at most 10 MiB"}, status_code=413)
        if not raw.strip():
            return JSONResponse({"error": "the body must be the raw message"}, status_code=400)
        envelope_to = request.query_params.getlist("recipient")
        outcome = await record_bounce(db, secret_key, raw, source="http", envelope_to=envelope_to)
        await publish_changes(broadcast, outcome.changes)
        return JSONResponse(
            {
                "bounce_id": str(outcome.bounce_id),
                "kind": outcome.report.kind.value,
                "deliveries": [str(change.delivery_id) for change in outcome.changes],
            }
        )

    return Route("/callbacks/email-bounce", email_bounce, methods=["POST"])
