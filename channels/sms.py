"""The SMS channel, on Twilio's (or a Twilio-compatible) Messages API, and the pure
functions the `/callbacks/sms` route uses.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth (account SID,
auth token) and the form fields `To`, `From`, `Body`, `StatusCallback`. Twilio answers
`201` with the Message resource, or an error `{"code", "message", "more_info", "status"}`.

Twilio signs every status callback with `X-Twilio-Signature`: base64 of the HMAC-SHA1,
keyed with the auth token, of the full URL it posted to followed by each POST parameter's
name and value, in the parameters' sorted order (twilio.com/docs/usage/webhooks/
webhooks-security).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from channels import http
from channels.base import ChannelCredentials, Notice, ProviderReport, RecipientResult, ReportStatus
from common.domain import Channel
from common.time import utcnow

# Twilio refuses a Body longer than 1600 characters (error 21617).
MAX_TEXT = 1600

# 20003: authentication failed.
_AUTHENTICATE = 20003


class TwilioSmsChannel:
    channel: Channel = Channel.SMS

    def __init__(self, api_url: str, *, timeout: float, status_callback_url: str | None) -> None:
        self._api_url = api_url.rstrip("/")
        self._host = http.host_of(api_url)
        self._status_callback_url = status_callback_url
        self._client = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, notice: Notice, credentials: ChannelCredentials) -> RecipientResult:
        address = notice.address
        sid = credentials.twilio_account_sid
        token = credentials.twilio_auth_token
        sender = credentials.twilio_from_number
        if not sid or not token or not sender:
            return http.not_configured(address, "Twilio account SID, auth token and sending number")
        form = {"To": address.strip(), "From": sender, "Body": http.shorten(notice.text, MAX_TEXT)}
        if self._status_callback_url:
            form["StatusCallback"] = self._status_callback_url
        try:
            response = await self._client.post(
                f"{self._api_url}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json",
                data=form,
                auth=(sid, token),
            )
        except httpx.HTTPError as exc:
            return http.transport_failure(address, exc, host=self._host, secrets=(token,))
        return self._result(address, response, token)

    def _result(self, address: str, response: httpx.Response, token: str) -> RecipientResult:
        status = response.status_code
        body = http.json_object(response) or {}
        message_sid = body.get("sid")
        if 200 <= status < 300 and isinstance(message_sid, str) and message_sid:
            return http.accepted(
                address,
                status,
                f"{body.get('status') or 'accepted'} as {message_sid}",
                host=self._host,
                provider_message_id=message_sid,
            )
        code = body.get("code")
        refusal = http.Refusal(
            status,
            http.provider_code(code, status),
            http.redact(http.provider_words(body.get("message"), response), token),
            retry_after=http.retry_after_seconds(response),
            credentials_refused=(
                "Twilio refused the account SID and auth token"
                if status == 401 or code == _AUTHENTICATE
                else None
            ),
        )
        return http.refusal_result(address, refusal, host=self._host)


# --- Callbacks ---


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The `X-Twilio-Signature` Twilio sends when it POSTs `params` to `url`."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(
    auth_token: str, url: str, params: Mapping[str, str], header: str | None
) -> bool:
    """True when `header` is the signature of `params` posted to `url` (the URL exactly
    as Twilio was given it: scheme, host, port, path and query)."""
    if not auth_token or not header:
        return False
    expected = signature(auth_token, url, params).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


_STATUSES = {
    "sent": ReportStatus.SENT,
    "delivered": ReportStatus.DELIVERED,
    "read": ReportStatus.READ,
    "undelivered": ReportStatus.FAILED,
    "failed": ReportStatus.FAILED,
}

# The titles of Twilio's common delivery errors (twilio.com/docs/api/errors): a status
# callback carries only the code.
_ERRORS = {
    "21610": "Attempt to send to unsubscribed recipient",
    "21614": "'To' number is not a valid mobile number",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
    "30010": "Message price exceeds max price",
}


def parse_status(form: Mapping[str, str]) -> ProviderReport | None:
    """The report in a status callback, or None for the steps before the carrier
    (queued, accepted, scheduled, sending) and anything else."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    raw = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    status = _STATUSES.get(raw)
    if not sid or status is None:
        return None
    error_code = error_message = None
    if status is ReportStatus.FAILED:
        error_code = form.get("ErrorCode") or None
        title = form.get("ErrorMessage") or _ERRORS.get(error_code or "")
        error_message = f"Twilio reported the message {raw}" + (f": {title}" if title else "")
    return ProviderReport(
        channel=Channel.SMS,
        provider_message_id=sid,
        status=status,
        # Twilio's callback carries no timestamp: it is sent as the status changes.
        at=utcnow(),
        error_code=error_code,
        error_message=error_message,
    )
