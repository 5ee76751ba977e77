"""The contract every messenger channel keeps, run over each one against a local stand-in
for its provider (tests/support/providers), then what is particular to each channel.

The contract: an accepted notice names the provider's id for it; a refusal that retrying
cannot change is PERMANENT with the provider's code and words; a rate limit is TRANSIENT
with the wait the provider asked for; a server error, an unreachable provider and a
provider that never answers are TRANSIENT; a channel without its account's credentials
is PERMANENT NOT_CONFIGURED; and no secret ever shows in a result or in the logs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from channels import addresses, sms, webhook, whatsapp
from channels.base import (
    ChannelCredentials,
    MessengerChannel,
    Notice,
    Outcome,
    ProviderReport,
    RecipientResult,
    ReportStatus,
)
from channels.in_app import InAppChannel
from channels.registry import messenger_channels
from channels.sms import TwilioSmsChannel
from channels.telegram import TelegramChannel
from channels.webhook import WebhookChannel
from channels.whatsapp import WhatsAppChannel
from common.domain import Channel
from common.settings import Settings
from tests.support.providers import (
    LocalServer,
    SilentServer,
    TelegramEmulator,
    TwilioEmulator,
    WebhookReceiver,
    WhatsAppEmulator,
    WhatsAppError,
    refused_port,
)
from tests.support.providers import telegram as tg
from tests.support.providers import twilio as tw
from tests.support.providers import whatsapp as wa

WEBHOOK_SECRET = "whsec-beacon-test-secret-000111"


def notice(address: str, *, text: str = "Ann commented on “Ship v2”: looks good") -> Notice:
    return Notice(
        message_key="msg-7f3a",
        address=address,
        subject="New comment on Ship v2",
        text=text,
        data={"type": "comment.added", "task": {"id": "t1", "title": "Ship v2"}},
    )


# --- The contract table ---


@dataclass(frozen=True)
class Row:
    """What one channel's provider answers, address by address."""

    accepted: str
    # Where the channel's address is a URL (webhooks), the addresses below are paths on
    # the provider's base URL.
    address_is_url: bool = False
    needs_credentials: bool = True
    # (address, expected code, words expected in the message)
    refused: tuple[str, str, str] | None = None
    # (address, expected code, expected retry_after): the wait the provider asked for,
    # None where its documented answer carries no hint.
    rate_limited: tuple[str, str, float | None] | None = None
    # (address, expected code)
    server_error: tuple[str, str] | None = None


CONTRACT: dict[str, Row] = {
    "telegram": Row(
        accepted="123456789",
        refused=(tg.BLOCKED, "403", "Forbidden: bot was blocked by the user"),
        rate_limited=(tg.BUSY, "429", float(tg.RETRY_AFTER)),
        server_error=(tg.FLAKY, "502"),
    ),
    "whatsapp": Row(
        accepted="+16505551234",
        refused=("+1650555" + wa.UNDELIVERABLE, "131026", "Message Undeliverable"),
        rate_limited=("+1650555" + wa.RATE_LIMITED, "130429", None),
        server_error=("+1650555" + wa.BROKEN, "131000"),
    ),
    "sms": Row(
        accepted="+15558675310",
        refused=(tw.INVALID_NUMBER, "21211", "is not a valid phone number"),
        rate_limited=(tw.RATE_LIMITED, "20429", None),
        server_error=(tw.BROKEN, "20500"),
    ),
    "webhook": Row(
        accepted="/ok",
        address_is_url=True,
        needs_credentials=False,
        refused=("/not-found", "404", "channel_not_found"),
        rate_limited=("/busy", "429", 7.0),
        server_error=("/broken", "500"),
    ),
    "in_app": Row(accepted="person-42", needs_credentials=False),
}

ALL = list(CONTRACT)
OVER_HTTP = [name for name in ALL if CONTRACT[name].refused is not None]
WITH_CREDENTIALS = [name for name in ALL if CONTRACT[name].needs_credentials]


@dataclass
class Harness:
    """One channel, pointed at its provider's stand-in."""

    name: str
    row: Row
    credentials: ChannelCredentials
    secrets: tuple[str, ...]
    base_url: str
    make: Callable[[str, float], MessengerChannel]
    # The provider's stand-in (None for in-app, which has no provider).
    server: LocalServer | None = None
    channels: list[MessengerChannel] = field(default_factory=list)

    def address(self, address: str, base_url: str | None = None) -> str:
        return f"{base_url or self.base_url}{address}" if self.row.address_is_url else address

    async def send(
        self,
        address: str,
        *,
        base_url: str | None = None,
        timeout: float = 5.0,
        credentials: ChannelCredentials | None = None,
    ) -> RecipientResult:
        channel = self.make(base_url or self.base_url, timeout)
        self.channels.append(channel)
        return await channel.send(
            notice(self.address(address, base_url)),
            self.credentials if credentials is None else credentials,
        )


def _emulator(name: str) -> LocalServer | None:
    if name == "telegram":
        return TelegramEmulator()
    if name == "whatsapp":
        return WhatsAppEmulator()
    if name == "sms":
        return TwilioEmulator()
    if name == "webhook":
        return WebhookReceiver(WEBHOOK_SECRET)
    return None


def _harness(name: str, server: LocalServer | None) -> Harness:
    base_url = server.url if server is not None else "http://in-app.invalid"
    row = CONTRACT[name]
    if name == "telegram":
        return Harness(
            name,
            row,
            ChannelCredentials(telegram_bot_token=tg.BOT_TOKEN),
            (tg.BOT_TOKEN,),
            base_url,
            lambda base, timeout: TelegramChannel(base, timeout=timeout),
        )
    if name == "whatsapp":
        return Harness(
            name,
            row,
            ChannelCredentials(
                whatsapp_phone_number_id=wa.PHONE_NUMBER_ID,
                whatsapp_access_token=wa.ACCESS_TOKEN,
                whatsapp_app_secret=wa.APP_SECRET,
            ),
            (wa.ACCESS_TOKEN, wa.APP_SECRET),
            base_url,
            lambda base, timeout: WhatsAppChannel(f"{base}/v21.0", timeout=timeout),
        )
    if name == "sms":
        return Harness(
            name,
            row,
            ChannelCredentials(
                twilio_account_sid=tw.ACCOUNT_SID,
                twilio_auth_token=tw.AUTH_TOKEN,
                twilio_from_number=tw.FROM_NUMBER,
            ),
            (tw.AUTH_TOKEN,),
            base_url,
            lambda base, timeout: TwilioSmsChannel(
                base, timeout=timeout, status_callback_url="https://beacon.test/callbacks/sms"
            ),
        )
    if name == "webhook":
        return Harness(
            name,
            row,
            ChannelCredentials(webhook_signing_secret=WEBHOOK_SECRET),
            (WEBHOOK_SECRET,),
            base_url,
            # The stand-ins listen on 127.0.0.1, which webhooks refuse unless allowed.
            lambda base, timeout: WebhookChannel(timeout=timeout, allow_private=True),
        )
    return Harness(name, row, ChannelCredentials(), (), base_url, lambda _b, _t: InAppChannel())


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    name: str = request.param
    server = _emulator(name)
    if server is not None:
        await server.start()
    built = _harness(name, server)
    built.server = server
    try:
        yield built
    finally:
        for channel in built.channels:
            await channel.aclose()
        if server is not None:
            await server.stop()


@pytest.mark.parametrize("harness", ALL, indirect=True)
async def test_an_accepted_notice_is_accepted_with_the_providers_id_for_it(
    harness: Harness,
) -> None:
    result = await harness.send(harness.row.accepted)

    assert result.outcome is Outcome.ACCEPTED, result
    if harness.name == "in_app":
        assert (result.code, result.accepted_by) == ("STORED", "in-app")
    else:
        assert result.provider_message_id
        assert result.accepted_by == "127.0.0.1"


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
async def test_a_refusal_for_good_is_permanent_with_the_providers_code_and_words(
    harness: Harness,
) -> None:
    assert harness.row.refused is not None
    address, code, words = harness.row.refused

    result = await harness.send(address)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, code), result
    assert words in result.message


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
async def test_a_rate_limit_is_transient_with_the_wait_the_provider_asked_for(
    harness: Harness,
) -> None:
    assert harness.row.rate_limited is not None
    address, code, retry_after = harness.row.rate_limited

    result = await harness.send(address)

    assert (result.outcome, result.code, result.retry_after) == (
        Outcome.TRANSIENT,
        code,
        retry_after,
    ), result


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
async def test_a_server_error_is_transient(harness: Harness) -> None:
    assert harness.row.server_error is not None
    address, code = harness.row.server_error

    result = await harness.send(address)

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, code), result
    assert result.message


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
async def test_an_unreachable_provider_is_a_transient_refused_connection(
    harness: Harness,
) -> None:
    with refused_port() as port:
        result = await harness.send(harness.row.accepted, base_url=f"http://127.0.0.1:{port}")

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "CONNECTION_REFUSED"), result


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
async def test_a_provider_that_never_answers_is_a_transient_timeout(harness: Harness) -> None:
    async with SilentServer() as silent:
        started = time.monotonic()
        result = await harness.send(harness.row.accepted, base_url=silent.url, timeout=0.5)
        waited = time.monotonic() - started

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "TIMEOUT"), result
    assert silent.connections == 1
    assert waited < 3


@pytest.mark.parametrize("harness", WITH_CREDENTIALS, indirect=True)
async def test_an_account_without_credentials_is_permanently_not_configured(
    harness: Harness,
) -> None:
    result = await harness.send(harness.row.accepted, credentials=ChannelCredentials())

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "NOT_CONFIGURED"), result
    assert harness.server is not None
    assert harness.server.requests == []


@pytest.mark.parametrize("harness", ALL, indirect=True)
async def test_no_secret_ever_shows_in_a_result_or_in_the_logs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    row = harness.row
    addresses = [row.accepted] + [
        case[0] for case in (row.refused, row.rate_limited, row.server_error) if case
    ]
    results = [await harness.send(address) for address in addresses]
    if harness.name in OVER_HTTP:
        with refused_port() as port:
            results.append(await harness.send(row.accepted, base_url=f"http://127.0.0.1:{port}"))
        async with SilentServer() as silent:
            results.append(await harness.send(row.accepted, base_url=silent.url, timeout=0.5))
        # httpx logs every request it makes: the check below reads real log lines.
        assert "HTTP Request: POST" in caplog.text

    assert len(results) == len(addresses) + (2 if harness.name in OVER_HTTP else 0)
    for secret in harness.secrets:
        for result in results:
            assert secret not in result.message
            assert secret not in repr(result)
        assert secret not in caplog.text


# --- Telegram ---


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        yield emulator


@pytest.fixture
async def telegram_channel(telegram: TelegramEmulator) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(telegram.api_url, timeout=5)
    yield channel
    await channel.aclose()


TELEGRAM = ChannelCredentials(telegram_bot_token=tg.BOT_TOKEN)


async def test_telegram_sends_the_chat_id_and_text_to_the_bots_send_message(
    telegram: TelegramEmulator, telegram_channel: TelegramChannel
) -> None:
    result = await telegram_channel.send(notice("123456789"), TELEGRAM)

    [request] = telegram.requests
    assert (request.method, request.path) == ("POST", f"/bot{tg.BOT_TOKEN}/sendMessage")
    assert request.json() == {
        "chat_id": "123456789",
        "text": "Ann commented on “Ship v2”: looks good",
    }
    assert result.provider_message_id == "123456789:1"


async def test_telegram_cuts_a_text_longer_than_sendmessage_takes(
    telegram: TelegramEmulator, telegram_channel: TelegramChannel
) -> None:
    result = await telegram_channel.send(notice("123456789", text="x" * 5000), TELEGRAM)

    assert result.outcome is Outcome.ACCEPTED
    sent = telegram.requests[0].json()["text"]
    assert len(sent) == 4096
    assert sent.endswith("…")


async def test_telegram_chat_not_found_is_permanent(
    telegram_channel: TelegramChannel,
) -> None:
    result = await telegram_channel.send(notice(tg.MISSING), TELEGRAM)

    assert (result.outcome, result.code, result.message) == (
        Outcome.PERMANENT,
        "400",
        "Bad Request: chat not found",
    )


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("7000000001:AAHsomeoneELSEStoken", id="another-bots-token-401"),
        pytest.param("no-bot-id-in-it", id="malformed-token-404"),
    ],
)
async def test_telegram_refusing_the_bot_token_is_permanent_and_unauthorized(
    telegram_channel: TelegramChannel, token: str
) -> None:
    result = await telegram_channel.send(
        notice("123456789"), ChannelCredentials(telegram_bot_token=token)
    )

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "UNAUTHORIZED"), result
    assert token not in result.message


async def test_telegram_succeeds_on_the_retry_after_a_bad_gateway(
    telegram_channel: TelegramChannel,
) -> None:
    first = await telegram_channel.send(notice(tg.FLAKY), TELEGRAM)
    second = await telegram_channel.send(notice(tg.FLAKY), TELEGRAM)

    assert (first.outcome, first.code) == (Outcome.TRANSIENT, "502")
    assert "502 Bad Gateway" in first.message
    assert (second.outcome, second.provider_message_id) == (Outcome.ACCEPTED, "flaky:1")


async def test_telegrams_request_log_names_the_bot_by_a_placeholder(
    telegram_channel: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")

    await telegram_channel.send(notice("123456789"), TELEGRAM)

    assert "/bot__TOKEN__/sendMessage" in caplog.text
    assert tg.BOT_TOKEN not in caplog.text


# --- WhatsApp ---


WHATSAPP = ChannelCredentials(
    whatsapp_phone_number_id=wa.PHONE_NUMBER_ID,
    whatsapp_access_token=wa.ACCESS_TOKEN,
    whatsapp_app_secret=wa.APP_SECRET,
    whatsapp_verify_token="verify-me-please",
)


@pytest.fixture
async def whatsapp_emulator() -> AsyncIterator[WhatsAppEmulator]:
    async with WhatsAppEmulator() as emulator:
        yield emulator


@pytest.fixture
async def whatsapp_channel(whatsapp_emulator: WhatsAppEmulator) -> AsyncIterator[WhatsAppChannel]:
    channel = WhatsAppChannel(whatsapp_emulator.api_url, timeout=5)
    yield channel
    await channel.aclose()


async def test_whatsapp_posts_a_text_message_with_the_bearer_token(
    whatsapp_emulator: WhatsAppEmulator, whatsapp_channel: WhatsAppChannel
) -> None:
    result = await whatsapp_channel.send(notice("+16505551234"), WHATSAPP)

    [request] = whatsapp_emulator.requests
    assert request.path == f"/v21.0/{wa.PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {wa.ACCESS_TOKEN}"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "Ann commented on “Ship v2”: looks good"},
    }
    assert result.provider_message_id in whatsapp_emulator.sent


async def test_whatsapp_refusing_the_access_token_is_permanent_and_unauthorized(
    whatsapp_channel: WhatsAppChannel,
) -> None:
    credentials = ChannelCredentials(
        whatsapp_phone_number_id=wa.PHONE_NUMBER_ID, whatsapp_access_token="EAAGexpired"
    )

    result = await whatsapp_channel.send(notice("+16505551234"), credentials)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "UNAUTHORIZED")
    assert "Invalid OAuth access token" in result.message


async def test_whatsapp_an_unknown_phone_number_id_is_permanent(
    whatsapp_channel: WhatsAppChannel,
) -> None:
    credentials = ChannelCredentials(
        whatsapp_phone_number_id="999", whatsapp_access_token=wa.ACCESS_TOKEN
    )

    result = await whatsapp_channel.send(notice("+16505551234"), credentials)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "100")
    assert "does not exist" in result.message


class CallbackRoute(LocalServer):
    """Stands in for Beacon's callback routes, built on the channel modules' pure
    functions, so the stand-ins' real HTTP callbacks are checked end to end."""

    def __init__(self) -> None:
        self.reports: list[ProviderReport] = []
        super().__init__(
            Starlette(
                routes=[
                    Route("/callbacks/whatsapp", self._whatsapp_handshake, methods=["GET"]),
                    Route("/callbacks/whatsapp", self._whatsapp, methods=["POST"]),
                    Route("/callbacks/sms", self._sms, methods=["POST"]),
                ]
            )
        )

    async def _whatsapp_handshake(self, request: Request) -> Response:
        challenge = whatsapp.verify_handshake(
            request.query_params, WHATSAPP.whatsapp_verify_token or ""
        )
        if challenge is None:
            return PlainTextResponse("verification failed", status_code=403)
        return PlainTextResponse(challenge)

    async def _whatsapp(self, request: Request) -> Response:
        body = await request.body()
        if not whatsapp.verify_signature(
            wa.APP_SECRET, body, request.headers.get("x-hub-signature-256")
        ):
            return PlainTextResponse("invalid signature", status_code=401)
        parsed = whatsapp.parse_webhook(json.loads(body))
        assert parsed.phone_number_ids == {wa.PHONE_NUMBER_ID}
        self.reports.extend(parsed.reports)
        return PlainTextResponse("ok")

    async def _sms(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        url = str(request.url)
        if not sms.verify_signature(
            tw.AUTH_TOKEN, url, form, request.headers.get("x-twilio-signature")
        ):
            return PlainTextResponse("invalid signature", status_code=401)
        report = sms.parse_status(form)
        if report is not None:
            self.reports.append(report)
        return PlainTextResponse("")


@pytest.fixture
async def callbacks() -> AsyncIterator[CallbackRoute]:
    async with CallbackRoute() as route:
        yield route


async def test_whatsapps_signed_status_reports_are_verified_and_read(
    whatsapp_emulator: WhatsAppEmulator,
    whatsapp_channel: WhatsAppChannel,
    callbacks: CallbackRoute,
) -> None:
    sent = await whatsapp_channel.send(notice("+16505551234"), WHATSAPP)
    assert sent.provider_message_id is not None
    wamid = sent.provider_message_id
    url = f"{callbacks.url}/callbacks/whatsapp"

    answers = [
        await whatsapp_emulator.send_status(
            url, wamid, status, app_secret=wa.APP_SECRET, phone_number_id=wa.PHONE_NUMBER_ID
        )
        for status in ("sent", "delivered", "read")
    ]
    failed = await whatsapp_emulator.send_status(
        url,
        wamid,
        "failed",
        app_secret=wa.APP_SECRET,
        phone_number_id=wa.PHONE_NUMBER_ID,
        error=WhatsAppError(131050, "Unable to deliver the message"),
    )

    assert [answer.status_code for answer in [*answers, failed]] == [200, 200, 200, 200]
    assert [(r.provider_message_id, r.status) for r in callbacks.reports] == [
        (wamid, ReportStatus.SENT),
        (wamid, ReportStatus.DELIVERED),
        (wamid, ReportStatus.READ),
        (wamid, ReportStatus.FAILED),
    ]
    assert (callbacks.reports[-1].error_code, callbacks.reports[-1].error_message) == (
        "131050",
        "Unable to deliver the message",
    )


async def test_a_whatsapp_report_signed_with_another_secret_is_refused(
    whatsapp_emulator: WhatsAppEmulator, callbacks: CallbackRoute
) -> None:
    answer = await whatsapp_emulator.send_status(
        f"{callbacks.url}/callbacks/whatsapp",
        "wamid.forged",
        "read",
        app_secret="not-the-app-secret",
        phone_number_id=wa.PHONE_NUMBER_ID,
    )

    assert answer.status_code == 401
    assert callbacks.reports == []


async def test_whatsapps_subscription_handshake_echoes_the_challenge_for_our_token(
    whatsapp_emulator: WhatsAppEmulator, callbacks: CallbackRoute
) -> None:
    url = f"{callbacks.url}/callbacks/whatsapp"

    ours = await whatsapp_emulator.subscribe(url, "verify-me-please")
    theirs = await whatsapp_emulator.subscribe(url, "someone-elses-token")

    assert ours.status_code == 200
    assert ours.text == ours.request.url.params["hub.challenge"]
    assert theirs.status_code == 403


# --- SMS (Twilio) ---


SMS = ChannelCredentials(
    twilio_account_sid=tw.ACCOUNT_SID,
    twilio_auth_token=tw.AUTH_TOKEN,
    twilio_from_number=tw.FROM_NUMBER,
)


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator() as emulator:
        yield emulator


async def test_sms_posts_the_form_with_basic_auth_and_the_status_callback(
    twilio: TwilioEmulator,
) -> None:
    channel = TwilioSmsChannel(
        twilio.api_url, timeout=5, status_callback_url="https://beacon.test/callbacks/sms"
    )
    try:
        result = await channel.send(notice("+15558675310"), SMS)
    finally:
        await channel.aclose()

    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{tw.ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {
        "To": "+15558675310",
        "From": tw.FROM_NUMBER,
        "Body": "Ann commented on “Ship v2”: looks good",
        "StatusCallback": "https://beacon.test/callbacks/sms",
    }
    assert result.provider_message_id in twilio.sent
    assert result.code == "201"


async def test_sms_refusing_the_credentials_is_permanent_and_unauthorized(
    twilio: TwilioEmulator,
) -> None:
    channel = TwilioSmsChannel(twilio.api_url, timeout=5, status_callback_url=None)
    credentials = ChannelCredentials(
        twilio_account_sid=tw.ACCOUNT_SID,
        twilio_auth_token="a-wrong-auth-token",
        twilio_from_number=tw.FROM_NUMBER,
    )
    try:
        result = await channel.send(notice("+15558675310"), credentials)
    finally:
        await channel.aclose()

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "UNAUTHORIZED")
    assert "Authenticate" in result.message
    assert "StatusCallback" not in twilio.requests[0].form()


async def test_twilios_signed_status_callbacks_are_verified_and_read(
    twilio: TwilioEmulator, callbacks: CallbackRoute
) -> None:
    url = f"{callbacks.url}/callbacks/sms"
    channel = TwilioSmsChannel(twilio.api_url, timeout=5, status_callback_url=url)
    try:
        sent = await channel.send(notice("+15558675310"), SMS)
    finally:
        await channel.aclose()
    assert sent.provider_message_id is not None
    sid = sent.provider_message_id
    callback_url = twilio.sent[sid].status_callback
    assert callback_url == url

    answers = [
        await twilio.send_status(
            callback_url,
            sid,
            status,
            auth_token=tw.AUTH_TOKEN,
            account_sid=tw.ACCOUNT_SID,
            error_code=30003 if status == "undelivered" else None,
        )
        for status in ("queued", "sent", "delivered", "undelivered")
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 200]
    assert [(r.provider_message_id, r.status) for r in callbacks.reports] == [
        (sid, ReportStatus.SENT),
        (sid, ReportStatus.DELIVERED),
        (sid, ReportStatus.FAILED),
    ]
    assert callbacks.reports[-1].error_code == "30003"
    assert "Unreachable destination handset" in (callbacks.reports[-1].error_message or "")


async def test_a_twilio_callback_signed_with_another_token_is_refused(
    twilio: TwilioEmulator, callbacks: CallbackRoute
) -> None:
    answer = await twilio.send_status(
        f"{callbacks.url}/callbacks/sms",
        "SM" + "0" * 32,
        "delivered",
        auth_token="not-the-auth-token",
        account_sid=tw.ACCOUNT_SID,
    )

    assert answer.status_code == 401
    assert callbacks.reports == []


# --- Webhook ---


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(WEBHOOK_SECRET) as server:
        yield server


@pytest.fixture
async def webhook_channel() -> AsyncIterator[WebhookChannel]:
    channel = WebhookChannel(timeout=5, allow_private=True)
    yield channel
    await channel.aclose()


SIGNED = ChannelCredentials(webhook_signing_secret=WEBHOOK_SECRET)


async def test_a_webhook_is_signed_json_that_the_receiver_verifies(
    receiver: WebhookReceiver, webhook_channel: WebhookChannel
) -> None:
    result = await webhook_channel.send(notice(f"{receiver.url}/ok"), SIGNED)

    assert (result.outcome, result.code, result.message) == (Outcome.ACCEPTED, "200", "ok")
    assert receiver.signature_valid == [True]
    [request] = receiver.requests
    assert request.json() == {
        "id": "msg-7f3a",
        "type": "comment.added",
        "text": "Ann commented on “Ship v2”: looks good",
        "subject": "New comment on Ship v2",
        "task": {"id": "t1", "title": "Ship v2"},
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Beacon-Webhooks/1"
    assert request.headers["x-beacon-delivery"] == "msg-7f3a"
    assert webhook.verify(
        WEBHOOK_SECRET,
        request.headers["x-beacon-timestamp"],
        request.body,
        request.headers["x-beacon-signature"],
        now=time.time(),
    )


async def test_a_webhook_signed_with_the_wrong_secret_is_refused_by_the_receiver(
    receiver: WebhookReceiver, webhook_channel: WebhookChannel
) -> None:
    result = await webhook_channel.send(
        notice(f"{receiver.url}/ok"), ChannelCredentials(webhook_signing_secret="stale-secret")
    )

    assert receiver.signature_valid == [False]
    assert (result.outcome, result.code) == (Outcome.PERMANENT, "401")


async def test_a_webhook_urls_path_stays_out_of_the_logs(
    receiver: WebhookReceiver, webhook_channel: WebhookChannel, caplog: pytest.LogCaptureFixture
) -> None:
    # A Slack incoming webhook's URL is its secret: /services/T000/B000/XXXX.
    caplog.set_level(logging.DEBUG)

    result = await webhook_channel.send(
        notice(f"{receiver.url}/ok?key=T0001-B0002-SeCrEtXXXX"), SIGNED
    )

    assert result.outcome is Outcome.ACCEPTED
    assert receiver.requests[0].query == "key=T0001-B0002-SeCrEtXXXX"
    assert f"HTTP Request: POST {receiver.url}/__path__" in caplog.text
    assert "SeCrEt" not in caplog.text


async def test_a_webhook_without_a_signing_secret_goes_unsigned(
    webhook_channel: WebhookChannel,
) -> None:
    async with WebhookReceiver() as plain:
        result = await webhook_channel.send(notice(f"{plain.url}/accepted"), ChannelCredentials())

    assert (result.outcome, result.code) == (Outcome.ACCEPTED, "202")
    headers = plain.requests[0].headers
    assert "x-beacon-signature" not in headers
    assert "x-beacon-timestamp" not in headers


async def test_slacks_ok_false_inside_a_200_is_a_permanent_failure_with_its_error(
    receiver: WebhookReceiver, webhook_channel: WebhookChannel
) -> None:
    result = await webhook_channel.send(notice(f"{receiver.url}/slack-error"), SIGNED)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "channel_not_found")


@pytest.mark.parametrize(
    ("path", "code", "retry_after"),
    [("request-timeout", "408", None), ("busy", "429", 7.0)],
)
async def test_408_and_429_are_the_4xx_a_webhook_retries(
    receiver: WebhookReceiver,
    webhook_channel: WebhookChannel,
    path: str,
    code: str,
    retry_after: float | None,
) -> None:
    result = await webhook_channel.send(notice(f"{receiver.url}/{path}"), SIGNED)

    assert (result.outcome, result.code, result.retry_after) == (
        Outcome.TRANSIENT,
        code,
        retry_after,
    )


async def test_a_webhook_redirect_is_not_followed(
    receiver: WebhookReceiver, webhook_channel: WebhookChannel
) -> None:
    result = await webhook_channel.send(notice(f"{receiver.url}/moved"), SIGNED)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "301")
    assert [request.path for request in receiver.requests] == ["/moved"]


@pytest.mark.parametrize(
    "address", ["ftp://files.example.com/hook", "file:///etc/passwd", "not a url", "https://"]
)
async def test_a_webhook_url_must_be_http_or_https(
    webhook_channel: WebhookChannel, address: str
) -> None:
    result = await webhook_channel.send(notice(address), SIGNED)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "INVALID_ADDRESS")


async def test_a_webhook_to_a_private_address_is_blocked_unless_allowed(
    receiver: WebhookReceiver,
) -> None:
    guarded = WebhookChannel(timeout=5, allow_private=False)
    allowed = WebhookChannel(timeout=5, allow_private=True)
    try:
        blocked = await guarded.send(notice(f"{receiver.url}/ok"), SIGNED)
        by_name = await guarded.send(notice(f"http://localhost:{receiver.port}/ok"), SIGNED)
        assert receiver.requests == []
        sent = await allowed.send(notice(f"{receiver.url}/ok"), SIGNED)
    finally:
        await guarded.aclose()
        await allowed.aclose()

    assert (blocked.outcome, blocked.code) == (Outcome.PERMANENT, "BLOCKED_ADDRESS")
    assert (by_name.outcome, by_name.code) == (Outcome.PERMANENT, "BLOCKED_ADDRESS")
    assert sent.outcome is Outcome.ACCEPTED


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "100.64.0.1",  # carrier-grade NAT
        "[::1]",
        "[fe80::1]",
        "[fd12:3456::1]",  # unique-local
        "[::]",
        "[::ffff:127.0.0.1]",
        "[2002:7f00:1::]",  # 6to4 around 127.0.0.1
        "[2002:a9fe:a9fe::1]",  # 6to4 around 169.254.169.254
        "[64:ff9b::a00:1]",  # NAT64 around 10.0.0.1
        "[::127.0.0.1]",  # IPv4-compatible
        "2130706433",  # 127.0.0.1 as one number
        "0x7f.1",
    ],
)
async def test_every_kind_of_non_public_address_is_blocked(host: str) -> None:
    guarded = WebhookChannel(timeout=5, allow_private=False)
    try:
        result = await guarded.send(notice(f"http://{host}:9/hook"), SIGNED)
    finally:
        await guarded.aclose()

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "BLOCKED_ADDRESS"), result


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111"])
def test_public_addresses_are_not_blocked(address: str) -> None:
    assert not addresses.is_blocked(ipaddress.ip_address(address))


def _fake_dns(answers: Mapping[str, list[str]]) -> Callable[..., Any]:
    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in answers[host]
        ]

    return getaddrinfo


async def test_a_webhook_goes_to_the_address_that_was_checked_under_its_own_name(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name resolves (in this test only) to the receiver's address, taken as public:
    # the request must go there, never resolved a second time, with the name as Host.
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", _fake_dns({"hooks.example.test": ["127.0.0.1"]})
    )
    monkeypatch.setattr(addresses, "is_blocked", lambda address: False)
    guarded = WebhookChannel(timeout=5, allow_private=False)
    try:
        result = await guarded.send(notice(f"http://hooks.example.test:{receiver.port}/ok"), SIGNED)
    finally:
        await guarded.aclose()

    assert (result.outcome, result.accepted_by) == (Outcome.ACCEPTED, "hooks.example.test")
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_a_name_with_one_private_answer_among_public_ones_is_blocked(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        asyncio.get_running_loop(),
        "getaddrinfo",
        _fake_dns({"rebind.example.test": ["93.184.215.14", "127.0.0.1"]}),
    )
    guarded = WebhookChannel(timeout=5, allow_private=False)
    try:
        result = await guarded.send(
            notice(f"http://rebind.example.test:{receiver.port}/ok"), SIGNED
        )
    finally:
        await guarded.aclose()

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "BLOCKED_ADDRESS")
    assert result.message == "rebind.example.test resolves to a non-public address"
    assert receiver.requests == []


async def test_a_webhook_host_that_does_not_resolve_is_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", _fake_dns({}))
    guarded = WebhookChannel(timeout=5, allow_private=False)
    try:
        result = await guarded.send(notice("https://gone.example.test/hook"), SIGNED)
    finally:
        await guarded.aclose()

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "HOST_NOT_FOUND")


# --- The registry ---


async def test_the_registry_offers_every_messenger_channel_and_not_email(
    twilio: TwilioEmulator,
) -> None:
    settings = Settings.from_env(
        {
            "SECRET_KEY": "test",
            "PUBLIC_BASE_URL": "https://beacon.example/",
            "TWILIO_API_URL": twilio.api_url,
        }
    )
    channels = messenger_channels(settings)
    try:
        assert set(channels) == set(Channel) - {Channel.EMAIL}
        assert all(channel.channel is key for key, channel in channels.items())
        await channels[Channel.SMS].send(notice("+15558675310"), SMS)
    finally:
        for channel in channels.values():
            await channel.aclose()

    assert twilio.requests[0].form()["StatusCallback"] == "https://beacon.example/callbacks/sms"
