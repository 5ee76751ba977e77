"""A local Twilio Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
with HTTP basic auth, answered the way Twilio documents it, and status callbacks sent
the way Twilio sends them (a form, signed with `X-Twilio-Signature`).

Accepted: 201 with the Message resource (`sid` "SM…", `status` "queued"). Refused:
`{"code", "message", "more_info", "status"}`.

The recipient chooses the answer (the first two are Twilio's own test numbers):

| "To"           | answer                                                        |
|----------------|---------------------------------------------------------------|
| +15005550001   | 400, 21211 "The 'To' number … is not a valid phone number."   |
| +15005550004   | 400, 21610 "Attempt to send to unsubscribed recipient"        |
| +15005550429   | 429, 20429 "Too Many Requests"                                |
| +15005550500   | 500, 20500 "Internal Server Error"                            |
| other          | 201, a new SID                                                |

Wrong credentials are 401, 20003 "Authenticate".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.providers.server import LocalServer

INVALID_NUMBER = "+15005550001"
UNSUBSCRIBED = "+15005550004"
RATE_LIMITED = "+15005550429"
BROKEN = "+15005550500"

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-for-tests-0001"
FROM_NUMBER = "+15005550006"


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


@dataclass(frozen=True)
class SentMessage:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None


class TwilioEmulator(LocalServer):
    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        from_number: str = FROM_NUMBER,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.sent: dict[str, SentMessage] = {}
        super().__init__(
            Starlette(
                routes=[
                    Route(
                        "/2010-04-01/Accounts/{account_sid}/Messages.json",
                        self._create,
                        methods=["POST"],
                    )
                ]
            )
        )

    @property
    def api_url(self) -> str:
        """What TWILIO_API_URL would be set to."""
        return self.url

    def _authenticated(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return (
            user == self.account_sid
            and password == self.auth_token
            and request.path_params["account_sid"] == self.account_sid
        )

    async def _create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self._authenticated(request):
            return _error(401, 20003, "Authenticate")
        form = recorded.form()
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if sender != self.from_number:
            return _error(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        if to == INVALID_NUMBER:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to == UNSUBSCRIBED:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to == RATE_LIMITED:
            return _error(429, 20429, "Too Many Requests")
        if to == BROKEN:
            return _error(500, 20500, "Internal Server Error")
        sid = "SM" + secrets.token_hex(16)
        self.sent[sid] = SentMessage(sid, to, sender, body, form.get("StatusCallback"))
        now = formatdate(usegmt=True)
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        return JSONResponse(
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender,
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {"media": f"{base}/Media.json"},
                "to": to,
                "uri": f"{base}.json",
            },
            status_code=201,
        )

    def status_form(
        self, sid: str, status: str, *, account_sid: str, error_code: int | None = None
    ) -> dict[str, str]:
        """The form Twilio POSTs to a message's StatusCallback."""
        message = self.sent.get(sid)
        form = {
            "AccountSid": account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_ if message else self.from_number,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message.to if message else "+15558675310",
        }
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        return form

    async def send_status(
        self,
        callback_url: str,
        sid: str,
        status: str,
        *,
        auth_token: str,
        account_sid: str,
        error_code: int | None = None,
    ) -> httpx.Response:
        """POSTs a signed status callback to `callback_url`, as Twilio does."""
        form = self.status_form(sid, status, account_sid=account_sid, error_code=error_code)
        async with httpx.AsyncClient() as client:
            return await client.post(
                callback_url,
                data=form,
                headers={
                    "X-Twilio-Signature": twilio_signature(auth_token, callback_url, form),
                    "User-Agent": "TwilioProxy/1.1",
                },
            )


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's algorithm, written out independently of channels.sms: the URL, then each
    parameter name and value in sorted order, HMAC-SHA1 with the auth token, base64."""
    signed = url
    for name in sorted(params):
        signed += name + params[name]
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()
