"""Each messenger channel end to end: the real server sends through local emulators of
Telegram, the WhatsApp Cloud API, Twilio and a webhook receiver, takes their signed status
callbacks, and shows every delivery's path to SENT, FAILED and READ live over the
`deliveryUpdated` subscription."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from db import accounts as db_accounts
from db.engine import Database
from tests.e2e.helpers import Beacon, UpdateLog, caused_by_comment
from tests.support.graphql_client import GraphQLError
from tests.support.providers import (
    TelegramEmulator,
    TwilioEmulator,
    WebhookReceiver,
    WhatsAppEmulator,
    WhatsAppError,
)
from tests.support.providers import telegram as telegram_emulator
from tests.support.providers import twilio as twilio_emulator
from tests.support.providers import whatsapp as whatsapp_emulator

pytestmark = pytest.mark.e2e

WHATSAPP_VERIFY_TOKEN = "verify-token-for-beacon-tests"
WEBHOOK_SIGNING_SECRET = "webhook-signing-secret-for-tests"

# Telegram chat ids are numbers or @usernames (addPerson refuses anything else), while the
# emulator picks its special answers by the bare words "blocked" and "busy": these chats
# stand for them (see `TelegramChats`).
BLOCKED_CHAT = "4030000001"
BUSY_CHAT = "4290000001"
CHAT = "123456789"

# Another tenant's own provider accounts: it knows these secrets, not ours.
MALLORY_WHATSAPP = {
    "whatsappPhoneNumberId": "109999999999999",
    "whatsappAccessToken": "EAAGmallorysOwnAccessToken",
    "whatsappAppSecret": "mallorys-own-app-secret",
}
MALLORY_TWILIO = {
    "twilioAccountSid": "AC" + "fedcba9876543210" * 2,
    "twilioAuthToken": "mallorys-own-twilio-auth-token",
    "twilioFromNumber": "+15005550007",
}

# --------------------------------------------------------------------------- GraphQL documents

CHANNEL_DELIVERY_FIELDS = """
fragment ChannelDeliveryFields on Delivery {
  id
  channel
  address
  state
  attempts
  sentAt
  failedAt
  deliveredAt
  readAt
  providerMessageId
  acceptedBy
  error { code message permanent }
  events { type at detail }
  recipient { id name }
}
"""

CHANNEL_UPDATES = (
    """
subscription ChannelUpdates($taskId: ID) {
  deliveryUpdated(taskId: $taskId) {
    taskId
    commentId
    delivery { ...ChannelDeliveryFields }
  }
}
"""
    + CHANNEL_DELIVERY_FIELDS
)

DELIVERY = (
    """
query Delivery($id: ID!) {
  delivery(id: $id) { ...ChannelDeliveryFields }
}
"""
    + CHANNEL_DELIVERY_FIELDS
)

SET_CHANNEL_CREDENTIALS = """
mutation SetChannelCredentials($input: ChannelCredentialsInput!) {
  setChannelCredentials(input: $input) { id name configuredChannels }
}
"""

CONFIGURED_CHANNELS = """
query ConfiguredChannels { account { configuredChannels } }
"""

ACCOUNT_TYPE_FIELDS = """
query AccountTypeFields {
  account: __type(name: "Account") { fields { name } }
  credentials: __type(name: "ChannelCredentialsInput") { inputFields { name } }
}
"""

ADD_PERSON = """
mutation AddPerson($input: AddPersonInput!) {
  addPerson(input: $input) { id kind disabledChannels }
}
"""

UPDATE_PERSON = """
mutation UpdatePerson($id: ID!, $input: UpdatePersonInput!) {
  updatePerson(id: $id, input: $input) { id disabledChannels }
}
"""

MARK_READ = """
mutation MarkRead($deliveryId: ID!) {
  markRead(deliveryId: $deliveryId) { id channel state readAt }
}
"""

COMMENT_POPUPS = """
query CommentPopups($taskId: ID!) {
  task(id: $taskId) {
    comments {
      edges {
        node {
          id
          deliveryStatus {
            state
            total
            deliveries { channel address state providerMessageId recipient { id } }
          }
        }
      }
    }
  }
}
"""

# --------------------------------------------------------------------------- the providers


class TelegramChats(TelegramEmulator):
    """The Telegram emulator, with numeric stand-ins for its special chats, whose "busy"
    chat throttles only until `stop_throttling()` (then it is an ordinary chat)."""

    def __init__(self) -> None:
        super().__init__()
        self.throttling = True

    def stop_throttling(self) -> None:
        self.throttling = False

    async def _call(self, request: Request) -> Response:
        stand_ins = {BLOCKED_CHAT: telegram_emulator.BLOCKED}
        if self.throttling:
            stand_ins[BUSY_CHAT] = telegram_emulator.BUSY
        body = await request.body()
        is_json = request.headers.get("content-type") == "application/json"
        params = json.loads(body) if is_json else None
        if not isinstance(params, dict):
            return await super()._call(request)
        special = stand_ins.get(str(params.get("chat_id")))
        if special is None:
            return await super()._call(request)
        rewritten = json.dumps({**params, "chat_id": special}).encode()

        async def receive() -> Message:
            return {"type": "http.request", "body": rewritten, "more_body": False}

        return await super()._call(Request(request.scope, receive))


@dataclass(frozen=True)
class Providers:
    telegram: TelegramChats
    whatsapp: WhatsAppEmulator
    twilio: TwilioEmulator
    receiver: WebhookReceiver

    @property
    def credentials(self) -> dict[str, str]:
        """The `ChannelCredentialsInput` of an account that uses all of them."""
        return {
            "telegramBotToken": self.telegram.bot_token,
            "whatsappPhoneNumberId": self.whatsapp.phone_number_id,
            "whatsappAccessToken": self.whatsapp.access_token,
            "whatsappAppSecret": whatsapp_emulator.APP_SECRET,
            "whatsappVerifyToken": WHATSAPP_VERIFY_TOKEN,
            "twilioAccountSid": self.twilio.account_sid,
            "twilioAuthToken": self.twilio.auth_token,
            "twilioFromNumber": self.twilio.from_number,
            "webhookSigningSecret": WEBHOOK_SIGNING_SECRET,
        }

    @property
    def secrets(self) -> list[str]:
        return [
            self.telegram.bot_token,
            self.whatsapp.access_token,
            whatsapp_emulator.APP_SECRET,
            WHATSAPP_VERIFY_TOKEN,
            self.twilio.auth_token,
            WEBHOOK_SIGNING_SECRET,
        ]


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    """The emulators, listening before the server starts (it is told their URLs)."""
    async with (
        TelegramChats() as telegram,
        WhatsAppEmulator() as whatsapp,
        TwilioEmulator() as twilio,
        WebhookReceiver(signing_secret=WEBHOOK_SIGNING_SECRET) as receiver,
    ):
        yield Providers(telegram, whatsapp, twilio, receiver)


@pytest.fixture
def server_env(providers: Providers) -> dict[str, str]:
    """The `beacon` server's settings: it sends through the emulators."""
    return {
        "TELEGRAM_API_URL": providers.telegram.api_url,
        "WHATSAPP_API_URL": providers.whatsapp.api_url,
        "TWILIO_API_URL": providers.twilio.api_url,
        # The receiver listens on 127.0.0.1.
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "RETRY_BASE_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "1",
        "WORKER_POLL_SECONDS": "0.2",
    }


# --------------------------------------------------------------------------- helpers


async def configure(beacon: Beacon, providers: Providers) -> list[str]:
    """Give the account every provider's credentials; its configured channels."""
    data = await beacon.client.execute(SET_CHANNEL_CREDENTIALS, {"input": providers.credentials})
    return sorted(data["setChannelCredentials"]["configuredChannels"])


async def add_person(beacon: Beacon, name: str, **fields: object) -> str:
    data = await beacon.client.execute(ADD_PERSON, {"input": {"name": name, **fields}})
    return str(data["addPerson"]["id"])


@asynccontextmanager
async def watch(beacon: Beacon, task_id: str | None) -> AsyncIterator[UpdateLog]:
    """`deliveryUpdated(taskId)` with every channel field, keeping what it reads (every
    task's when `task_id` is None)."""
    async with beacon.client.subscribe(CHANNEL_UPDATES, {"taskId": task_id}) as subscription:
        yield UpdateLog(subscription)


async def reached(
    log: UpdateLog, comment: dict[str, Any], channel: str, address: str, state: str
) -> dict[str, Any]:
    """The delivery of `comment` on `channel` to `address`, once shown in `state`."""
    update = await log.until(
        lambda u: (
            u["commentId"] == comment["id"]
            and u["delivery"]["channel"] == channel
            and u["delivery"]["address"] == address
            and u["delivery"]["state"] == state
        )
    )
    delivery: dict[str, Any] = update["delivery"]
    return delivery


async def reached_by_task(log: UpdateLog, task_id: str, address: str, state: str) -> dict[str, Any]:
    """The Telegram delivery of the task's own notification to `address`, once shown in
    `state`."""
    update = await log.until(
        lambda u: (
            u["taskId"] == task_id
            and u["commentId"] is None
            and u["delivery"]["channel"] == "TELEGRAM"
            and u["delivery"]["address"] == address
            and u["delivery"]["state"] == state
        )
    )
    delivery: dict[str, Any] = update["delivery"]
    return delivery


async def shown(log: UpdateLog, delivery_id: str, field: str) -> dict[str, Any]:
    """The delivery, once an update shows `field` set."""
    update = await log.until(
        lambda u: u["delivery"]["id"] == delivery_id and u["delivery"][field] is not None
    )
    delivery: dict[str, Any] = update["delivery"]
    return delivery


async def delivery(beacon: Beacon, delivery_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await beacon.client.execute(DELIVERY, {"id": delivery_id}))["delivery"]
    return found


def event_types(delivery: dict[str, Any]) -> list[str]:
    return [event["type"] for event in delivery["events"]]


def timestamp(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def whatsapp_callback(beacon: Beacon) -> str:
    return f"{beacon.base_url}/callbacks/whatsapp"


async def post_whatsapp(
    beacon: Beacon, payload: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST a status webhook as given (with no signature unless `headers` has one)."""
    async with httpx.AsyncClient() as http:
        return await http.post(
            whatsapp_callback(beacon),
            content=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )


# --------------------------------------------------------------------------- Telegram


async def test_telegram_sends_fails_for_good_on_a_blocked_bot_and_honours_retry_after(
    beacon: Beacon, providers: Providers
) -> None:
    # given: three contacts on Telegram: an ordinary chat, one that blocked the bot and
    # one the Bot API throttles (retry_after 3 s)
    await configure(beacon, providers)
    ann = await add_person(beacon, "Ann", telegramChatId=CHAT)
    ben = await add_person(beacon, "Ben", telegramChatId=BLOCKED_CHAT)
    cat = await add_person(beacon, "Cat", telegramChatId=BUSY_CHAT)

    # (every task of the account: the first notification is the task's own)
    async with watch(beacon, None) as log:
        # when: a task they follow is created
        task_id, _ = await log.trigger(
            lambda: beacon.create_task("Roadmap", [ann, ben, cat]),
            lambda update, task_id: bool(update["taskId"] == task_id),
        )

        # then: the ordinary chat's delivery is SENT with the Bot API's message id
        sent = await reached_by_task(log, task_id, CHAT, "SENT")
        accepted = {
            f"{chat}:{message_id}"
            for chat, message_id, text in providers.telegram.sent
            if chat == CHAT and "Roadmap" in text
        }
        assert sent["providerMessageId"] in accepted
        assert sent["acceptedBy"] == "127.0.0.1"
        assert sent["attempts"] == 1

        # ... the blocked chat's is FAILED for good, in the Bot API's words
        failed = await reached_by_task(log, task_id, BLOCKED_CHAT, "FAILED")
        assert failed["error"] == {
            "code": "403",
            "message": "Forbidden: bot was blocked by the user",
            "permanent": True,
        }
        assert failed["attempts"] == 1

        # ... and the throttled chat's stays QUEUED, to retry when retry_after says
        throttled = await log.until(
            lambda u: (
                u["taskId"] == task_id
                and u["delivery"]["address"] == BUSY_CHAT
                # (an update's history may run ahead of its state: wait for both)
                and u["delivery"]["attempts"] == 1
                and "retry_scheduled" in event_types(u["delivery"])
            )
        )
        busy = throttled["delivery"]
        assert (busy["state"], busy["attempts"]) == ("QUEUED", 1)
        retry = next(e for e in busy["events"] if e["type"] == "retry_scheduled")
        assert "Too Many Requests: retry after 3" in retry["detail"]
        next_at = re.search(r"next at (\S+)$", retry["detail"])
        assert next_at is not None
        wait = timestamp(next_at.group(1)) - timestamp(retry["at"])
        assert wait.total_seconds() == pytest.approx(telegram_emulator.RETRY_AFTER, abs=0.01)

        # when: the Bot API stops throttling
        providers.telegram.stop_throttling()

        # then: the retry, no earlier than retry_after, is SENT
        later = await reached_by_task(log, task_id, BUSY_CHAT, "SENT")
        assert later["attempts"] == 2
        assert later["providerMessageId"].startswith(f"{BUSY_CHAT}:")
        waited = timestamp(later["sentAt"]) - timestamp(retry["at"])
        assert waited.total_seconds() >= telegram_emulator.RETRY_AFTER - 0.01
        assert event_types(later)[-2:] == ["retry_scheduled", "sent"]

        # when: a comment follows
        comment = await beacon.add_comment(task_id, "Roadmap v2 is up")

        # then: the ordinary chat gets it; the blocked chat's fails for good again
        again = await reached(log, comment, "TELEGRAM", CHAT, "SENT")
        still_blocked = await reached(log, comment, "TELEGRAM", BLOCKED_CHAT, "FAILED")
    assert again["providerMessageId"] != sent["providerMessageId"]
    assert still_blocked["error"]["permanent"] is True
    assert "Forbidden: bot was blocked by the user" in still_blocked["error"]["message"]


# --------------------------------------------------------------------------- WhatsApp


async def test_whatsapp_goes_sent_delivered_read_live_and_fails_at_send_or_by_report(
    beacon: Beacon, providers: Providers
) -> None:
    # given: WhatsApp contacts (SMS off): two ordinary numbers, and one the Cloud API
    # cannot deliver to (ending 0000)
    await configure(beacon, providers)
    whatsapp = providers.whatsapp
    ada = await add_person(beacon, "Ada", phone="+15551110001", disabledChannels=["SMS"])
    eve = await add_person(beacon, "Eve", phone="+15551110002", disabledChannels=["SMS"])
    dan = await add_person(beacon, "Dan", phone="+15551110000", disabledChannels=["SMS"])
    task_id = await beacon.create_task("Shipping", [ada, eve, dan])
    callback = whatsapp_callback(beacon)

    async with watch(beacon, task_id) as log:
        # when
        comment, _ = await log.trigger(
            lambda: beacon.add_comment(task_id, "The parcel left"), caused_by_comment
        )

        # then: accepted messages are SENT with their wamid
        sent = await reached(log, comment, "WHATSAPP", "+15551110001", "SENT")
        assert sent["providerMessageId"].startswith("wamid.")
        assert whatsapp.sent[sent["providerMessageId"]] == "+15551110001"
        other = await reached(log, comment, "WHATSAPP", "+15551110002", "SENT")

        # ... and the undeliverable number is FAILED at send, with the Graph API's code
        failed = await reached(log, comment, "WHATSAPP", "+15551110000", "FAILED")
        assert failed["error"]["code"] == "131026"
        assert failed["error"]["permanent"] is True
        assert "Message Undeliverable" in failed["error"]["message"]

        # when: Meta reports the first message delivered
        answer = await whatsapp.send_status(
            callback,
            sent["providerMessageId"],
            "delivered",
            app_secret=whatsapp_emulator.APP_SECRET,
            phone_number_id=whatsapp.phone_number_id,
        )

        # then: deliveredAt is set, live, and the delivery stays SENT
        assert answer.status_code == 200
        assert answer.json() == {"applied": 1, "duplicates": 0, "unknown": 0}
        delivered = await shown(log, sent["id"], "deliveredAt")
        assert delivered["state"] == "SENT"
        assert event_types(delivered)[-1] == "delivered"

        # when: then read
        answer = await whatsapp.send_status(
            callback,
            sent["providerMessageId"],
            "read",
            app_secret=whatsapp_emulator.APP_SECRET,
            phone_number_id=whatsapp.phone_number_id,
        )

        # then: READ, live, with readAt
        assert answer.status_code == 200
        read = await log.until_state(sent["id"], "READ")
        assert read["delivery"]["readAt"] is not None
        assert read["delivery"]["deliveredAt"] is not None
        assert event_types(read["delivery"])[-2:] == ["delivered", "read"]

        # when: the other message's report is a failure
        answer = await whatsapp.send_status(
            callback,
            other["providerMessageId"],
            "failed",
            app_secret=whatsapp_emulator.APP_SECRET,
            phone_number_id=whatsapp.phone_number_id,
            error=WhatsAppError(
                131049, "This message was not delivered to maintain healthy ecosystem engagement."
            ),
        )

        # then: FAILED, live, with the report's code and title
        assert answer.status_code == 200
        reported = (await log.until_state(other["id"], "FAILED"))["delivery"]
    assert reported["error"] == {
        "code": "131049",
        "message": "This message was not delivered to maintain healthy ecosystem engagement.",
        "permanent": True,
    }
    assert reported["sentAt"] is not None
    assert event_types(reported)[-1] == "failed"


async def test_whatsapp_callbacks_must_be_signed_and_apply_once_never_backwards(
    beacon: Beacon, providers: Providers
) -> None:
    # given: two SENT WhatsApp messages
    await configure(beacon, providers)
    whatsapp = providers.whatsapp
    ada = await add_person(beacon, "Ada", phone="+15551110001", disabledChannels=["SMS"])
    eve = await add_person(beacon, "Eve", phone="+15551110002", disabledChannels=["SMS"])
    task_id = await beacon.create_task("Shipping", [ada, eve])
    callback = whatsapp_callback(beacon)
    phone_number_id = whatsapp.phone_number_id

    async def report(wamid: str, status: str, app_secret: str) -> httpx.Response:
        return await whatsapp.send_status(
            callback, wamid, status, app_secret=app_secret, phone_number_id=phone_number_id
        )

    async with watch(beacon, task_id) as log:
        comment, _ = await log.trigger(
            lambda: beacon.add_comment(task_id, "The parcel left"), caused_by_comment
        )
        first = await reached(log, comment, "WHATSAPP", "+15551110001", "SENT")
        second = await reached(log, comment, "WHATSAPP", "+15551110002", "SENT")
        wamid = first["providerMessageId"]
        untouched = await delivery(beacon, first["id"])

        # when: forged reports arrive: signed with the wrong app secret, and unsigned
        wrong_secret = await report(wamid, "failed", "not-the-app-secret")
        unsigned = await post_whatsapp(
            beacon, whatsapp.status_payload(wamid, "read", phone_number_id=phone_number_id)
        )
        malformed = await post_whatsapp(
            beacon,
            whatsapp.status_payload(wamid, "read", phone_number_id=phone_number_id),
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        )

        # then: 401, and the delivery is as it was
        assert [wrong_secret.status_code, unsigned.status_code, malformed.status_code] == [
            401,
            401,
            401,
        ]
        assert await delivery(beacon, first["id"]) == untouched

        # when: another account signs a report about our message with its own app secret
        mallory = beacon.client_for((await beacon.create_account("Mallory")).token)
        await mallory.execute(SET_CHANNEL_CREDENTIALS, {"input": MALLORY_WHATSAPP})
        cross_account = await whatsapp.send_status(
            callback,
            wamid,
            "failed",
            app_secret=MALLORY_WHATSAPP["whatsappAppSecret"],
            phone_number_id=MALLORY_WHATSAPP["whatsappPhoneNumberId"],
            error=WhatsAppError(131026, "Message Undeliverable"),
        )

        # then: the message is not that account's to report on: nothing changes
        assert cross_account.status_code == 200
        assert cross_account.json() == {"applied": 0, "duplicates": 0, "unknown": 1}
        assert await delivery(beacon, first["id"]) == untouched

        # when: a genuine "delivered", and the same report again (Meta retries)
        once = await report(wamid, "delivered", whatsapp_emulator.APP_SECRET)
        delivered = await shown(log, first["id"], "deliveredAt")
        replayed = await report(wamid, "delivered", whatsapp_emulator.APP_SECRET)

        # then: both are answered 200; the replay adds nothing
        assert (once.status_code, once.json()["applied"]) == (200, 1)
        assert replayed.status_code == 200
        assert replayed.json() == {"applied": 0, "duplicates": 1, "unknown": 0}
        after_replay = await delivery(beacon, first["id"])
        assert event_types(after_replay).count("delivered") == 1
        assert after_replay["deliveredAt"] == delivered["deliveredAt"]

        # when: the other message's "read" arrives before its "delivered"
        read_first = await report(second["providerMessageId"], "read", whatsapp_emulator.APP_SECRET)
        await log.until_state(second["id"], "READ")
        late = await report(second["providerMessageId"], "delivered", whatsapp_emulator.APP_SECRET)

        # then: it stays READ, and its history keeps both reports
        assert (read_first.status_code, late.status_code) == (200, 200)
        assert late.json()["applied"] == 1
        out_of_order = await shown(log, second["id"], "deliveredAt")
    assert out_of_order["state"] == "READ"
    assert out_of_order["readAt"] is not None
    assert event_types(out_of_order)[-2:] == ["read", "delivered"]
    # ... and the first message saw one "delivered" update, not two
    assert [
        u["delivery"]["deliveredAt"] is not None
        for u in log.updates
        if u["delivery"]["id"] == first["id"]
    ].count(True) == 1

    # when: a report names a message we never sent
    unknown = await report("wamid.HBgLMTU1NTExMTAwMDk", "delivered", whatsapp_emulator.APP_SECRET)

    # then: 200, so Meta stops retrying
    assert unknown.status_code == 200
    assert unknown.json() == {"applied": 0, "duplicates": 0, "unknown": 1}

    # when: Meta verifies the callback URL, with our verify token and with another
    verified = await whatsapp.subscribe(callback, WHATSAPP_VERIFY_TOKEN)
    refused = await whatsapp.subscribe(callback, "someone-elses-token")

    # then: only ours gets the challenge back
    assert verified.status_code == 200
    assert verified.text == verified.request.url.params["hub.challenge"]
    assert refused.status_code == 403
    assert refused.request.url.params["hub.challenge"] not in refused.text
    # ... and neither the verify token (it came in the query) nor a secret is logged
    log_text = beacon.server.log
    for secret in providers.secrets:
        assert secret not in log_text


# --------------------------------------------------------------------------- SMS (Twilio)


async def test_sms_goes_sent_then_delivered_or_undelivered_by_signed_callbacks(
    beacon: Beacon, providers: Providers
) -> None:
    # given: SMS contacts (WhatsApp off), one of them a number Twilio refuses
    await configure(beacon, providers)
    twilio = providers.twilio
    bob = await add_person(beacon, "Bob", phone="+15552220001", disabledChannels=["WHATSAPP"])
    cy = await add_person(beacon, "Cy", phone="+15552220002", disabledChannels=["WHATSAPP"])
    invalid = twilio_emulator.INVALID_NUMBER
    dee = await add_person(beacon, "Dee", phone=invalid, disabledChannels=["WHATSAPP"])
    task_id = await beacon.create_task("Outage", [bob, cy, dee])

    async with watch(beacon, task_id) as log:
        # when
        comment, _ = await log.trigger(
            lambda: beacon.add_comment(task_id, "Service restored"), caused_by_comment
        )

        # then: accepted messages are SENT with their SID, asking for status callbacks
        sent = await reached(log, comment, "SMS", "+15552220001", "SENT")
        sid = sent["providerMessageId"]
        assert sid.startswith("SM")
        message = twilio.sent[sid]
        assert message.to == "+15552220001"
        assert message.from_ == twilio.from_number
        assert "Service restored" in message.body
        assert message.status_callback == f"{beacon.base_url}/callbacks/sms"
        other = await reached(log, comment, "SMS", "+15552220002", "SENT")

        # ... and the invalid number is FAILED at send with Twilio's code
        failed = await reached(log, comment, "SMS", invalid, "FAILED")
        assert failed["error"]["code"] == "21211"
        assert failed["error"]["permanent"] is True
        assert "is not a valid phone number" in failed["error"]["message"]

        # when: a forged "undelivered" arrives (signed with another auth token)
        forged = await twilio.send_status(
            message.status_callback,
            sid,
            "undelivered",
            auth_token="not-the-auth-token",
            account_sid=twilio.account_sid,
            error_code=30003,
        )

        # then: 401, and nothing changed
        assert forged.status_code == 401
        after_forgery = await delivery(beacon, sent["id"])
        assert (after_forgery["state"], after_forgery["error"]) == ("SENT", None)
        assert event_types(after_forgery) == event_types(sent)

        # when: another account, with its own Twilio credentials, signs one about it
        mallory = beacon.client_for((await beacon.create_account("Mallory")).token)
        await mallory.execute(SET_CHANNEL_CREDENTIALS, {"input": MALLORY_TWILIO})
        cross_account = await twilio.send_status(
            message.status_callback,
            sid,
            "undelivered",
            auth_token=MALLORY_TWILIO["twilioAuthToken"],
            account_sid=MALLORY_TWILIO["twilioAccountSid"],
            error_code=30003,
        )

        # then: the message is not that account's to report on: nothing changes
        assert cross_account.status_code == 200
        assert cross_account.json() == {"applied": 0, "duplicates": 0, "unknown": 1}
        assert await delivery(beacon, sent["id"]) == after_forgery

        # when: Twilio reports it delivered
        answer = await twilio.send_status(
            message.status_callback,
            sid,
            "delivered",
            auth_token=twilio.auth_token,
            account_sid=twilio.account_sid,
        )

        # then: deliveredAt, live
        assert answer.status_code == 200
        delivered = await shown(log, sent["id"], "deliveredAt")
        assert delivered["state"] == "SENT"
        assert event_types(delivered)[-1] == "delivered"

        # when: the other message is reported undelivered
        answer = await twilio.send_status(
            message.status_callback,
            other["providerMessageId"],
            "undelivered",
            auth_token=twilio.auth_token,
            account_sid=twilio.account_sid,
            error_code=30003,
        )

        # then: FAILED, live, with the ErrorCode
        assert answer.status_code == 200
        undelivered = (await log.until_state(other["id"], "FAILED"))["delivery"]
    assert undelivered["error"]["code"] == "30003"
    assert undelivered["error"]["permanent"] is True
    assert "Unreachable destination handset" in undelivered["error"]["message"]


# --------------------------------------------------------------------------- webhooks


async def test_webhooks_post_signed_json_and_fail_or_retry_by_the_receivers_answer(
    beacon: Beacon, providers: Providers
) -> None:
    # given: contacts whose webhooks answer OK, Slack's ok=false, 404 and 500
    await configure(beacon, providers)
    receiver = providers.receiver
    urls = {path: f"{receiver.url}/{path}" for path in ("ok", "slack-error", "not-found", "broken")}
    people = [await add_person(beacon, path, webhookUrl=url) for path, url in urls.items()]
    task_id = await beacon.create_task("Deploy", people)

    async with watch(beacon, task_id) as log:
        # when
        comment, _ = await log.trigger(
            lambda: beacon.add_comment(task_id, "Deployed to production"), caused_by_comment
        )

        # then: the OK receiver's delivery is SENT ...
        sent = await reached(log, comment, "WEBHOOK", urls["ok"], "SENT")
        assert sent["acceptedBy"] == "127.0.0.1"
        # ... Slack's ok=false inside a 200 is FAILED with its error ...
        slack = await reached(log, comment, "WEBHOOK", urls["slack-error"], "FAILED")
        assert slack["error"]["code"] == "channel_not_found"
        assert slack["error"]["permanent"] is True
        # ... a 404 is FAILED for good ...
        gone = await reached(log, comment, "WEBHOOK", urls["not-found"], "FAILED")
        assert (gone["error"]["code"], gone["error"]["permanent"]) == ("404", True)
        assert "channel_not_found" in gone["error"]["message"]
        # ... and a 500 stays QUEUED and is tried again
        retried = await log.until(
            lambda u: (
                u["commentId"] == comment["id"]
                and u["delivery"]["address"] == urls["broken"]
                and u["delivery"]["attempts"] >= 2
            )
        )
    broken = retried["delivery"]
    assert broken["state"] == "QUEUED"
    assert event_types(broken).count("retry_scheduled") >= 2
    assert broken["error"] is None

    # ... and the receiver verified Beacon's signature on everything it got, and got the
    # comment's JSON
    assert receiver.requests
    assert all(valid is True for valid in receiver.signature_valid)
    posted = [
        r
        for r in receiver.requests
        if r.path == "/ok" and r.headers.get("x-beacon-delivery") == sent["providerMessageId"]
    ]
    assert len(posted) == 1
    event = posted[0].json()
    assert "Deployed to production" in event["text"]
    assert event["type"] == "comment.added"
    assert event["task"] == {"id": task_id, "title": "Deploy"}
    assert event["comment"]["id"] == comment["id"]
    assert event["comment"]["body"] == "Deployed to production"
    assert posted[0].headers["content-type"] == "application/json"


# --------------------------------------------------------------------------- in-app


async def test_an_employee_gets_an_in_app_notification_and_marks_it_read_live(
    beacon: Beacon, providers: Providers, database_url: str
) -> None:
    # given: an employee, signed in with a token of their own, subscribed to a task
    await configure(beacon, providers)
    erin = await add_person(beacon, "Erin", kind="EMPLOYEE", email="erin@acme.test")
    database = Database(database_url)
    try:
        async with database.write() as conn:
            token = await db_accounts.issue_token(
                conn,
                account_id=uuid.UUID(beacon.account.account_id),
                person_id=uuid.UUID(erin),
            )
    finally:
        await database.dispose()
    as_erin = beacon.client_for(token)
    task_id = await beacon.create_task("Quarterly plan", [erin])

    async with watch(beacon, task_id) as log:
        # when: the owner comments
        comment, _ = await log.trigger(
            lambda: beacon.add_comment(task_id, "Draft is ready"), caused_by_comment
        )

        # then: Erin's in-app notification is SENT at once
        in_app = await reached(log, comment, "IN_APP", "in-app", "SENT")
        assert in_app["recipient"]["id"] == erin
        assert (in_app["attempts"], in_app["acceptedBy"]) == (1, "in-app")
        email = await reached(log, comment, "EMAIL", "erin@acme.test", "SENT")

        # when: someone else marks it read, or Erin marks her email read
        with pytest.raises(GraphQLError) as by_owner:
            await beacon.client.execute(MARK_READ, {"deliveryId": in_app["id"]})
        with pytest.raises(GraphQLError) as not_in_app:
            await as_erin.execute(MARK_READ, {"deliveryId": email["id"]})

        # then: refused, and nothing changed
        assert by_owner.value.codes == ["FORBIDDEN"]
        assert not_in_app.value.codes == ["BAD_USER_INPUT"]
        assert (await delivery(beacon, in_app["id"]))["state"] == "SENT"
        assert (await delivery(beacon, email["id"]))["state"] == "SENT"

        # when: Erin marks it read
        marked = (await as_erin.execute(MARK_READ, {"deliveryId": in_app["id"]}))["markRead"]

        # then: READ, and pushed live
        assert (marked["state"], marked["channel"]) == ("READ", "IN_APP")
        read = (await log.until_state(in_app["id"], "READ"))["delivery"]
    assert read["readAt"] == marked["readAt"]
    assert event_types(read)[-1] == "read"


# ----------------------------------------------------------------- credentials and routing


async def test_credentials_are_write_only_and_each_enabled_channel_shows_in_the_popup(
    beacon: Beacon, providers: Providers
) -> None:
    # given: an account with no provider credentials
    before = await beacon.client.execute(CONFIGURED_CHANNELS)
    assert sorted(before["account"]["configuredChannels"]) == ["EMAIL", "IN_APP", "WEBHOOK"]

    # when: the owner sets every provider's credentials
    response = await beacon.client.raw(SET_CHANNEL_CREDENTIALS, {"input": providers.credentials})

    # then: the answer lists the channels, and carries none of the secrets
    assert "errors" not in response, response
    configured = response["data"]["setChannelCredentials"]["configuredChannels"]
    assert sorted(configured) == ["EMAIL", "IN_APP", "SMS", "TELEGRAM", "WEBHOOK", "WHATSAPP"]
    for secret in providers.secrets:
        assert secret not in json.dumps(response)
    # ... and the Account type has no field that could return one
    fields = await beacon.client.execute(ACCOUNT_TYPE_FIELDS)
    names = {field["name"] for field in fields["account"]["fields"]}
    credential_names = {field["name"] for field in fields["credentials"]["inputFields"]}
    assert "configuredChannels" in names
    assert len(credential_names) == len(providers.credentials)
    assert not names & credential_names
    assert not [name for name in names if re.search("token|secret|sid|credential", name, re.I)]
    with pytest.raises(GraphQLError):
        await beacon.client.execute(
            "mutation { setChannelCredentials(input: {}) { telegramBotToken } }"
        )

    # given: a contact reachable on every channel a contact can have
    webhook_url = f"{providers.receiver.url}/ok"
    addresses = {
        "EMAIL": "pat@example.test",
        "TELEGRAM": CHAT,
        "WHATSAPP": "+15553330001",
        "SMS": "+15553330001",
        "WEBHOOK": webhook_url,
    }
    pat = await add_person(
        beacon,
        "Pat",
        email="pat@example.test",
        telegramChatId=CHAT,
        phone="+15553330001",
        webhookUrl=webhook_url,
    )
    task_id = await beacon.create_task("Launch", [pat])

    async with watch(beacon, task_id) as log:
        # when: a comment
        first, _ = await log.trigger(
            lambda: beacon.add_comment(task_id, "T minus ten"), caused_by_comment
        )
        for channel, address in addresses.items():
            await reached(log, first, channel, address, "SENT")

        # when: Pat switches SMS off, and another comment follows
        updated = await beacon.client.execute(
            UPDATE_PERSON, {"id": pat, "input": {"disabledChannels": ["SMS"]}}
        )
        assert updated["updatePerson"]["disabledChannels"] == ["SMS"]
        second = await beacon.add_comment(task_id, "Liftoff")
        for channel, address in addresses.items():
            if channel != "SMS":
                await reached(log, second, channel, address, "SENT")

    # then: each comment's popup lists Pat's deliveries per channel, with the address,
    # and the second has no SMS
    data = await beacon.client.execute(COMMENT_POPUPS, {"taskId": task_id})
    popups = {
        edge["node"]["id"]: edge["node"]["deliveryStatus"]
        for edge in data["task"]["comments"]["edges"]
    }

    def per_channel(comment_id: str) -> dict[str, str]:
        deliveries = popups[comment_id]["deliveries"]
        assert all(d["recipient"]["id"] == pat for d in deliveries)
        assert all(d["state"] == "SENT" for d in deliveries)
        # Each messenger names its message by the provider's id.
        assert all(d["providerMessageId"] for d in deliveries if d["channel"] != "EMAIL")
        return {d["channel"]: d["address"] for d in deliveries}

    assert per_channel(first["id"]) == addresses
    assert popups[first["id"]]["total"] == 5
    assert per_channel(second["id"]) == {k: v for k, v in addresses.items() if k != "SMS"}
    assert popups[second["id"]]["total"] == 4

    # when: the bot token is cleared
    cleared = await beacon.client.execute(
        SET_CHANNEL_CREDENTIALS, {"input": {"telegramBotToken": ""}}
    )

    # then: only Telegram is gone, and no secret ever reached the server's log
    assert sorted(cleared["setChannelCredentials"]["configuredChannels"]) == [
        "EMAIL",
        "IN_APP",
        "SMS",
        "WEBHOOK",
        "WHATSAPP",
    ]
    log_text = beacon.server.log
    assert "/graphql" in log_text  # the log is there, and has the requests
    for secret in providers.secrets:
        assert secret not in log_text
