"""Late bounces reach the server over SMTP (the VERP return path) or HTTP (an MTA pipe),
and a hard one turns a SENT delivery FAILED, live."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import aiosmtplib
import httpx
import pytest
import sqlalchemy as sa

from channels.email.bounce import parse_bounce
from channels.email.verp import verp_address, verp_token
from common.tokens import BOUNCE, sign
from db.engine import Database
from db.tables import bounces
from tests.e2e.helpers import Beacon, caused_by_comment
from tests.support.server import BOUNCE_AUTH, free_port
from tests.support.smtp_sink import ReceivedMessage

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
BOUNCE_PORT = free_port()

BOUNCES = """
query Bounces($unparsedOnly: Boolean!) {
  bounces(unparsedOnly: $unparsedOnly) { id parsed summary deliveryId }
}
"""

SUPPRESSIONS = "query { suppressions { address reason } }"

DELIVERY_STATE = """
query Delivery($id: ID!) { delivery(id: $id) { state error { code } } }
"""


def bounce_for(sample: str, return_path: str) -> bytes:
    """A real-world bounce sample, addressed to the return path of the email we sent."""
    raw = (SAMPLES / sample).read_bytes()
    sample_token = parse_bounce(raw).verp_token
    our_token = verp_token(return_path)
    assert sample_token is not None
    assert our_token is not None
    return raw.replace(sample_token.encode(), our_token.encode())


def last_email_to(beacon: Beacon, address: str) -> ReceivedMessage:
    """The comment's email (the task's own came first)."""
    return [m for m in beacon.sink.messages if address in m.rcpt_tos][-1]


@pytest.mark.parametrize("server_env", [{"BOUNCE_SMTP_PORT": str(BOUNCE_PORT)}])
async def test_a_hard_bounce_over_smtp_after_sent_turns_the_delivery_failed_live(
    beacon: Beacon,
) -> None:
    # given: an email to bob was accepted by the relay (SENT)
    bob = await beacon.add_contact("Bob", "bob@example.test")
    task_id = await beacon.create_task("Invoice", [bob])
    async with beacon.subscribe(task_id) as log:
        comment, update = await log.trigger(
            lambda: beacon.add_comment(task_id, "Invoice attached"), caused_by_comment
        )
        delivery_id = update["delivery"]["id"]
        await log.until_state(delivery_id, "SENT")
        received = last_email_to(beacon, "bob@example.test")

        # when: the recipient's server bounces it later, to our VERP return path
        raw = bounce_for("postfix_hard_5.1.1.eml", received.envelope_from)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=BOUNCE_PORT) as smtp:
            await smtp.sendmail("", [received.envelope_from], raw)

        # then: the subscription shows FAILED with the remote server's reason
        failed = await log.until_state(delivery_id, "FAILED")
    error = failed["delivery"]["error"]
    assert error["code"] == "5.1.1"
    assert error["permanent"] is True
    assert "User unknown" in error["message"]
    assert failed["delivery"]["sentAt"] is not None
    assert failed["status"]["state"] == "FAILED"
    assert failed["commentId"] == comment["id"]
    # the bounce, and the address going on the suppression list for the next emails
    assert [e["type"] for e in failed["delivery"]["events"]][-2:] == ["bounced", "suppressed"]


@pytest.mark.parametrize("server_env", [{"BOUNCE_SMTP_PORT": str(BOUNCE_PORT)}])
async def test_the_bounce_listener_refuses_mail_for_anyone_but_our_return_paths(
    beacon: Beacon,
) -> None:
    # when
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=BOUNCE_PORT) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail(
                "spam@example.test", ["postmaster@beacon.test"], b"Subject: x\r\n\r\nx"
            )

    # then
    assert refused.value.recipients[0].code == 550


async def test_a_bounce_piped_in_over_http_is_applied_and_listed(beacon: Beacon) -> None:
    # given: a SENT email
    bob = await beacon.add_contact("Bob", "bob@example.test")
    task_id = await beacon.create_task("Invoice", [bob])
    async with beacon.subscribe(task_id) as log:
        _, update = await log.trigger(
            lambda: beacon.add_comment(task_id, "Invoice attached"), caused_by_comment
        )
        delivery_id = update["delivery"]["id"]
        await log.until_state(delivery_id, "SENT")
        received = last_email_to(beacon, "bob@example.test")

        # when: an MTA pipes the bounce in, and an unreadable reply too
        async with httpx.AsyncClient(base_url=beacon.base_url) as http:
            hard = await http.post(
                "/callbacks/email-bounce",
                content=bounce_for("postfix_hard_5.1.1.eml", received.envelope_from),
                headers=BOUNCE_AUTH,
            )
            junk = await http.post(
                "/callbacks/email-bounce",
                content=bounce_for("unparseable_human_reply.eml", received.envelope_from),
                headers=BOUNCE_AUTH,
            )
            empty = await http.post("/callbacks/email-bounce", content=b"", headers=BOUNCE_AUTH)

        # then
        assert (hard.status_code, hard.json()["kind"]) == (200, "hard")
        assert hard.json()["deliveries"] == [delivery_id]
        assert (junk.status_code, junk.json()["kind"]) == (200, "unparseable")
        assert empty.status_code == 400
        await log.until_state(delivery_id, "FAILED")

    everything = (await beacon.client.execute(BOUNCES, {"unparsedOnly": False}))["bounces"]
    unparsed = (await beacon.client.execute(BOUNCES, {"unparsedOnly": True}))["bounces"]
    assert sorted(b["parsed"] for b in everything) == [False, True]
    assert [b["deliveryId"] for b in everything if b["parsed"]] == [delivery_id]
    assert len(unparsed) == 1
    assert unparsed[0]["parsed"] is False


def dsn_quoting(message_id: str) -> bytes:
    """A hard bounce for bob that names our email only by its Message-ID (which every
    recipient sees): what anyone could forge."""
    raw = (SAMPLES / "postfix_hard_5.1.1.eml").read_bytes()
    token = parse_bounce(raw).verp_token
    assert token is not None
    raw = raw.replace(f"bounces+{token}@bounces.beacon.test".encode(), b"postmaster@forger.test")
    return raw.replace(b"<5b1f0c9e7a2d4e31b8c6f4a2d9e0b7c3@beacon.test>", message_id.encode())


async def count_bounces(db: Database) -> int:
    async with db.read() as conn:
        found = await conn.execute(sa.select(sa.func.count()).select_from(bounces))
        return int(found.scalar_one())


async def sent_to_bob(beacon: Beacon) -> tuple[str, ReceivedMessage]:
    """A SENT email to bob: (its delivery id, the message as the relay received it)."""
    bob = await beacon.add_contact("Bob", "bob@example.test")
    task_id = await beacon.create_task("Invoice", [bob])
    async with beacon.subscribe(task_id) as log:
        _, update = await log.trigger(
            lambda: beacon.add_comment(task_id, "Invoice attached"), caused_by_comment
        )
        delivery_id: str = update["delivery"]["id"]
        await log.until_state(delivery_id, "SENT")
    return delivery_id, last_email_to(beacon, "bob@example.test")


async def test_a_forged_bounce_without_the_shared_secret_is_refused_and_changes_nothing(
    beacon: Beacon, db: Database
) -> None:
    # given: a SENT email, and a hard bounce for it that only quotes its Message-ID
    delivery_id, received = await sent_to_bob(beacon)
    assert received.message_id is not None
    forged = dsn_quoting(received.message_id)

    # when: it is posted without the secret, with a wrong one, and with another scheme
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        answers = [
            await http.post("/callbacks/email-bounce", content=forged, headers=headers)
            for headers in (
                {},
                {"Authorization": "Bearer not-the-secret"},
                {"Authorization": f"Basic {BOUNCE_AUTH['Authorization'].split()[1]}"},
            )
        ]

    # then: 401 each time, and nothing changed or was kept
    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert answers[0].headers["www-authenticate"].startswith("Bearer")
    delivery = (await beacon.client.execute(DELIVERY_STATE, {"id": delivery_id}))["delivery"]
    assert delivery == {"state": "SENT", "error": None}
    assert (await beacon.client.execute(SUPPRESSIONS))["suppressions"] == []
    assert await count_bounces(db) == 0

    # when: the operator's MTA sends it with the secret
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        applied = await http.post("/callbacks/email-bounce", content=forged, headers=BOUNCE_AUTH)

    # then: the Message-ID ties it to the email, and it is applied
    assert applied.status_code == 200, applied.text
    assert applied.json()["deliveries"] == [delivery_id]
    delivery = (await beacon.client.execute(DELIVERY_STATE, {"id": delivery_id}))["delivery"]
    assert delivery == {"state": "FAILED", "error": {"code": "5.1.1"}}
    (suppression,) = (await beacon.client.execute(SUPPRESSIONS))["suppressions"]
    assert suppression["address"] == "bob@example.test"


@pytest.mark.parametrize("server_env", [{"BOUNCE_WEBHOOK_SECRET": ""}])
async def test_without_a_configured_secret_the_bounce_route_takes_nothing(
    beacon: Beacon, db: Database
) -> None:
    # given: a SENT email and a genuine bounce for it (a valid VERP token)
    delivery_id, received = await sent_to_bob(beacon)

    # when
    async with httpx.AsyncClient(base_url=beacon.base_url) as http:
        answer = await http.post(
            "/callbacks/email-bounce",
            content=bounce_for("postfix_hard_5.1.1.eml", received.envelope_from),
            headers=BOUNCE_AUTH,
        )

    # then
    assert answer.status_code == 403
    assert "BOUNCE_WEBHOOK_SECRET" in answer.json()["error"]
    delivery = (await beacon.client.execute(DELIVERY_STATE, {"id": delivery_id}))["delivery"]
    assert delivery["state"] == "SENT"
    assert await count_bounces(db) == 0


@pytest.mark.parametrize("server_env", [{"BOUNCE_SMTP_PORT": str(BOUNCE_PORT)}])
async def test_a_bounce_over_smtp_to_a_return_path_we_did_not_sign_is_refused(
    beacon: Beacon, db: Database
) -> None:
    # given: a SENT email, and a return path naming its message under another key
    delivery_id, received = await sent_to_bob(beacon)
    token = verp_token(received.envelope_from)
    assert token is not None
    message_id = uuid.UUID(bytes=_token_id(token)).hex
    forged = verp_address(sign(message_id, b"not the server's key", BOUNCE), "beacon.test")

    # when
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=BOUNCE_PORT) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail("", [forged], bounce_for("postfix_hard_5.1.1.eml", forged))

    # then
    assert refused.value.recipients[0].code == 550
    delivery = (await beacon.client.execute(DELIVERY_STATE, {"id": delivery_id}))["delivery"]
    assert delivery["state"] == "SENT"
    assert (await beacon.client.execute(SUPPRESSIONS))["suppressions"] == []
    assert await count_bounces(db) == 0


def _token_id(token: str) -> bytes:
    """The 16-byte id inside a signed token (common/tokens.py: id, then MAC)."""
    return base64.urlsafe_b64decode(token + "=")[:16]
