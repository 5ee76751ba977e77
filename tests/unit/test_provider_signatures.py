"""Provider signatures and callback payloads, checked against the providers' documented
examples: Twilio's X-Twilio-Signature, WhatsApp's X-Hub-Signature-256 and GET handshake,
Beacon's own webhook signature, and the status reports in each provider's payloads."""

from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from channels import sms, webhook, whatsapp
from channels.base import ProviderReport, ReportStatus
from common.domain import Channel

# --- Twilio ---

# The worked example of twilio-php's "Validate Incoming Requests" guide
# (docs/usage/validation.rst): auth token 12345, this URL and these POST parameters.
TWILIO_PHP_EXAMPLE = (
    "12345",
    "https://mycompany.com/myapp.php?foo=1&bar=2",
    {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    },
    "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
)
# The same walk-through as it stands in Twilio's "Secure webhooks" page today.
TWILIO_DOCS_EXAMPLE = (
    "12345",
    "https://mycompany.com/myapp.php?foo=1&bar=2",
    {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    },
    "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
)


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(TWILIO_PHP_EXAMPLE, id="twilio-php-guide"),
        pytest.param(TWILIO_DOCS_EXAMPLE, id="secure-webhooks-page"),
    ],
)
def test_twilios_signature_matches_its_documented_example(
    example: tuple[str, str, dict[str, str], str],
) -> None:
    token, url, params, expected = example

    assert sms.signature(token, url, params) == expected
    assert sms.verify_signature(token, url, params, expected)


def test_a_twilio_signature_covers_the_url_every_parameter_and_the_token() -> None:
    token, url, params, good = TWILIO_PHP_EXAMPLE

    assert not sms.verify_signature(token, url, {**params, "Digits": "9999"}, good)
    assert not sms.verify_signature(token, url, {**params, "Extra": ""}, good)
    assert not sms.verify_signature(token, url.replace("https", "http"), params, good)
    assert not sms.verify_signature(token, url.replace("?foo=1&bar=2", ""), params, good)
    assert not sms.verify_signature("54321", url, params, good)


@pytest.mark.parametrize("header", [None, "", "not-base64", "rsoydt4t1cutdk1pdd93/vvr8b8="])
def test_a_missing_or_wrong_twilio_signature_is_refused(header: str | None) -> None:
    token, url, params, _ = TWILIO_PHP_EXAMPLE

    assert not sms.verify_signature(token, url, params, header)


def test_no_twilio_signature_verifies_without_an_auth_token() -> None:
    _, url, params, _ = TWILIO_PHP_EXAMPLE

    assert not sms.verify_signature("", url, params, sms.signature("", url, params))


# A status callback as Twilio's "Track the Message Status of Outbound Messages" guide
# shows it (form fields; the SIDs are made up).
TWILIO_STATUS = {
    "AccountSid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ApiVersion": "2010-04-01",
    "From": "+15017122661",
    "MessageSid": "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "MessageStatus": "delivered",
    "SmsSid": "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "SmsStatus": "delivered",
    "To": "+15558675310",
}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("sent", ReportStatus.SENT),
        ("delivered", ReportStatus.DELIVERED),
        ("read", ReportStatus.READ),
        ("undelivered", ReportStatus.FAILED),
        ("failed", ReportStatus.FAILED),
    ],
)
def test_twilio_statuses_past_the_carrier_become_reports(
    status: str, expected: ReportStatus
) -> None:
    before = datetime.now(UTC)

    report = sms.parse_status({**TWILIO_STATUS, "MessageStatus": status, "SmsStatus": status})

    assert report is not None
    assert (report.channel, report.provider_message_id, report.status) == (
        Channel.SMS,
        "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        expected,
    )
    # Twilio's callback has no timestamp: the report is dated on arrival.
    assert before <= report.at <= datetime.now(UTC)


@pytest.mark.parametrize("status", ["queued", "accepted", "scheduled", "sending", "receiving", ""])
def test_twilio_statuses_before_the_carrier_are_not_reports(status: str) -> None:
    assert sms.parse_status({**TWILIO_STATUS, "MessageStatus": status, "SmsStatus": status}) is None


def test_an_undelivered_twilio_message_carries_its_error_code_and_title() -> None:
    report = sms.parse_status(
        {**TWILIO_STATUS, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )

    assert report is not None
    assert report.error_code == "30003"
    assert report.error_message == (
        "Twilio reported the message undelivered: Unreachable destination handset"
    )


def test_a_failed_twilio_message_with_an_unlisted_code_still_says_what_happened() -> None:
    report = sms.parse_status({**TWILIO_STATUS, "MessageStatus": "failed", "ErrorCode": "63016"})

    assert report is not None
    assert (report.error_code, report.error_message) == (
        "63016",
        "Twilio reported the message failed",
    )


def test_a_twilio_callback_without_a_message_sid_is_not_a_report() -> None:
    form = {k: v for k, v in TWILIO_STATUS.items() if k not in ("MessageSid", "SmsSid")}

    assert sms.parse_status(form) is None


def test_the_older_sms_fields_are_read_when_the_message_fields_are_missing() -> None:
    form = {"SmsSid": "SM1", "SmsStatus": "sent", "AccountSid": "AC1"}

    report = sms.parse_status(form)

    assert report is not None
    assert (report.provider_message_id, report.status) == ("SM1", ReportStatus.SENT)


# --- WhatsApp signature and handshake ---

APP_SECRET = "e1b2c3d4app-secret"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'
GOOD = "sha256=" + hmac.new(APP_SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def test_a_body_signed_with_the_app_secret_verifies() -> None:
    assert whatsapp.verify_signature(APP_SECRET, BODY, GOOD)


def test_whatsapps_signature_is_the_plain_hmac_sha256_of_the_raw_body() -> None:
    # A published HMAC-SHA256 vector: key "secret", message "test".
    header = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"

    assert whatsapp.verify_signature("secret", b"test", header)


def test_the_hex_digest_may_come_in_upper_case() -> None:
    assert whatsapp.verify_signature(APP_SECRET, BODY, "sha256=" + GOOD[7:].upper())


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        pytest.param("another-secret", BODY, GOOD, id="other-secret"),
        pytest.param(APP_SECRET, BODY + b" ", GOOD, id="body-changed-by-one-byte"),
        pytest.param(APP_SECRET, BODY, None, id="missing"),
        pytest.param(APP_SECRET, BODY, "", id="empty"),
        pytest.param(APP_SECRET, BODY, GOOD[7:], id="no-scheme"),
        pytest.param(APP_SECRET, BODY, "sha1=" + GOOD[7:], id="sha1-scheme"),
        pytest.param(APP_SECRET, BODY, "sha256=", id="no-digest"),
        pytest.param(APP_SECRET, BODY, "sha256=zz" + GOOD[9:], id="not-hex"),
        pytest.param(APP_SECRET, BODY, "sha256=é" + GOOD[8:], id="not-ascii"),
        pytest.param(
            "", BODY, "sha256=" + hmac.new(b"", BODY, "sha256").hexdigest(), id="no-secret"
        ),
    ],
)
def test_a_bad_missing_or_malformed_whatsapp_signature_is_refused(
    secret: str, body: bytes, header: str | None
) -> None:
    assert not whatsapp.verify_signature(secret, body, header)


def test_the_handshake_echoes_the_challenge_for_our_verify_token() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "1158201444"}

    assert whatsapp.verify_handshake(params, "vt-1") == "1158201444"


@pytest.mark.parametrize(
    ("params", "verify_token"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "vt-2", "hub.challenge": "1"}, "vt-1"),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "vt-1", "hub.challenge": "1"}, "vt-1"),
        ({"hub.verify_token": "vt-1", "hub.challenge": "1"}, "vt-1"),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "vt-1"),
        ({"hub.mode": "subscribe", "hub.verify_token": "vt-1"}, "vt-1"),
        # An account without a verify token must not match an empty one.
        ({"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}, ""),
    ],
)
def test_the_handshake_answers_nothing_to_anyone_else(
    params: dict[str, str], verify_token: str
) -> None:
    assert whatsapp.verify_handshake(params, verify_token) is None


# --- WhatsApp payloads (shaped as Meta's webhook reference shows them) ---

WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNUE5RjQ0RjU3QjlFQzU4M0YA"


def status_payload(*statuses: dict[str, Any], phone_number_id: str = "106540352242922") -> Any:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": list(statuses),
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


SENT = {
    "id": WAMID,
    "status": "sent",
    "timestamp": "1750263773",
    "recipient_id": "16505551234",
    "conversation": {
        "id": "6ceb9d929c0bb9cd3e6a6ac1b3b2b3b0",
        "expiration_timestamp": "1750350180",
        "origin": {"type": "utility"},
    },
    "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"},
}
FAILED = {
    "id": WAMID,
    "status": "failed",
    "timestamp": "1750263775",
    "recipient_id": "16505551234",
    "errors": [
        {
            "code": 131050,
            "title": "Unable to deliver the message. This recipient has chosen to stop "
            "receiving marketing messages on WhatsApp from your business",
            "message": "Unable to deliver the message. This recipient has chosen to stop "
            "receiving marketing messages on WhatsApp from your business",
            "error_data": {"details": "Unable to deliver the message."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
    ],
}
# An inbound chat message: no status in it.
INBOUND = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "0",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "16505551111",
                            "phone_number_id": "123456123",
                        },
                        "contacts": [
                            {"profile": {"name": "test user name"}, "wa_id": "16315551181"}
                        ],
                        "messages": [
                            {
                                "from": "16315551181",
                                "id": "ABGGFlA5Fpa",
                                "timestamp": "1504902988",
                                "type": "text",
                                "text": {"body": "this is a text message"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


def test_sent_delivered_and_read_statuses_become_dated_reports() -> None:
    delivered = {**SENT, "status": "delivered", "timestamp": "1750263774"}
    read = {"id": WAMID, "status": "read", "timestamp": "1750263900", "recipient_id": "1"}

    parsed = whatsapp.parse_webhook(status_payload(SENT, delivered, read))

    assert parsed.phone_number_ids == {"106540352242922"}
    assert parsed.reports == (
        ProviderReport(
            Channel.WHATSAPP,
            WAMID,
            ReportStatus.SENT,
            datetime(2025, 6, 18, 16, 22, 53, tzinfo=UTC),
        ),
        ProviderReport(
            Channel.WHATSAPP,
            WAMID,
            ReportStatus.DELIVERED,
            datetime(2025, 6, 18, 16, 22, 54, tzinfo=UTC),
        ),
        ProviderReport(
            Channel.WHATSAPP, WAMID, ReportStatus.READ, datetime(2025, 6, 18, 16, 25, tzinfo=UTC)
        ),
    )


def test_a_failed_status_carries_the_first_errors_code_and_title() -> None:
    [report] = whatsapp.parse_webhook(status_payload(FAILED)).reports

    assert report.status is ReportStatus.FAILED
    assert report.error_code == "131050"
    assert report.error_message is not None
    assert report.error_message.startswith("Unable to deliver the message. This recipient")


def test_an_inbound_message_names_its_phone_number_and_reports_nothing() -> None:
    parsed = whatsapp.parse_webhook(INBOUND)

    assert parsed.phone_number_ids == {"123456123"}
    assert parsed.reports == ()


def test_every_entry_and_change_of_a_batched_payload_is_read() -> None:
    first = status_payload(SENT, phone_number_id="111")
    second = status_payload({**SENT, "id": "wamid.2", "status": "read"}, phone_number_id="222")
    batched = copy.deepcopy(first)
    batched["entry"].extend(second["entry"])

    parsed = whatsapp.parse_webhook(batched)

    assert parsed.phone_number_ids == {"111", "222"}
    assert [(r.provider_message_id, r.status) for r in parsed.reports] == [
        (WAMID, ReportStatus.SENT),
        ("wamid.2", ReportStatus.READ),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "entry",
        {"entry": "not a list"},
        {"entry": [None, 3, {"changes": None}]},
        {"entry": [{"changes": [{"value": 5}, {"value": {"statuses": "x"}}]}]},
        {"entry": [{"changes": [{"value": {"metadata": [], "statuses": [None, 7]}}]}]},
        status_payload({"status": "read", "timestamp": "1"}),  # no id
        status_payload({"id": 5, "status": "read"}),  # id not a string
        status_payload({"id": WAMID, "status": "deleted"}),  # not a delivery state
        status_payload({"id": WAMID, "status": "warning"}),
    ],
)
def test_payloads_of_unknown_shape_give_no_reports_and_never_raise(payload: object) -> None:
    assert whatsapp.parse_webhook(payload).reports == ()


def test_a_status_without_a_usable_timestamp_is_dated_on_arrival() -> None:
    before = datetime.now(UTC)

    [report] = whatsapp.parse_webhook(
        status_payload({"id": WAMID, "status": "read", "timestamp": "yesterday"})
    ).reports

    assert before <= report.at <= datetime.now(UTC)


def test_a_failed_status_without_errors_is_still_a_failure() -> None:
    [report] = whatsapp.parse_webhook(
        status_payload({"id": WAMID, "status": "failed", "timestamp": "1750263775"})
    ).reports

    assert (report.status, report.error_code, report.error_message) == (
        ReportStatus.FAILED,
        None,
        None,
    )


# --- Beacon's webhook signature ---

SECRET = "whsec-test"
PAYLOAD = b'{"id":"m1","text":"hello"}'
SENT_AT = 1_700_000_000


def test_the_signature_is_hmac_sha256_over_the_timestamp_a_dot_and_the_body() -> None:
    expected = hmac.new(b"whsec-test", b'1700000000.{"id":"m1","text":"hello"}', "sha256")

    assert webhook.sign(SECRET, SENT_AT, PAYLOAD) == "v1=" + expected.hexdigest()


@pytest.mark.parametrize("delay", [0, 299, -299])
def test_a_signature_verifies_within_the_tolerance(delay: int) -> None:
    header = webhook.sign(SECRET, SENT_AT, PAYLOAD)

    assert webhook.verify(SECRET, str(SENT_AT), PAYLOAD, header, now=SENT_AT + delay)


@pytest.mark.parametrize("delay", [301, -301])
def test_a_signature_too_old_or_from_the_future_is_refused(delay: int) -> None:
    header = webhook.sign(SECRET, SENT_AT, PAYLOAD)

    assert not webhook.verify(SECRET, str(SENT_AT), PAYLOAD, header, now=SENT_AT + delay)


def test_the_tolerance_can_be_narrowed() -> None:
    header = webhook.sign(SECRET, SENT_AT, PAYLOAD)

    assert not webhook.verify(SECRET, str(SENT_AT), PAYLOAD, header, now=SENT_AT + 60, tolerance=30)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "header"),
    [
        pytest.param("other", str(SENT_AT), PAYLOAD, None, id="other-secret"),
        pytest.param(SECRET, str(SENT_AT + 1), PAYLOAD, None, id="timestamp-changed"),
        pytest.param(SECRET, str(SENT_AT), PAYLOAD + b" ", None, id="body-changed"),
        pytest.param(SECRET, None, PAYLOAD, None, id="no-timestamp"),
        pytest.param(SECRET, "soon", PAYLOAD, None, id="timestamp-not-a-number"),
        pytest.param(SECRET, str(SENT_AT), PAYLOAD, "", id="no-signature"),
        pytest.param(SECRET, str(SENT_AT), PAYLOAD, "v0=abc", id="unknown-version"),
        pytest.param("", str(SENT_AT), PAYLOAD, None, id="no-secret"),
    ],
)
def test_a_signature_that_does_not_match_is_refused(
    secret: str, timestamp: str | None, body: bytes, header: str | None
) -> None:
    signed = webhook.sign(SECRET, SENT_AT, PAYLOAD) if header is None else header

    assert not webhook.verify(secret, timestamp, body, signed, now=SENT_AT)


def test_one_matching_signature_among_several_is_enough_while_a_secret_rotates() -> None:
    header = f"{webhook.sign('old', SENT_AT, PAYLOAD)}, {webhook.sign(SECRET, SENT_AT, PAYLOAD)}"

    assert webhook.verify(SECRET, str(SENT_AT), PAYLOAD, header, now=SENT_AT)
    assert webhook.verify("old", str(SENT_AT), PAYLOAD, header, now=SENT_AT)
    assert not webhook.verify("neither", str(SENT_AT), PAYLOAD, header, now=SENT_AT)
