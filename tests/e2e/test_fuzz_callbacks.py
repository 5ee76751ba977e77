"""Malformed and forged bodies on the callback endpoints: each is answered with a 4xx,
never a 500, and nothing in the database changes.

The account has a SENT email delivery, WhatsApp and Twilio credentials, so a generated
payload can name real ids (the message's Message-ID, the phone number id, the
AccountSid) and reach the signature checks; nothing generated is signed with the
account's secrets, so nothing may be believed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.engine import Database
from db.tables import metadata
from tests.e2e.helpers import Beacon
from tests.support.services import IN_CI
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

PHONE_NUMBER_ID = "106540352242922"
ACCOUNT_SID = "AC" + "f" * 32

SET_CREDENTIALS = """
mutation SetCredentials($input: ChannelCredentialsInput!) {
  setChannelCredentials(input: $input) { id }
}
"""

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- bodies

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def whatsapp_shaped(status: Any, phone_number_id: Any, message_id: Any) -> dict[str, Any]:
    """A WhatsApp Cloud API status webhook, with generated values in its places."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": phone_number_id},
                            "statuses": [{"id": message_id, "status": status, "timestamp": "1"}],
                        },
                    }
                ],
            }
        ],
    }


WHATSAPP_BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.integers(min_value=100, max_value=5000).map(nested),
    st.builds(
        whatsapp_shaped,
        st.sampled_from(["sent", "delivered", "read", "failed"]) | JSON_VALUES,
        st.just(PHONE_NUMBER_ID) | JSON_VALUES,
        JSON_VALUES,
    ).map(lambda value: json.dumps(value).encode()),
)

FORM_FIELDS = st.dictionaries(
    st.sampled_from(["AccountSid", "MessageSid", "MessageStatus", "ErrorCode", "To", "From"])
    | st.text(max_size=10),
    st.just(ACCOUNT_SID) | st.text(max_size=40),
    max_size=6,
)
SMS_BODIES = st.one_of(
    st.binary(max_size=200),
    FORM_FIELDS.map(lambda fields: httpx.QueryParams(fields).__str__().encode()),
)


def bounce_message(message_id: str, recipient: str, status: str) -> bytes:
    """A DSN that only quotes a Message-ID: what a forger knows."""
    return (
        "From: MAILER-DAEMON@mx.example\r\n"
        "To: bounces@localhost\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        "\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\n\r\n--b--\r\n"
    ).encode("utf-8", "surrogateescape")


SIGNATURE_HEADERS = st.dictionaries(
    st.sampled_from(["x-hub-signature-256", "x-twilio-signature", "authorization", "content-type"]),
    # What an HTTP client can send as a header value: visible ASCII, inner spaces.
    st.from_regex(r"[!-~]([ -~]{0,78}[!-~])?", fullmatch=True),
    max_size=3,
)

# --------------------------------------------------------------------------- the database


async def snapshot(database_url: str) -> dict[str, Any]:
    """Every table's row count, and every delivery's state: what a callback could change."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for every count: a commit between two of them would show
                # a state without its event.
                await conn.execution_options(isolation_level="REPEATABLE READ")
            counts = {
                table.name: (
                    await conn.execute(sa.select(sa.func.count()).select_from(table))
                ).scalar_one()
                for table in metadata.sorted_tables
            }
            deliveries = metadata.tables["deliveries"]
            states = (await conn.execute(sa.select(deliveries.c.id, deliveries.c.state))).all()
            events = metadata.tables["delivery_events"]
            event_types: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.select(events.c.type, sa.func.count()).group_by(events.c.type)
                    )
                ).all()
            )
    finally:
        await db.dispose()
    return {
        "counts": counts,
        "states": sorted((str(i), s) for i, s in states),
        "events": event_types,
    }


@pytest.fixture
async def sent_email(beacon: Beacon, database_url: str) -> dict[str, Any]:
    """A SENT email delivery, the account's WhatsApp and Twilio credentials, and the
    database as it stands then."""
    await beacon.client.execute(
        SET_CREDENTIALS,
        {
            "input": {
                "whatsappPhoneNumberId": PHONE_NUMBER_ID,
                "whatsappAccessToken": "access-token",
                "whatsappAppSecret": "app-secret",
                "whatsappVerifyToken": "verify-token",
                "twilioAccountSid": ACCOUNT_SID,
                "twilioAuthToken": "auth-token",
                "twilioFromNumber": "+15550001111",
            }
        },
    )
    contact = await beacon.add_contact("Ann", "ann@example.test")
    task_id = await beacon.create_task("Quote", [contact])
    await beacon.add_comment(task_id, "The quote is ready")
    # The task's email and the comment's: either proves a SENT email exists.
    message = (await beacon.sink.wait_for_messages(1))[0]
    assert message.message_id is not None

    async def all_sent() -> dict[str, Any]:
        # Settled: every delivery SENT with its 'sent' event written, no job left.
        state = await snapshot(database_url)
        assert state["states"], state
        assert {s for _, s in state["states"]} == {"SENT"}, state
        assert state["counts"]["send_jobs"] == 0, state
        assert state["events"].get("sent") == len(state["states"]), state
        return state

    before = await eventually(all_sent)
    return {
        "message_id": message.message_id,
        "before": before,
    }


async def assert_refused_and_unchanged(
    response: httpx.Response, database_url: str, before: dict[str, Any], body: bytes
) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, body[:300], response.text)
    assert await snapshot(database_url) == before, body[:300]


# --------------------------------------------------------------------------- the tests


@FUZZ_SETTINGS
@given(body=WHATSAPP_BODIES, headers=SIGNATURE_HEADERS)
async def test_whatsapp_callbacks_with_bad_bodies_or_signatures_change_nothing(
    beacon: Beacon,
    database_url: str,
    sent_email: dict[str, Any],
    body: bytes,
    headers: dict[str, str],
) -> None:
    response = await beacon.client.http.post("/callbacks/whatsapp", content=body, headers=headers)
    await assert_refused_and_unchanged(response, database_url, sent_email["before"], body)


@FUZZ_SETTINGS
@given(body=SMS_BODIES, headers=SIGNATURE_HEADERS)
async def test_sms_callbacks_with_bad_bodies_or_signatures_change_nothing(
    beacon: Beacon,
    database_url: str,
    sent_email: dict[str, Any],
    body: bytes,
    headers: dict[str, str],
) -> None:
    response = await beacon.client.http.post(
        "/callbacks/sms",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )
    await assert_refused_and_unchanged(response, database_url, sent_email["before"], body)


@FUZZ_SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(
            bounce_message,
            st.just("<quoted>"),
            st.text(max_size=30),
            st.sampled_from(["5.1.1", "5.0.0", "4.4.1", "x"]),
        ),
    ),
    quote_the_real_message_id=st.booleans(),
    headers=SIGNATURE_HEADERS,
)
async def test_unproven_bounces_over_http_change_nothing(
    beacon: Beacon,
    database_url: str,
    sent_email: dict[str, Any],
    body: bytes,
    quote_the_real_message_id: bool,
    headers: dict[str, str],
) -> None:
    if quote_the_real_message_id:
        body = body.replace(b"<quoted>", sent_email["message_id"].encode())
    response = await beacon.client.http.post(
        "/callbacks/email-bounce",
        content=body,
        params={"recipient": "ann@example.test"},
        headers=headers,
    )
    await assert_refused_and_unchanged(response, database_url, sent_email["before"], body)
