"""The WhatsApp channel (Cloud API `POST /{phone-number-id}/messages`), and the pure
functions the `/callbacks/whatsapp` route uses: the signature check, the payload parser
and the GET verification handshake.

Meta signs each webhook POST with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
raw body, keyed with the app secret>`; status reports arrive as
`entry[].changes[].value.statuses[]` next to `value.metadata.phone_number_id`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from channels import http
from channels.base import ChannelCredentials, Notice, ProviderReport, RecipientResult, ReportStatus
from common.domain import Channel
from common.time import utcnow

# A text message body holds at most 4096 characters.
MAX_TEXT = 4096

# Graph API error codes that mean "too fast, try later", whatever the HTTP status:
# 4 (app calls), 80007 (WABA), 130429 (throughput), 131048 (spam rate), 131056 (pair rate).
_THROTTLED = frozenset({4, 80007, 130429, 131048, 131056})
# 190: the access token is invalid or expired.
_BAD_TOKEN = 190


class WhatsAppChannel:
    channel: Channel = Channel.WHATSAPP

    def __init__(self, api_url: str, *, timeout: float) -> None:
        self._api_url = api_url.rstrip("/")
        self._host = http.host_of(api_url)
        self._client = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, notice: Notice, credentials: ChannelCredentials) -> RecipientResult:
        address = notice.address
        phone_number_id = credentials.whatsapp_phone_number_id
        token = credentials.whatsapp_access_token
        if not phone_number_id or not token:
            return http.not_configured(address, "WhatsApp phone number id and access token")
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": address.strip(),
            "type": "text",
            "text": {"preview_url": False, "body": http.shorten(notice.text, MAX_TEXT)},
        }
        try:
            response = await self._client.post(
                f"{self._api_url}/{quote(phone_number_id, safe='')}/messages",
                json=payload,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            return http.transport_failure(address, exc, host=self._host, secrets=(token,))
        return self._result(address, response, token)

    def _result(self, address: str, response: httpx.Response, token: str) -> RecipientResult:
        status = response.status_code
        body = http.json_object(response) or {}
        wamid = _first_message_id(body)
        if 200 <= status < 300 and wamid is not None:
            return http.accepted(
                address, status, f"accepted as {wamid}", host=self._host, provider_message_id=wamid
            )
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        refusal = http.Refusal(
            status,
            http.provider_code(code, status),
            http.redact(_error_text(error, response), token),
            retry_after=http.retry_after_seconds(response),
            credentials_refused=(
                "WhatsApp refused the access token" if status == 401 or code == _BAD_TOKEN else None
            ),
            throttled=code in _THROTTLED,
        )
        return http.refusal_result(address, refusal, host=self._host)


def _first_message_id(body: dict[str, object]) -> str | None:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        if isinstance(wamid, str) and wamid:
            return wamid
    return None


def _error_text(error: dict[object, object], response: httpx.Response) -> str:
    text = http.provider_words(error.get("message"), response)
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details and details not in text:
        text = f"{text}: {details}"
    return text


# --- Callbacks ---


def verify_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` (X-Hub-Signature-256) is the app secret's HMAC of the raw body."""
    if not app_secret or not header:
        return False
    scheme, _, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, digest.strip().lower().encode("utf-8", "replace"))


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The `hub.challenge` to echo when Meta's GET subscription check names our verify
    token, else None."""
    if not verify_token or params.get("hub.mode") != "subscribe":
        return None
    offered = params.get("hub.verify_token")
    if offered is None or not hmac.compare_digest(
        offered.encode("utf-8", "replace"), verify_token.encode("utf-8", "replace")
    ):
        return None
    return params.get("hub.challenge") or None


@dataclass(frozen=True)
class WhatsAppWebhook:
    # The business phone numbers the payload is about (each names its account).
    phone_number_ids: frozenset[str]
    reports: tuple[ProviderReport, ...]


_STATUSES = {
    "sent": ReportStatus.SENT,
    "delivered": ReportStatus.DELIVERED,
    "read": ReportStatus.READ,
    "failed": ReportStatus.FAILED,
}


def parse_webhook(payload: object) -> WhatsAppWebhook:
    """The status reports in a webhook payload. Never raises: parts of unknown shape
    (inbound `messages`, other fields Meta may add) are skipped."""
    phone_number_ids: set[str] = set()
    reports: list[ProviderReport] = []
    for value in _values(payload):
        metadata = value.get("metadata")
        if isinstance(metadata, dict):
            phone_number_id = metadata.get("phone_number_id")
            if isinstance(phone_number_id, str | int) and str(phone_number_id):
                phone_number_ids.add(str(phone_number_id))
        for status in _dicts(value.get("statuses")):
            report = _report(status)
            if report is not None:
                reports.append(report)
    return WhatsAppWebhook(frozenset(phone_number_ids), tuple(reports))


def _dicts(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _values(payload: object) -> list[dict[str, object]]:
    if not isinstance(payload, dict):
        return []
    values: list[dict[str, object]] = []
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if isinstance(value, dict):
                values.append(value)
    return values


def _report(status: dict[str, object]) -> ProviderReport | None:
    wamid = status.get("id")
    kind = _STATUSES.get(str(status.get("status")))
    if not isinstance(wamid, str) or not wamid or kind is None:
        return None
    error_code = error_message = None
    if kind is ReportStatus.FAILED:
        errors = _dicts(status.get("errors"))
        if errors:
            code = errors[0].get("code")
            error_code = str(code) if code is not None else None
            text = errors[0].get("title") or errors[0].get("message")
            error_message = str(text) if text else None
    return ProviderReport(
        channel=Channel.WHATSAPP,
        provider_message_id=wamid,
        status=kind,
        at=_timestamp(status.get("timestamp")),
        error_code=error_code,
        error_message=error_message,
    )


def _timestamp(value: object) -> datetime:
    # Unix seconds as a string; a report without a usable one is dated on arrival
    # rather than dropped (a lost "read" would be worse than an approximate time).
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (ValueError, OverflowError, OSError):
        return utcnow()
