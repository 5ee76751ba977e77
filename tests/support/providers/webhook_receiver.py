"""A webhook receiver that checks Beacon's signature and answers by URL path, including
the answers of a Slack incoming webhook.

| path            | answer                                                  |
|-----------------|---------------------------------------------------------|
| /ok             | 200 "ok" (text/plain: what Slack answers)               |
| /accepted       | 202, empty                                              |
| /slack-error    | 200 {"ok": false, "error": "channel_not_found"}         |
| /not-found      | 404 "channel_not_found" (Slack's plain-text refusal)    |
| /request-timeout| 408 "Request Timeout"                                   |
| /busy           | 429 "rate_limited" with Retry-After: 7                  |
| /broken         | 500 "Internal Server Error"                             |
| /moved          | 301 to /ok                                              |

With a signing secret, a request whose signature does not verify is answered 401
"invalid signature" whatever the path.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.providers.server import LocalServer, RecordedRequest

RETRY_AFTER = 7
TOLERANCE = 300


class WebhookReceiver(LocalServer):
    def __init__(self, signing_secret: str | None = None) -> None:
        self.signing_secret = signing_secret
        # Per request: whether its signature verified (None without a secret).
        self.signature_valid: list[bool | None] = []
        super().__init__(Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])]))

    def _verified(self, request: RecordedRequest) -> bool:
        """Beacon's scheme, written out as a receiver would from the documentation:
        v1=hex(HMAC-SHA256(secret, "<timestamp>.<body>")), timestamp within 5 minutes."""
        assert self.signing_secret is not None
        timestamp = request.headers.get("x-beacon-timestamp", "")
        header = request.headers.get("x-beacon-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
            return False
        mac = hmac.new(
            self.signing_secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
        )
        return hmac.compare_digest(header, "v1=" + mac.hexdigest())

    async def _receive(self, request: Request) -> Response:
        recorded = await self.record(request)
        valid = None if self.signing_secret is None else self._verified(recorded)
        self.signature_valid.append(valid)
        if valid is False:
            return PlainTextResponse("invalid signature", status_code=401)
        match request.path_params["path"]:
            case "ok":
                return PlainTextResponse("ok")
            case "accepted":
                return Response(status_code=202)
            case "slack-error":
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            case "not-found":
                return PlainTextResponse("channel_not_found", status_code=404)
            case "request-timeout":
                return PlainTextResponse("Request Timeout", status_code=408)
            case "busy":
                return PlainTextResponse(
                    "rate_limited", status_code=429, headers={"Retry-After": str(RETRY_AFTER)}
                )
            case "broken":
                return PlainTextResponse("Internal Server Error", status_code=500)
            case "moved":
                return RedirectResponse("/ok", status_code=301)
            case _:
                return PlainTextResponse("no_service", status_code=404)
