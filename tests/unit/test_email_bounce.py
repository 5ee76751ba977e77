from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from channels.email.bounce import BounceKind, BounceReport, RecipientStatus, parse_bounce
from channels.email.verp import verp_address, verp_token

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def message(text: str) -> bytes:
    return textwrap.dedent(text).lstrip("\n").encode("utf-8")


@dataclass(frozen=True)
class Expected:
    kind: BounceKind
    address: str | None = None
    status: str | None = None
    diagnostic: str | None = None  # a fragment
    token: str | None = None
    message_id: str | None = None


EXPECTED = {
    "postfix_hard_5.1.1.eml": Expected(
        BounceKind.HARD,
        "bob@example.test",
        "5.1.1",
        "User unknown in virtual mailbox table",
        "pf1-Hd7Qm2xK9pLrZs",
        "<5b1f0c9e7a2d4e31b8c6f4a2d9e0b7c3@beacon.test>",
    ),
    "postfix_delayed_4.4.1.eml": Expected(
        BounceKind.SOFT,
        "carol@slow.example.test",
        "4.4.1",
        "delivery temporarily suspended",
        "pf2_Dl4yEd0Xq81mNc",
        "<0c7e2f5a9b3d4c18a6e1f0b2d4c6e8a0@beacon.test>",
    ),
    "exim_hard_plaintext_5.1.1.eml": Expected(
        BounceKind.HARD,
        "frank@example.test",
        "5.1.1",
        "SMTP error from remote mail server after RCPT TO:<frank@example.test>",
        "ex1-P1aInT3xt0ld",
        "<7d3a1e9f2c6b4a05b8e7d1c3f5a9b2e4@beacon.test>",
    ),
    "exim_hard_dsn_5.1.1.eml": Expected(
        BounceKind.HARD,
        "grace@example.test",
        "5.1.1",  # Exim says "Status: 5.0.0"; the diagnostic's 5.1.1 is more precise
        "User unknown in local recipient table",
        "ex2-Mu1t1pArtDSN",
        "<e2b9c4d7a1f34e6b9c0d8a7f6e5d4c3b@beacon.test>",
    ),
    "office365_hard_5.1.10.eml": Expected(
        BounceKind.HARD,
        "henry@fabrikam.example.test",
        "5.1.10",
        "RESOLVER.ADR.RecipientNotFound",
        "o365-RcptNotFound-1",
        "<3a9d7e1b5c2f4a68b0e9d8c7b6a5f4e3@beacon.test>",
    ),
    "gmail_hard_5.1.1.eml": Expected(
        BounceKind.HARD,
        "dave@example.test",
        "5.1.1",
        "The email account that you tried to reach does not exist",
        "gm1-N0SuchUs3r_xY",
        "<8f4e2a6c1b9d4f07a3e5c7b9d1f3a5c7@beacon.test>",
    ),
    "gmail_delayed_4.2.2.eml": Expected(
        BounceKind.SOFT,
        "erin@example.test",
        "4.2.2",
        "inbox is out of storage space",
        "gm2-0verQu0ta-Tmp",
        "<1e3c5a7b9d0f4e2a8c6b4d2f0e8a6c4b@beacon.test>",
    ),
    "qmail_hard_5.1.1.eml": Expected(
        BounceKind.HARD,
        "ivan@example.test",
        "5.1.1",
        "Remote host said: 550 5.1.1",
        "qm1-Qma1lR3m0te",
        "<6a8c0e2f4b1d4397a5c7e9b1d3f5a7c9@beacon.test>",
    ),
    "sendmail_hard_and_soft_5.1.1_4.2.2.eml": Expected(
        BounceKind.HARD,
        "mike@example.test",
        "5.1.1",
        "User unknown",
        "sm1-M1xedHardS0ft",
        "<b4d6f8a0c2e44b6d8f0a2c4e6b8d0f2a@beacon.test>",
    ),
    "outlook_auto_reply.eml": Expected(
        BounceKind.AUTO_REPLY,
        "judy@example.test",
        None,
        "Automatic reply:",
        "ol1-AutoR3ply0ut",
        "<c9e1a3b5d7f94a2c6e8b0d2f4a6c8e0b@beacon.test>",
    ),
    "gmail_vacation_reply.eml": Expected(
        BounceKind.AUTO_REPLY,
        "kim@example.test",
        None,
        "New comment on",
        "gm3-Vacat10nR3ply",
        "<d2f4a6c8e0b24d6f8a0c2e4b6d8f0a2c@beacon.test>",
    ),
    "arf_abuse_yahoo.eml": Expected(
        BounceKind.COMPLAINT,
        "lena@example.test",
        None,
        "abuse",
        "arf1-Yah00Fbl-Abuse",  # from Original-Mail-From: the report went to fbl@
        "<f0a2c4e6b8d04f2a6c8e0b2d4f6a8c0e@beacon.test>",
    ),
    "unparseable_human_reply.eml": Expected(
        BounceKind.UNPARSEABLE,
        token="hu1-Pl3aseR3move",
        message_id="<a7c9e1b3d5f74a9c2e4b6d8f0a2c4e6b@beacon.test>",
    ),
    "unparseable_random_bytes.eml": Expected(BounceKind.UNPARSEABLE),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_gives_its_kind_recipient_status_token_and_message_id(name: str) -> None:
    expected = EXPECTED[name]

    report = parse_bounce(sample(name))

    assert report.kind is expected.kind, report.summary
    assert report.verp_token == expected.token
    assert report.original_message_id == expected.message_id
    if expected.address is None:
        assert report.recipients == ()
        return
    first = report.recipients[0]
    assert first.address == expected.address
    assert first.status == expected.status
    assert expected.diagnostic is not None
    assert first.diagnostic is not None
    assert expected.diagnostic in first.diagnostic


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_crlf_line_ends_as_received_over_smtp_give_the_same_report(name: str) -> None:
    raw = sample(name)

    assert parse_bounce(raw.replace(b"\n", b"\r\n")) == parse_bounce(raw)


def test_every_sample_file_is_in_the_table() -> None:
    assert sorted(path.name for path in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_summary_is_one_human_line(name: str) -> None:
    report = parse_bounce(sample(name))

    assert report.summary
    assert "\n" not in report.summary
    assert len(report.summary) < 400
    report.summary.encode("utf-8")
    if report.recipients:
        assert report.recipients[0].address in report.summary


def test_a_hard_bounce_summary_names_the_address_the_code_and_the_reason() -> None:
    report = parse_bounce(sample("postfix_hard_5.1.1.eml"))

    assert report.summary == (
        "hard bounce for bob@example.test: 5.1.1 Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )


def test_the_dsn_fields_are_read_per_recipient() -> None:
    report = parse_bounce(sample("postfix_hard_5.1.1.eml"))

    assert report.recipients == (
        RecipientStatus(
            address="bob@example.test",
            status="5.1.1",
            action="failed",
            diagnostic=(
                "smtp; 550 5.1.1 <bob@example.test>: Recipient address rejected: "
                "User unknown in virtual mailbox table"
            ),
            remote_mta="mx1.example.test",
        ),
    )


@pytest.mark.parametrize(
    "name",
    ["postfix_hard_5.1.1.eml", "gmail_hard_5.1.1.eml", "exim_hard_dsn_5.1.1.eml"],
)
def test_a_bounce_marked_auto_replied_by_its_mta_is_still_a_bounce(name: str) -> None:
    raw = sample(name)
    assert b"Auto-Submitted: auto-replied" in raw

    assert parse_bounce(raw).kind is BounceKind.HARD


def test_a_dsn_with_one_hard_and_one_soft_recipient_is_hard_and_keeps_both() -> None:
    report = parse_bounce(sample("sendmail_hard_and_soft_5.1.1_4.2.2.eml"))

    assert report.kind is BounceKind.HARD
    assert [(r.address, r.status, r.action, r.kind) for r in report.recipients] == [
        ("mike@example.test", "5.1.1", "failed", BounceKind.HARD),
        ("nina@busy.example.test", "4.2.2", "delayed", BounceKind.SOFT),
    ]
    assert report.recipients[1].remote_mta == "mx.busy.example.test"
    assert "mike@example.test" in report.summary
    assert "nina@busy.example.test" in report.summary


DSN_TEMPLATE = """\
From: MAILER-DAEMON@mail.beacon.test (Mail Delivery System)
To: bounces+tok-1@bounces.beacon.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

This is the mail system at host mail.beacon.test.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.beacon.test

{blocks}

--b1--
"""


def dsn(recipient_blocks: str) -> bytes:
    blocks = textwrap.dedent(recipient_blocks).strip()
    return DSN_TEMPLATE.format(blocks=blocks).encode("utf-8")


def test_a_dsn_with_two_soft_recipients_is_soft() -> None:
    report = parse_bounce(
        dsn(
            """
            Final-Recipient: rfc822; a@example.test
            Action: delayed
            Status: 4.4.7

            Final-Recipient: rfc822; b@example.test
            Action: delayed
            Status: 4.4.1
            """
        )
    )

    assert report.kind is BounceKind.SOFT
    assert [r.address for r in report.recipients] == ["a@example.test", "b@example.test"]


def test_recipients_without_a_blank_line_between_them_are_still_separated() -> None:
    report = parse_bounce(
        dsn(
            """
            Final-Recipient: rfc822; a@example.test
            Action: delayed
            Status: 4.4.7
            Final-Recipient: rfc822; b@example.test
            Action: failed
            Status: 5.2.1
            """
        )
    )

    assert report.kind is BounceKind.HARD
    assert [(r.address, r.status) for r in report.recipients] == [
        ("a@example.test", "4.4.7"),
        ("b@example.test", "5.2.1"),
    ]


def test_a_missing_status_is_taken_from_the_diagnostic_code() -> None:
    report = parse_bounce(
        dsn(
            """
            Final-Recipient: rfc822; a@example.test
            Action: failed
            Diagnostic-Code: smtp; 550 5.7.1 <a@example.test>: Relay access denied

            Final-Recipient: rfc822; b@example.test
            Action: failed
            Diagnostic-Code: smtp; 452 Too many recipients received this hour
            """
        )
    )

    assert [(r.status, r.kind) for r in report.recipients] == [
        ("5.7.1", BounceKind.HARD),
        ("4.0.0", BounceKind.SOFT),
    ]


def test_a_failed_action_with_a_4xx_status_is_soft_and_keeps_the_action() -> None:
    report = parse_bounce(
        dsn(
            """
            Final-Recipient: rfc822; a@example.test
            Action: failed
            Status: 4.4.1
            Diagnostic-Code: X-Postfix; connect to mx.example.test[203.0.113.9]:25:
                Connection refused
            """
        )
    )

    assert report.kind is BounceKind.SOFT
    assert report.recipients[0].action == "failed"


def test_the_original_recipient_is_preferred_to_the_final_one() -> None:
    report = parse_bounce(
        dsn(
            """
            Final-Recipient: rfc822; bob.smith@mailbox.example.test
            Original-Recipient: rfc822; bob@example.test
            Action: failed
            Status: 5.2.2
            """
        )
    )

    assert report.recipients[0].address == "bob@example.test"


def test_a_delivered_report_is_not_a_failure() -> None:
    report = parse_bounce(
        dsn(
            """
            Final-Recipient: rfc822; a@example.test
            Action: relayed
            Status: 2.0.0
            Remote-MTA: dns; legacy.example.test
            """
        )
    )

    assert report.kind is BounceKind.SOFT
    assert report.recipients[0].kind is None
    assert report.summary.startswith("delivery report for a@example.test")


def test_a_dsn_without_recipient_fields_falls_back_to_its_text() -> None:
    raw = message(
        """
        From: Mail Delivery Subsystem <mailer-daemon@googlemail.example.test>
        To: bounces+tok-2@bounces.beacon.test
        Subject: Delivery Status Notification (Failure)
        X-Failed-Recipients: zoe@example.test
        Content-Type: multipart/report; boundary="b2"; report-type=delivery-status

        --b2
        Content-Type: text/plain; charset="UTF-8"

        ** Address not found **

        Your message wasn't delivered to zoe@example.test because the address couldn't be found.

        The response from the remote server was:
        550 5.1.1 The email account that you tried to reach does not exist.

        --b2
        Content-Type: message/delivery-status


        --b2--
        """
    )

    report = parse_bounce(raw)

    assert report.kind is BounceKind.HARD
    assert report.verp_token == "tok-2"
    assert [(r.address, r.status) for r in report.recipients] == [("zoe@example.test", "5.1.1")]


def test_an_exim_delay_warning_in_plain_text_is_soft() -> None:
    raw = message(
        """
        From: Mail Delivery System <Mailer-Daemon@smtp.relay.example.test>
        To: bounces+tok-3@bounces.beacon.test
        Subject: Warning: message 1tpOe0-0003Xq-7u delayed 24 hours
        Auto-Submitted: auto-replied

        This message was created automatically by mail delivery software.
        A message that you sent has not yet been delivered to one or more of its
        recipients after more than 24 hours on the queue on smtp.relay.example.test.

        The message identifier is:     1tpOe0-0003Xq-7u
        The date of the message is:    Tue, 04 Mar 2025 09:12:59 +0000

        The address to which the message has not yet been delivered is:

          pat@example.test
            host mx.example.test [203.0.113.61]
            Delay reason: SMTP error from remote mail server after RCPT TO:<pat@example.test>:
            451 4.3.0 <pat@example.test>: Temporary lookup failure

        No action is required on your part. Delivery attempts will continue for
        some time, and this warning may be repeated at intervals if the message
        remains undelivered.
        """
    )

    report = parse_bounce(raw)

    assert report.kind is BounceKind.SOFT
    recipient = report.recipients[0]
    assert (recipient.address, recipient.status, recipient.action) == (
        "pat@example.test",
        "4.3.0",
        "delayed",
    )
    assert recipient.remote_mta == "mx.example.test"


def test_a_postfix_text_only_bounce_is_read_from_its_paragraph() -> None:
    raw = message(
        """
        From: MAILER-DAEMON@mail.example.test (Mail Delivery System)
        To: bounces+tok-4@bounces.beacon.test
        Subject: Undelivered Mail Returned to Sender

        This is the mail system at host mail.example.test.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients. It's attached below.

        <quinn@example.test>: host mx.example.test[203.0.113.25] said: 552 5.2.2
            <quinn@example.test>: Mailbox full (in reply to RCPT TO command)
        """
    )

    report = parse_bounce(raw)

    assert report.kind is BounceKind.HARD
    assert report.recipients[0].status == "5.2.2"
    assert report.recipients[0].remote_mta == "mx.example.test"


def test_a_bounce_that_names_no_recipient_is_kept_as_unparseable() -> None:
    raw = message(
        """
        From: MAILER-DAEMON@mail.example.test
        To: bounces+tok-5@bounces.beacon.test
        Subject: Undeliverable: New comment on "Quarterly report"

        Something went wrong, but this server will not say what.
        """
    )

    report = parse_bounce(raw)

    assert report.kind is BounceKind.UNPARSEABLE
    assert report.verp_token == "tok-5"
    assert "Undeliverable" in report.summary


AUTO_REPLY_HEADERS = [
    "Auto-Submitted: auto-replied",
    "Auto-Submitted: auto-generated",
    "X-Autoreply: yes",
    "X-Autorespond: Out of office",
    "Precedence: auto_reply",
    "X-MS-Exchange-Inbox-Rules-Loop: uma@example.test",
    "Subject: Automatic reply: New comment",
    "Subject: =?utf-8?q?R=C3=A9ponse_automatique=C2=A0=3A_New_comment?=",
    "Subject: Out of Office: New comment",
]


@pytest.mark.parametrize("header", AUTO_REPLY_HEADERS)
def test_auto_reply_markers_make_an_auto_reply(header: str) -> None:
    subject = "" if header.startswith("Subject:") else "Subject: Re: New comment\n"
    raw = (
        "From: Uma <uma@example.test>\n"
        "To: bounces+tok-6@bounces.beacon.test\n"
        f"{subject}{header}\n"
        "In-Reply-To: <abc@beacon.test>\n"
        "\n"
        "I am away until Monday.\n"
    ).encode()

    report = parse_bounce(raw)

    assert report.kind is BounceKind.AUTO_REPLY
    assert report.recipients[0].address == "uma@example.test"
    assert report.original_message_id == "<abc@beacon.test>"
    assert report.verp_token == "tok-6"


def test_auto_submitted_no_is_not_an_auto_reply() -> None:
    raw = message(
        """
        From: Uma <uma@example.test>
        To: bounces+tok-7@bounces.beacon.test
        Subject: Re: New comment
        Auto-Submitted: no

        Thanks, I'll look at it tomorrow.
        """
    )

    assert parse_bounce(raw).kind is BounceKind.UNPARSEABLE


def arf(feedback_type: str, rcpt_to: str) -> bytes:
    return message(
        f"""
        From: Feedback Loop <fbl@isp.example.test>
        To: fbl@bounces.beacon.test
        Subject: Email Feedback Report for IP 192.0.2.25
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary="b3"

        --b3
        Content-Type: text/plain

        This is an email abuse report.

        --b3
        Content-Type: message/feedback-report

        Feedback-Type: {feedback_type}
        User-Agent: SomeGenerator/1.0
        Version: 1
        {rcpt_to}

        --b3
        Content-Type: text/rfc822-headers

        Return-Path: <bounces+tok-8@bounces.beacon.test>
        From: Beacon <notifications@beacon.test>
        To: Victor <victor@example.test>
        Subject: New comment
        Message-ID: <def@beacon.test>

        --b3--
        """
    )


def test_a_complaint_without_original_rcpt_to_names_the_returned_message_recipient() -> None:
    report = parse_bounce(arf("abuse", ""))

    assert report.kind is BounceKind.COMPLAINT
    assert [r.address for r in report.recipients] == ["victor@example.test"]
    assert report.original_message_id == "<def@beacon.test>"
    assert report.verp_token == "tok-8"  # from the returned message's Return-Path


def test_a_feedback_report_that_is_not_a_complaint_is_kept_for_review() -> None:
    report = parse_bounce(arf("auth-failure", "Original-Rcpt-To: <victor@example.test>"))

    assert report.kind is BounceKind.UNPARSEABLE
    assert "auth-failure" in report.summary
    assert report.recipients[0].address == "victor@example.test"


def test_the_envelope_recipient_gives_the_token_before_the_headers() -> None:
    report = parse_bounce(
        sample("postfix_hard_5.1.1.eml"),
        envelope_to=["someone@else.test", "<Bounces+from-envelope@bounces.beacon.test>"],
    )

    assert report.verp_token == "from-envelope"


def test_a_custom_verp_local_part_is_honoured() -> None:
    raw = sample("postfix_hard_5.1.1.eml").replace(b"bounces+", b"rtn+")

    assert parse_bounce(raw).verp_token is None
    assert parse_bounce(raw, verp_local_part="rtn").verp_token == "pf1-Hd7Qm2xK9pLrZs"


def test_garbage_keeps_the_token_from_the_envelope() -> None:
    report = parse_bounce(
        sample("unparseable_random_bytes.eml"),
        envelope_to=["bounces+tok-9@bounces.beacon.test"],
    )

    assert report.kind is BounceKind.UNPARSEABLE
    assert report.verp_token == "tok-9"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"   ",
        b"\x00\x01\x02",
        b"\xff\xfe\xfa\xfb not utf-8 at all \xc3\x28",
        b"Subject: =?x-unknown?q?abc?=\nContent-Type: text/plain; charset=x-unknown\n\n\xe9\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\n\n--\n",
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822;\nStatus: 9.9.9\n",
    ],
)
def test_odd_input_is_unparseable_and_never_raises(raw: bytes) -> None:
    report = parse_bounce(raw)

    assert isinstance(report, BounceReport)
    assert report.kind is BounceKind.UNPARSEABLE
    assert report.summary.startswith("unparseable: ")
    report.summary.encode("utf-8")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_sample_truncated_anywhere_never_raises(name: str) -> None:
    raw = sample(name)
    rng = random.Random(f"truncate {name}")

    for cut in sorted(rng.randrange(len(raw) + 1) for _ in range(20)):
        report = parse_bounce(raw[:cut])

        assert isinstance(report.kind, BounceKind)
        assert report.summary
        assert "the parser failed" not in report.summary, cut
        for recipient in report.recipients:
            recipient.address.encode("utf-8")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_sample_with_random_bytes_changed_never_raises(name: str) -> None:
    rng = random.Random(f"mangle {name}")

    for _ in range(10):
        raw = bytearray(sample(name))
        for _ in range(30):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        report = parse_bounce(bytes(raw))

        assert "the parser failed" not in report.summary
        report.summary.encode("utf-8")


# --- VERP ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["abc", "pf1-Hd7Qm2xK9pLrZs", "AbC_dEf-123", "a.b.c", "dGVzdA==", "x~y"]
)
def test_a_verp_address_round_trips_to_its_token(token: str) -> None:
    address = verp_address(token, "bounces.beacon.test")

    assert address == f"bounces+{token}@bounces.beacon.test"
    assert verp_token(address) == token


def test_the_verp_local_part_is_case_insensitive_and_the_token_keeps_its_case() -> None:
    assert verp_token("BOUNCES+AbC@bounces.beacon.test") == "AbC"
    assert verp_token("Bounce Handler <Bounces+AbC@bounces.beacon.test>") == "AbC"
    assert verp_token("<bounces+AbC@bounces.beacon.test>") == "AbC"


def test_a_custom_local_part_round_trips() -> None:
    address = verp_address("t1", "b.test", local_part="rtn")

    assert address == "rtn+t1@b.test"
    assert verp_token(address, local_part="rtn") == "t1"
    assert verp_token(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "bob@example.test",
        "bounces@bounces.beacon.test",
        "bounces+@bounces.beacon.test",
        "notbounces+abc@bounces.beacon.test",
        "bounces-abc@bounces.beacon.test",
        "bounces+abc",
        "bounces+a b@bounces.beacon.test",
        "bounces+a/b@bounces.beacon.test",
        "",
        "<>",
    ],
)
def test_a_foreign_address_has_no_verp_token(address: str) -> None:
    assert verp_token(address) is None


@pytest.mark.parametrize("token", ["", "a b", "a@b", "a+b", "a/b", ".a", "a..b", "é"])
def test_a_token_that_cannot_sit_in_a_local_part_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="VERP token"):
        verp_address(token, "bounces.beacon.test")


@pytest.mark.parametrize("domain", ["", " ", "a@b.test", "b .test"])
def test_a_bad_verp_domain_is_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="VERP domain"):
        verp_address("abc", domain)
