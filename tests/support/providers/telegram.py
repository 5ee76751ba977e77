"""A local Telegram Bot API: `sendMessage`, answered the way core.telegram.org/bots/api
documents it (`{"ok": true, "result": Message}` or `{"ok": false, "error_code",
"description", "parameters"}`).

The chat id chooses the answer:

| chat id   | answer                                                          |
|-----------|-----------------------------------------------------------------|
| "blocked" | 403 "Forbidden: bot was blocked by the user"                    |
| "missing" | 400 "Bad Request: chat not found"                               |
| "busy"    | 429 "Too Many Requests: retry after 3", parameters.retry_after 3 |
| "flaky"   | 502 (nginx's HTML page) the first time, then OK                 |
| other     | OK, message ids counting from 1 per chat                        |

A wrong bot token is 401 "Unauthorized"; a path that names no bot is 404 "Not Found".
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.support.providers.server import LocalServer, RecordedRequest

BLOCKED = "blocked"
MISSING = "missing"
BUSY = "busy"
FLAKY = "flaky"
RETRY_AFTER = 3

BOT_TOKEN = "7000000001:AAHtestTOKENforBeaconEmulator_x1"

_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _error(status: int, description: str, **parameters: object) -> JSONResponse:
    body: dict[str, object] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


class TelegramEmulator(LocalServer):
    def __init__(self, bot_token: str = BOT_TOKEN) -> None:
        self.bot_token = bot_token
        # Messages it accepted: (chat id, message id, text).
        self.sent: list[tuple[str, int, str]] = []
        self._attempts: Counter[str] = Counter()
        self._message_ids: Counter[str] = Counter()
        super().__init__(
            Starlette(routes=[Route("/{bot}/{method}", self._call, methods=["GET", "POST"])])
        )

    @property
    def api_url(self) -> str:
        """What TELEGRAM_API_URL would be set to."""
        return self.url

    async def _call(self, request: Request) -> Response:
        recorded = await self.record(request)
        bot = request.path_params["bot"]
        if not bot.startswith("bot") or ":" not in bot:
            return _error(404, "Not Found")
        if bot.removeprefix("bot") != self.bot_token:
            return _error(401, "Unauthorized")
        if request.path_params["method"].lower() != "sendmessage":
            return _error(404, "Not Found")
        params = _params(request, recorded)
        chat_id = str(params.get("chat_id", "")).strip()
        text = str(params.get("text", ""))
        if not chat_id:
            return _error(400, "Bad Request: chat_id is empty")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        self._attempts[chat_id] += 1
        if chat_id == BLOCKED:
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat_id == MISSING:
            return _error(400, "Bad Request: chat not found")
        if chat_id == BUSY:
            return _error(
                429, f"Too Many Requests: retry after {RETRY_AFTER}", retry_after=RETRY_AFTER
            )
        if chat_id == FLAKY and self._attempts[chat_id] == 1:
            return HTMLResponse(_BAD_GATEWAY, status_code=502)
        return JSONResponse({"ok": True, "result": self._message(chat_id, text)})

    def _message(self, chat_id: str, text: str) -> dict[str, object]:
        self._message_ids[chat_id] += 1
        message_id = self._message_ids[chat_id]
        self.sent.append((chat_id, message_id, text))
        bot_id = int(self.bot_token.split(":", 1)[0])
        return {
            "message_id": message_id,
            "from": {
                "id": bot_id,
                "is_bot": True,
                "first_name": "Beacon",
                "username": "beacon_test_bot",
            },
            "chat": {
                "id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id,
                "type": "private",
            },
            "date": int(time.time()),
            "text": text,
        }


def _params(request: Request, recorded: RecordedRequest) -> dict[str, Any]:
    """The Bot API takes parameters in the query string, as a form or as JSON."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = recorded.json()
        if isinstance(body, dict):
            params.update(body)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(recorded.body.decode()))
    return params
