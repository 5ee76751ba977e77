from __future__ import annotations

import pytest

from channels.base import Outcome
from channels.email.mime import render_notification
from channels.email.sender import (
    Security,
    SmtpServer,
    classify_smtp_reply,
    masked_relay,
    rejects_mailbox,
)
from common.domain import NoticeKind


@pytest.mark.parametrize("code", [250, 251, 200, 299])
def test_a_2xx_reply_means_accepted(code: int) -> None:
    assert classify_smtp_reply(code) is Outcome.ACCEPTED


@pytest.mark.parametrize("code", [421, 450, 451, 452, 454])
def test_a_4xx_reply_is_worth_retrying(code: int) -> None:
    assert classify_smtp_reply(code) is Outcome.TRANSIENT


@pytest.mark.parametrize("code", [500, 535, 550, 553, 554, 599])
def test_a_5xx_reply_is_a_permanent_failure(code: int) -> None:
    assert classify_smtp_reply(code) is Outcome.PERMANENT


@pytest.mark.parametrize("code", [-1, 0, 199, 220, 354, 600, 999])
def test_a_reply_outside_2xx_4xx_5xx_is_treated_as_transient(code: int) -> None:
    expected = Outcome.ACCEPTED if 200 <= code < 300 else Outcome.TRANSIENT
    assert classify_smtp_reply(code) is expected


@pytest.mark.parametrize(
    ("url", "host", "port", "security"),
    [
        ("smtp://mail.example.test", "mail.example.test", 25, Security.NONE),
        ("smtp://mail.example.test:2525", "mail.example.test", 2525, Security.NONE),
        ("smtp+starttls://mail.example.test", "mail.example.test", 587, Security.STARTTLS),
        ("smtps://mail.example.test", "mail.example.test", 465, Security.TLS),
        ("smtps://mail.example.test:1465/", "mail.example.test", 1465, Security.TLS),
        ("SMTP://Mail.Example.Test", "mail.example.test", 25, Security.NONE),
        ("smtp://[::1]:1025", "::1", 1025, Security.NONE),
    ],
)
def test_a_url_gives_host_port_and_tls_mode(
    url: str, host: str, port: int, security: Security
) -> None:
    server = SmtpServer.from_url(url)

    assert (server.host, server.port, server.security) == (host, port, security)
    assert server.username is None
    assert server.password is None


def test_credentials_in_the_url_are_percent_decoded() -> None:
    server = SmtpServer.from_url("smtp+starttls://alice%40corp.test:p%3Ass%40word@mx.test")

    assert server.username == "alice@corp.test"
    assert server.password == "p:ss@word"


def test_a_user_without_a_password_is_kept() -> None:
    server = SmtpServer.from_url("smtp://alice@mx.test")

    assert server.username == "alice"
    assert server.password is None


def test_display_is_host_and_port() -> None:
    assert SmtpServer.from_url("smtp://u:pw@mx.test").display == "mx.test:25"
    assert SmtpServer.from_url("smtp://[2001:db8::1]:26").display == "[2001:db8::1]:26"


def test_the_password_never_shows_in_repr_or_str() -> None:
    server = SmtpServer.from_url("smtps://alice:Sup3r-Secret@mx.test:465")

    assert server.password == "Sup3r-Secret"
    for shown in (repr(server), str(server), f"{server}", f"{server!r}", server.display):
        assert "Sup3r-Secret" not in shown
    assert "alice" in repr(server)
    assert str(server) == "smtps://alice@mx.test:465"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://mx.test", "scheme"),
        ("mx.test:25", "scheme"),
        ("lmtp://mx.test", "scheme"),
        ("smtp://", "no host"),
        ("smtp://user:pw@:25", "no host"),
        ("smtp://mx.test:notaport", "port"),
        ("smtp://mx.test:70000", "port"),
        ("smtp://mx.test:0", "port"),
        ("smtp://mx.test/inbox", "path"),
        ("smtp://" + "a" * 490 + ".test", "longer than 500"),
        ("smtp://mx.test\x00:25", "control"),
        ("smtp://mx .test", "spaces"),
        ("smtp://mx..example.test", "invalid host name"),
    ],
)
def test_a_bad_url_is_refused_with_a_clear_message(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        SmtpServer.from_url(url)


def test_the_error_for_a_bad_url_does_not_repeat_the_password() -> None:
    with pytest.raises(ValueError, match="port") as caught:
        SmtpServer.from_url("smtp://alice:hunter2@mx.test:bad")

    assert "hunter2" not in str(caught.value)


def test_a_comment_notification_says_so_in_the_subject() -> None:
    subject, text, _ = render_notification("Fix login", "Done now", "Ann", None)

    assert subject == "[Beacon] New comment on Fix login"
    assert text == "Ann commented on Fix login:\n\nDone now\n"


@pytest.mark.parametrize(
    ("kind", "subject", "opening"),
    [
        (NoticeKind.NEW_TASK, "[Beacon] New task: Fix login", "Ann created a new task: Fix login"),
        (
            NoticeKind.NEW_COMMENT,
            "[Beacon] New comment on Fix login",
            "Ann commented on Fix login:",
        ),
        (
            NoticeKind.SYSTEM_COMMENT,
            "[Beacon] Automated comment on Fix login",
            "An automation commented on Fix login:",
        ),
        (
            NoticeKind.SCENARIO_MESSAGE,
            "[Beacon] Message about Fix login",
            "A message about the task Fix login:",
        ),
    ],
)
def test_each_kind_of_notification_says_what_happened_in_its_subject_and_first_line(
    kind: NoticeKind, subject: str, opening: str
) -> None:
    body = None if kind is NoticeKind.NEW_TASK else "Done now"
    author = None if kind in (NoticeKind.SYSTEM_COMMENT, NoticeKind.SCENARIO_MESSAGE) else "Ann"

    rendered_subject, text, html = render_notification("Fix login", body, author, None, kind)

    assert rendered_subject == subject
    assert text.splitlines()[0] == opening
    assert f"<title>{subject}</title>" in html


def test_a_new_task_notification_says_so_in_the_subject() -> None:
    subject, text, html = render_notification("Fix login", None, "Ann", None)

    assert subject == "[Beacon] New task: Fix login"
    assert "Fix login" in text
    assert "Fix login" in html


def test_a_title_with_line_breaks_still_makes_a_one_line_subject() -> None:
    subject, _, _ = render_notification("Fix\r\nlogin", None, None, None)

    assert subject == "[Beacon] New task: Fix login"


def test_the_pixel_ends_the_html_only_when_a_url_is_given() -> None:
    url = "http://127.0.0.1:8000/p/abc.def.gif"
    _, text, html = render_notification("T", "body", "Ann", url)
    _, text_without, html_without = render_notification("T", "body", "Ann", None)

    assert html.endswith(
        f'<img src="{url}" width="1" height="1" alt="" style="display:block;border:0">'
    )
    assert url not in text
    assert "<img" not in html_without
    assert "<img" not in text_without


def test_user_text_is_escaped_in_the_html_and_kept_as_is_in_the_text() -> None:
    _, text, html = render_notification(
        "<b>Title</b>", "<script>alert(1)</script> & more", "Eve <eve@x.test>", None
    )

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "&lt;b&gt;Title&lt;/b&gt;" in html
    assert "Eve &lt;eve@x.test&gt;" in html
    assert "<script>alert(1)</script> & more" in text


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (550, "5.1.1 <bob@x.test>: Recipient address rejected: User unknown"),
        (550, "5.1.1 The email account that you tried to reach does not exist."),
        (550, "5.1.2 <bob@nowhere.test>: Recipient address rejected: Domain not found"),
        (553, "5.1.3 Bad recipient address syntax"),
        (550, "5.1.6 Recipient mailbox has moved"),
        (556, "5.1.10 Recipient address has null MX"),
        (550, "5.2.1 The email account that you tried to reach is disabled."),
        (550, "5.1.1 first line\n5.1.1 second line"),
        # No enhanced status: only the words decide.
        (550, "<bob@x.test>... User unknown"),
        (550, "No such user here"),
        (550, "Requested action not taken: mailbox does not exist"),
        (550, "unknown recipient"),
    ],
)
def test_a_5xx_that_says_the_mailbox_does_not_exist_is_a_dead_mailbox(code: int, text: str) -> None:
    assert rejects_mailbox(code, text)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (550, "5.7.1 <bob@x.test>: Recipient address rejected: Access denied"),
        (554, "5.7.1 Relay access denied"),
        (550, "5.7.1 User unknown"),  # the enhanced status decides: policy
        (552, "5.2.2 Mailbox full"),
        (550, "5.1.8 <bounces@beacon.test>: Sender address rejected: Domain not found"),
        (550, "5.1.7 Bad sender address syntax"),
        (550, "5.1.0 Sender denied"),
        (550, "Message rejected as spam"),
        (550, "Requested action not taken: mailbox unavailable"),
        (550, "Sender address rejected: user unknown in local recipient table"),
        (450, "4.1.1 <bob@x.test>: Recipient address rejected: User unknown (try later)"),
        (250, "2.1.5 Ok"),
    ],
)
def test_a_policy_content_sender_or_temporary_refusal_is_not_a_dead_mailbox(
    code: int, text: str
) -> None:
    assert not rejects_mailbox(code, text)


def test_the_api_shows_a_relay_url_with_its_password_masked() -> None:
    assert (
        masked_relay("smtp+starttls://alice%40corp.test:Sup3r-Secret@MX.test:2525")
        == "smtp+starttls://alice%40corp.test:********@mx.test:2525"
    )
    assert masked_relay("smtps://alice@mx.test") == "smtps://alice@mx.test:465"
    assert masked_relay("smtp://127.0.0.1:1025") == "smtp://127.0.0.1:1025"
    assert masked_relay(None) is None
