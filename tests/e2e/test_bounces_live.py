"""Late bounces reach the server over SMTP (the VERP return path) or HTTP (an MTA pipe),
and a hard one turns a SENT delivery FAILED, live."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import httpx
import pytest

from channels.email_bounce import parse_bounce, verp_token
from tests.e2e.helpers import Beacon, caused_by_comment
from tests.support.server import free_port
from tests.support.smtp_sink import ReceivedMessage

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
BOUNCE_PORT = free_port()

BOUNCES = """
query Bounces($unparsedOnly: Boolean!) {
  bounces(unparsedOnly: $unparsedOnly) { id parsed summary deliveryId }
}
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
            )
            junk = await http.post(
                "/callbacks/email-bounce",
                content=bounce_for("unparseable_human_reply.eml", received.envelope_from),
            )
            empty = await http.post("/callbacks/email-bounce", content=b"")

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
