"""A local WhatsApp Cloud API: `POST /{version}/{phone-number-id}/messages`, answered
the way Meta documents it, and status webhooks sent the way Meta sends them.

Accepted: `{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
"messages": [{"id": "wamid.…"}]}`. Refused: Graph API errors `{"error": {"message",
"type", "code", "error_data": {"messaging_product", "details"}, "fbtrace_id"}}`.

The recipient chooses the answer:

| "to" ends in | answer                                                       |
|--------------|--------------------------------------------------------------|
| "0000"       | 400, error 131026 "Message Undeliverable"                    |
| "0429"       | 429, error 130429 "Rate limit hit"                           |
| "0500"       | 500, error 131000 "Something went wrong"                     |
| other        | 200 with a new wamid                                         |

A missing or wrong bearer token is 401, error 190 (OAuthException); a phone number id
other than its own is 400, error 100.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.providers.server import LocalServer

UNDELIVERABLE = "0000"
RATE_LIMITED = "0429"
BROKEN = "0500"

PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE_NUMBER = "15550783881"
BUSINESS_ACCOUNT_ID = "102290129340398"
ACCESS_TOKEN = "EAAGtestACCESStokenForBeacon0123456789"
APP_SECRET = "whatsapp-app-secret-for-tests"


@dataclass(frozen=True)
class WhatsAppError:
    """An error as a failed status report carries it."""

    code: int
    title: str
    details: str = ""


def _graph_error(
    status: int, code: int, message: str, details: str | None = None, kind: str = "OAuthException"
) -> JSONResponse:
    error: dict[str, object] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return JSONResponse({"error": error}, status_code=status)


class WhatsAppEmulator(LocalServer):
    def __init__(
        self, phone_number_id: str = PHONE_NUMBER_ID, access_token: str = ACCESS_TOKEN
    ) -> None:
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        # Accepted messages: wamid -> recipient.
        self.sent: dict[str, str] = {}
        super().__init__(
            Starlette(
                routes=[
                    Route("/{version}/{phone_number_id}/messages", self._send, methods=["POST"])
                ]
            )
        )

    @property
    def api_url(self) -> str:
        """What WHATSAPP_API_URL would be set to."""
        return f"{self.url}/v21.0"

    async def _send(self, request: Request) -> Response:
        recorded = await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.path_params["phone_number_id"] != self.phone_number_id:
            return _graph_error(
                400,
                100,
                "Unsupported post request. Object with ID "
                f"'{request.path_params['phone_number_id']}' does not exist",
                kind="GraphMethodException",
            )
        try:
            body = recorded.json()
        except ValueError:
            return _graph_error(400, 100, "(#100) Invalid parameter")
        text = body.get("text") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or body.get("messaging_product") != "whatsapp"
            or body.get("type") != "text"
            or not isinstance(text, dict)
            or not text.get("body")
            or not body.get("to")
        ):
            return _graph_error(400, 100, "(#100) Invalid parameter")
        to = str(body["to"])
        if to.endswith(UNDELIVERABLE):
            return _graph_error(
                400, 131026, "(#131026) Message Undeliverable", "Message Undeliverable."
            )
        if to.endswith(RATE_LIMITED):
            return _graph_error(
                429,
                130429,
                "(#130429) Rate limit hit",
                "Message failed to send because there were too many messages sent from "
                "this phone number in a short period of time",
            )
        if to.endswith(BROKEN):
            return _graph_error(
                500, 131000, "(#131000) Something went wrong", "Something went wrong"
            )
        wamid = "wamid." + secrets.token_urlsafe(36)
        self.sent[wamid] = to
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid}],
            }
        )

    def status_payload(
        self,
        wamid: str,
        status: str,
        *,
        phone_number_id: str,
        error: WhatsAppError | None = None,
        timestamp: int | None = None,
    ) -> dict[str, object]:
        """A status webhook as Meta sends it (`field: "messages"`, `value.statuses`)."""
        report: dict[str, object] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "recipient_id": self.sent.get(wamid, "16505551234").lstrip("+"),
        }
        if status in ("sent", "delivered"):
            report["conversation"] = {
                "id": secrets.token_hex(16),
                "origin": {"type": "utility"},
            }
            report["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
        if error is not None:
            report["errors"] = [
                {
                    "code": error.code,
                    "title": error.title,
                    "message": error.title,
                    "error_data": {"details": error.details or error.title},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": BUSINESS_ACCOUNT_ID,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": DISPLAY_PHONE_NUMBER,
                                    "phone_number_id": phone_number_id,
                                },
                                "statuses": [report],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }

    async def send_status(
        self,
        callback_url: str,
        wamid: str,
        status: str,
        *,
        app_secret: str,
        phone_number_id: str,
        error: WhatsAppError | None = None,
    ) -> httpx.Response:
        """POSTs a signed status webhook to `callback_url`, as Meta does."""
        payload = self.status_payload(wamid, status, phone_number_id=phone_number_id, error=error)
        return await post_signed_webhook(callback_url, payload, app_secret=app_secret)

    async def subscribe(self, callback_url: str, verify_token: str) -> httpx.Response:
        """Meta's GET verification request, sent when a callback URL is configured."""
        async with httpx.AsyncClient() as client:
            return await client.get(
                callback_url,
                params={
                    "hub.mode": "subscribe",
                    "hub.challenge": str(secrets.randbelow(10**9)),
                    "hub.verify_token": verify_token,
                },
            )


def hub_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header Meta computes over a raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


async def post_signed_webhook(
    callback_url: str, payload: object, *, app_secret: str
) -> httpx.Response:
    # Meta escapes non-ASCII characters (\\uXXXX); the signature covers these exact bytes.
    body = json.dumps(payload).encode()
    async with httpx.AsyncClient() as client:
        return await client.post(
            callback_url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": hub_signature(app_secret, body),
                "User-Agent": "facebookexternalua",
            },
        )
