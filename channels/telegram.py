"""The Telegram channel: the Bot API's `sendMessage`.

Every Bot API answer is `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N,
"description": "...", "parameters": {"retry_after": S, ...}}` (core.telegram.org/bots/api,
"Making requests"). The bot token is part of the URL path, so the URL that httpx logs and
quotes in its errors carries a placeholder; the token goes in only on the way to the wire.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from channels import http
from channels.base import ChannelCredentials, Notice, Outcome, RecipientResult
from common.domain import Channel

# sendMessage takes 1-4096 characters of text; a longer notice is cut, not refused.
MAX_TEXT = 4096

# Stands in for "bot<token>" in the URL httpx sees (see http.HiddenPathTransport).
_BOT_SLOT = "bot__TOKEN__"


class TelegramChannel:
    channel: Channel = Channel.TELEGRAM

    def __init__(self, api_url: str, *, timeout: float) -> None:
        self._api_url = api_url.rstrip("/")
        self._api = httpx.URL(self._api_url)
        self._api_path = self._api.raw_path.rstrip(b"/")
        self._host = http.host_of(api_url)
        # The token is part of the path: only the transport puts it in, on the way to
        # the wire, so no log line or error text can quote it.
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=http.HiddenPathTransport(), trust_env=False
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, notice: Notice, credentials: ChannelCredentials) -> RecipientResult:
        address = notice.address
        token = credentials.telegram_bot_token
        if not token:
            return http.not_configured(address, "Telegram bot token")
        chat_id = address.strip()
        if not chat_id:
            return RecipientResult(
                address, Outcome.PERMANENT, "INVALID_ADDRESS", "the Telegram chat id is empty"
            )
        try:
            response = await self._client.post(
                f"{self._api_url}/{_BOT_SLOT}/sendMessage",
                json={"chat_id": chat_id, "text": http.shorten(notice.text, MAX_TEXT)},
                extensions={http.WIRE_URL: self._wire_url(token)},
            )
        except httpx.HTTPError as exc:
            return http.transport_failure(address, exc, host=self._host, secrets=(token,))
        return self._result(address, chat_id, response, token)

    def _wire_url(self, token: str) -> httpx.URL:
        wire_path = self._api_path + f"/bot{quote(token, safe=':')}/sendMessage".encode()
        return self._api.copy_with(raw_path=wire_path)

    def _result(
        self, address: str, chat_id: str, response: httpx.Response, token: str
    ) -> RecipientResult:
        status = response.status_code
        body = http.json_object(response) or {}
        result = body.get("result")
        if body.get("ok") is True and isinstance(result, dict) and "message_id" in result:
            chat = result.get("chat")
            chat_key = chat.get("id", chat_id) if isinstance(chat, dict) else chat_id
            return http.accepted(
                address,
                status,
                f"message {result['message_id']} sent to chat {chat_key}",
                host=self._host,
                # Message ids count per chat: only the pair names one message.
                provider_message_id=f"{chat_key}:{result['message_id']}",
            )
        # 403 (the user blocked the bot or never started it) and 400 (chat not found, and
        # the like) are refusals that sending again cannot change.
        refusal = http.Refusal(
            status,
            http.provider_code(body.get("error_code"), status),
            http.redact(_description(body, response), token),
            retry_after=_retry_after(body) or http.retry_after_seconds(response),
            # 401 is a revoked or wrong token, 404 one that is malformed (the path names
            # no bot): either way, nothing sends until the account fixes it.
            credentials_refused="Telegram refused the bot token" if status in (401, 404) else None,
        )
        return http.refusal_result(address, refusal, host=self._host)


def _description(body: dict[str, object], response: httpx.Response) -> str:
    text = http.provider_words(body.get("description"), response)
    parameters = body.get("parameters")
    if isinstance(parameters, dict) and "migrate_to_chat_id" in parameters:
        # The group became a supergroup: the person's address needs the new id.
        text += f" (the chat's new id is {parameters['migrate_to_chat_id']})"
    return text


def _retry_after(body: dict[str, object]) -> float | None:
    parameters = body.get("parameters")
    if isinstance(parameters, dict):
        value = parameters.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
