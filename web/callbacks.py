"""POST /callbacks/<channel>: reports that providers and mail servers send us.

A provider's report is believed only when its signature proves the provider sent it:
a bad or missing signature is a 401 and changes nothing. The account (and so the secret
to check with) is found from the payload itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Collection, Sequence
from urllib.parse import parse_qsl

from broadcaster import Broadcast
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from broadcast import publish_changes
from channels import sms, whatsapp
from channels.base import ProviderReport
from common.domain import Channel
from common.metrics import CALLBACKS
from common.time import utcnow
from db import credentials as db_credentials
from db.engine import Database
from inbound.bounces import MAX_BOUNCE_BYTES, record_bounce
from inbound.reports import apply_reports

log = logging.getLogger(__name__)


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


def email_bounce_route(
    db: Database, broadcast: Broadcast, secret_key: bytes, shared_secret: str | None
) -> Route:
    """For an MTA that pipes a returned message in (e.g. Postfix `pipe` to curl): the
    body is the raw RFC 5322 message, the request carries `Authorization: Bearer
    <BOUNCE_WEBHOOK_SECRET>`. Anything else is refused before the body is read, and
    nothing is kept (ADR 0016).

    A bounce acts on the message its VERP token (with our MAC) names, or, without a
    token, on the one whose Message-ID it quotes; otherwise it is kept for review and
    changes nothing."""

    async def email_bounce(request: Request) -> Response:
        if shared_secret is None:
            CALLBACKS.labels(Channel.EMAIL.value, "forged").inc()
            return JSONResponse(
                {
                    "error": "the bounce webhook is off: set BOUNCE_WEBHOOK_SECRET on the "
                    "server and send it as 'Authorization: Bearer <secret>'"
                },
                status_code=403,
            )
        if not _bearer_matches(request.headers.get("authorization"), shared_secret):
            CALLBACKS.labels(Channel.EMAIL.value, "forged").inc()
            log.warning("rejected a bounce callback without the shared secret")
            return JSONResponse(
                {"error": "send 'Authorization: Bearer <BOUNCE_WEBHOOK_SECRET>'"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="bounces"'},
            )
        try:
            raw = await _body(request, MAX_BOUNCE_BYTES)
        except _TooLarge:
            return JSONResponse({"error": "a bounce is at most 10 MiB"}, status_code=413)
        if not raw.strip():
            return JSONResponse({"error": "the body must be the raw message"}, status_code=400)
        envelope_to = request.query_params.getlist("recipient")
        outcome = await record_bounce(
            db,
            secret_key,
            raw,
            source="http",
            envelope_to=envelope_to,
            match_message_id=True,
        )
        await publish_changes(broadcast, outcome.changes)
        return JSONResponse(
            {
                "bounce_id": str(outcome.bounce_id),
                "kind": outcome.report.kind.value,
                "deliveries": [str(change.delivery_id) for change in outcome.changes],
            }
        )

    return Route("/callbacks/email-bounce", email_bounce, methods=["POST"])


def _bearer_matches(header: str | None, secret: str) -> bool:
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Compared in constant time: the time taken does not tell how much of it was right.
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), secret.encode())


def whatsapp_routes(db: Database, broadcast: Broadcast) -> list[Route]:
    async def handshake(request: Request) -> Response:
        """Meta's GET verification: echo hub.challenge if the verify token is one of ours."""
        async with db.read() as conn:
            tokens = await db_credentials.whatsapp_verify_tokens(conn)
        for token in tokens:
            challenge = whatsapp.verify_handshake(request.query_params, token)
            if challenge is not None:
                return PlainTextResponse(challenge)
        return PlainTextResponse("verification failed", status_code=403)

    async def statuses(request: Request) -> Response:
        try:
            body = await _body(request, MAX_CALLBACK_BYTES)
            webhook = whatsapp.parse_webhook(json.loads(body))
        except _TooLarge:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        except RecursionError:
            return JSONResponse({"error": "the JSON is nested too deeply"}, status_code=400)
        # Every phone number in the payload must belong to an account whose app secret
        # signed it; otherwise nothing in it is believed.
        secrets: list[str] = []
        account_ids: set[uuid.UUID] = set()
        async with db.read() as conn:
            for phone_number_id in webhook.phone_number_ids:
                found = await db_credentials.account_for_whatsapp(conn, phone_number_id)
                secret = found[1].get("whatsapp_app_secret") if found else None
                if found and secret:
                    secrets.append(secret)
                    account_ids.add(found[0])
        signature = request.headers.get("x-hub-signature-256")
        if (
            not webhook.phone_number_ids
            or len(secrets) != len(webhook.phone_number_ids)
            or not all(whatsapp.verify_signature(secret, body, signature) for secret in secrets)
        ):
            return _forged(Channel.WHATSAPP)
        # A valid signature proves who sent it, not whose messages it names.
        return await _apply(db, broadcast, webhook.reports, account_ids)

    return [
        Route("/callbacks/whatsapp", handshake, methods=["GET"]),
        Route("/callbacks/whatsapp", statuses, methods=["POST"]),
    ]


def sms_route(db: Database, broadcast: Broadcast, public_base_url: str) -> Route:
    async def status(request: Request) -> Response:
        try:
            body = await _body(request, MAX_CALLBACK_BYTES)
        except _TooLarge:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        # Twilio signs the URL it was given: ours as the public sees it, not as the
        # proxy in front of us forwarded it.
        url = public_base_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        signature = request.headers.get("x-twilio-signature")
        async with db.read() as conn:
            candidates = await db_credentials.accounts_for_twilio(
                conn, params.get("AccountSid", "")
            )
        verified = {
            account_id
            for account_id, credentials in candidates
            if (token := credentials.get("twilio_auth_token"))
            and sms.verify_signature(token, url, params, signature)
        }
        if not verified:
            return _forged(Channel.SMS)
        report = sms.parse_status(params)
        return await _apply(db, broadcast, [report] if report is not None else [], verified)

    return Route("/callbacks/sms", status, methods=["POST"])


MAX_CALLBACK_BYTES = 1024 * 1024


def _forged(channel: Channel) -> Response:
    CALLBACKS.labels(channel.value, "forged").inc()
    log.warning("rejected a %s callback with a bad or missing signature", channel.value)
    return JSONResponse({"error": "invalid signature"}, status_code=401)


async def _apply(
    db: Database,
    broadcast: Broadcast,
    reports: Sequence[ProviderReport],
    account_ids: Collection[uuid.UUID],
) -> Response:
    outcome = await apply_reports(db, reports, received_at=utcnow(), account_ids=account_ids)
    await publish_changes(broadcast, outcome.changes)
    return JSONResponse(
        {"applied": outcome.applied, "duplicates": outcome.duplicates, "unknown": outcome.unknown}
    )
