from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from channels.base import Outcome, RecipientResult
from channels.email.mime import OutgoingEmail, build_mime, render_notification
from channels.email.sender import EmailSender, SmtpServer
from tests.support.providers.network import refused_port
from tests.support.services import require_service
from tests.support.smtp_sink import SmtpSink

PIXEL = "http://127.0.0.1:8000/p/tok3n.sig.gif"


def make_email(
    *recipients: str,
    to: tuple[str, ...] | None = None,
    message_id: str = "<n1.d1@beacon>",
    comment: str | None = "Looks good",
    pixel_url: str | None = PIXEL,
) -> OutgoingEmail:
    subject, text, html = render_notification("Ship v2", comment, "Ann", pixel_url)
    return OutgoingEmail(
        message_id=message_id,
        from_header="Beacon <notifications@beacon.test>",
        envelope_from="bounces@beacon.test",
        to=to if to is not None else recipients,
        recipients=recipients,
        subject=subject,
        text=text,
        html=html,
    )


def sink_url(sink: SmtpSink) -> SmtpServer:
    return SmtpServer.from_url(f"smtp://{sink.host}:{sink.port}")


@pytest.fixture
def sender() -> EmailSender:
    return EmailSender(timeout=5, local_hostname="beacon.test")


RawServer = Callable[[bytes | None], Awaitable[int]]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    """A TCP server that says `greeting` and hangs up, or (None) stays silent; its port."""
    servers: list[asyncio.Server] = []

    async def start(greeting: bytes | None) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if greeting is None:
                await reader.read()  # say nothing until the client gives up
            else:
                writer.write(greeting)
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_every_accepted_recipient_names_the_server_from_its_greeting(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    email = make_email("ann@x.test", "bob@x.test")

    results = await sender.send(email, sink_url(smtp_sink))

    assert [(r.address, r.outcome, r.code) for r in results] == [
        ("ann@x.test", Outcome.ACCEPTED, "250"),
        ("bob@x.test", Outcome.ACCEPTED, "250"),
    ]
    # The greeting said "220 sink.test ...": not the address we dialled.
    assert {r.accepted_by for r in results} == {"sink.test"}
    assert all(r.message.startswith("250 2.0.0 Ok") for r in results)
    [received] = await smtp_sink.wait_for_messages(1)
    assert received.message_id == "<n1.d1@beacon>"
    assert received.envelope_from == "bounces@beacon.test"
    assert received.rcpt_tos == ("ann@x.test", "bob@x.test")


async def test_a_mixed_batch_gives_each_recipient_its_own_reply(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    email = make_email("reject@x.test", "defer@x.test", "ok@x.test")

    results = await sender.send(email, sink_url(smtp_sink))

    assert results == [
        RecipientResult(
            "reject@x.test",
            Outcome.PERMANENT,
            "550",
            "550 5.1.1 <reject@x.test>: Recipient address rejected: User unknown",
            # "no such user": the address itself is dead
            dead_address=True,
        ),
        RecipientResult(
            "defer@x.test", Outcome.TRANSIENT, "451", "451 4.7.1 <defer@x.test>: Try again later"
        ),
        RecipientResult(
            "ok@x.test", Outcome.ACCEPTED, "250", "250 2.0.0 Ok: queued", accepted_by="sink.test"
        ),
    ]
    [received] = await smtp_sink.wait_for_messages(1)
    assert received.rcpt_tos == ("ok@x.test",)
    assert smtp_sink.rcpt_attempts == ["reject@x.test", "defer@x.test", "ok@x.test"]


async def test_when_every_recipient_is_refused_each_keeps_its_reply_and_nothing_is_sent(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    results = await sender.send(make_email("reject@x.test", "defer@x.test"), sink_url(smtp_sink))

    assert [(r.outcome, r.code, r.message) for r in results] == [
        (
            Outcome.PERMANENT,
            "550",
            "550 5.1.1 <reject@x.test>: Recipient address rejected: User unknown",
        ),
        (Outcome.TRANSIENT, "451", "451 4.7.1 <defer@x.test>: Try again later"),
    ]
    assert [r.dead_address for r in results] == [True, False]
    assert smtp_sink.messages == []


async def test_a_refused_recipients_address_is_logged_only_at_debug_level(
    smtp_sink: SmtpSink, sender: EmailSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels.email.sender")
    await sender.send(make_email("reject@x.test"), sink_url(smtp_sink))
    lines = [
        record.getMessage() for record in caplog.records if record.name == "channels.email.sender"
    ]
    assert lines  # the refusal is logged...
    assert not [line for line in lines if "reject@x.test" in line]  # ...without the address

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="channels.email.sender")
    await sender.send(make_email("reject@x.test"), sink_url(smtp_sink))
    assert [
        record.levelname
        for record in caplog.records
        if record.name == "channels.email.sender" and "reject@x.test" in record.getMessage()
    ] == ["DEBUG"]


async def test_a_retry_sends_only_to_pending_recipients_with_the_same_message_id(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    everyone = ("ann@x.test", "bob@x.test", "cy@x.test")
    await sender.send(make_email(*everyone), sink_url(smtp_sink))
    retry = make_email("bob@x.test", to=everyone)

    results = await sender.send(retry, sink_url(smtp_sink))

    assert [r.address for r in results] == ["bob@x.test"]
    first, second = await smtp_sink.wait_for_messages(2)
    assert second.rcpt_tos == ("bob@x.test",)
    assert second.message_id == first.message_id == "<n1.d1@beacon>"
    assert second.message["To"].addresses == first.message["To"].addresses
    assert len(second.message["To"].addresses) == 3
    assert smtp_sink.rcpt_attempts.count("bob@x.test") == 2
    assert smtp_sink.rcpt_attempts.count("ann@x.test") == 1


async def test_a_refused_sender_fails_every_recipient_with_that_reply(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    email = make_email("ann@x.test", "bob@x.test")
    email = OutgoingEmail(**{**email.__dict__, "envelope_from": "reject-me@beacon.test"})

    results = await sender.send(email, sink_url(smtp_sink))

    reply = "550 5.7.1 <reject-me@beacon.test>: Sender address rejected: Access denied"
    assert [(r.outcome, r.code, r.message) for r in results] == [
        (Outcome.PERMANENT, "550", reply),
        (Outcome.PERMANENT, "550", reply),
    ]
    assert smtp_sink.rcpt_attempts == []


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ("554 5.6.0 Message content rejected", Outcome.PERMANENT),
        ("452 4.3.1 Insufficient system storage", Outcome.TRANSIENT),
    ],
)
async def test_a_refused_data_applies_its_reply_to_every_recipient(
    smtp_sink: SmtpSink, sender: EmailSender, reply: str, outcome: Outcome
) -> None:
    smtp_sink.data_reply = reply

    results = await sender.send(make_email("ann@x.test", "bob@x.test"), sink_url(smtp_sink))

    assert [(r.outcome, r.code, r.message) for r in results] == [(outcome, reply[:3], reply)] * 2
    assert all(r.accepted_by is None for r in results)


async def test_a_no_such_user_reply_after_data_is_not_taken_as_a_dead_address(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    # Only a reply to RCPT TO is about one recipient's address.
    smtp_sink.data_reply = "550 5.1.1 User unknown"

    results = await sender.send(make_email("ann@x.test", "bob@x.test"), sink_url(smtp_sink))

    assert [(r.outcome, r.dead_address) for r in results] == [(Outcome.PERMANENT, False)] * 2


async def test_a_closed_port_is_a_transient_connection_refused(sender: EmailSender) -> None:
    with refused_port() as port:
        server = SmtpServer.from_url(f"smtp://127.0.0.1:{port}")

        results = await sender.send(make_email("ann@x.test", "bob@x.test"), server)

    assert [(r.address, r.outcome, r.code) for r in results] == [
        ("ann@x.test", Outcome.TRANSIENT, "CONNECTION_REFUSED"),
        ("bob@x.test", Outcome.TRANSIENT, "CONNECTION_REFUSED"),
    ]
    assert server.display in results[0].message


async def test_a_server_that_never_answers_times_out(
    raw_server: RawServer,
) -> None:
    port = await raw_server(None)
    sender = EmailSender(timeout=0.3, local_hostname="beacon.test")

    results = await sender.send(
        make_email("ann@x.test"), SmtpServer.from_url(f"smtp://127.0.0.1:{port}")
    )

    assert [(r.outcome, r.code) for r in results] == [(Outcome.TRANSIENT, "TIMEOUT")]


async def test_a_server_that_hangs_up_is_a_transient_disconnect(
    raw_server: RawServer, sender: EmailSender
) -> None:
    port = await raw_server(b"")

    results = await sender.send(
        make_email("ann@x.test"), SmtpServer.from_url(f"smtp://127.0.0.1:{port}")
    )

    assert [(r.outcome, r.code) for r in results] == [(Outcome.TRANSIENT, "DISCONNECTED")]


async def test_a_server_refusing_service_in_its_greeting_fails_with_that_reply(
    raw_server: RawServer, sender: EmailSender
) -> None:
    port = await raw_server(b"554 5.3.2 mx.example.test No service for you\r\n")

    results = await sender.send(
        make_email("ann@x.test"), SmtpServer.from_url(f"smtp://127.0.0.1:{port}")
    )

    assert [(r.outcome, r.code, r.message) for r in results] == [
        (Outcome.PERMANENT, "554", "554 5.3.2 mx.example.test No service for you")
    ]


async def test_implicit_tls_against_a_plain_server_is_a_tls_error(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    server = SmtpServer.from_url(f"smtps://127.0.0.1:{smtp_sink.port}")

    results = await sender.send(make_email("ann@x.test"), server)

    assert [(r.outcome, r.code) for r in results] == [(Outcome.TRANSIENT, "TLS_ERROR")]
    assert smtp_sink.messages == []


async def test_required_starttls_that_the_server_does_not_offer_sends_nothing(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    server = SmtpServer.from_url(f"smtp+starttls://127.0.0.1:{smtp_sink.port}")

    results = await sender.send(make_email("ann@x.test"), server)

    assert [(r.outcome, r.code) for r in results] == [(Outcome.TRANSIENT, "TLS_ERROR")]
    assert "STARTTLS" in results[0].message
    assert smtp_sink.rcpt_attempts == []


async def test_failures_never_reveal_the_password(smtp_sink: SmtpSink, sender: EmailSender) -> None:
    # The sink offers no AUTH on a plain connection, so the login itself fails.
    with_login = SmtpServer.from_url(f"smtp://ann:hunter2@127.0.0.1:{smtp_sink.port}")
    failed_login = await sender.send(make_email("ann@x.test"), with_login)
    with refused_port() as port:
        refused = SmtpServer.from_url(f"smtp://ann:hunter2@127.0.0.1:{port}")
        failed_connect = await sender.send(make_email("ann@x.test"), refused)

    assert [(r.outcome, r.code) for r in failed_login] == [(Outcome.TRANSIENT, "AUTH_ERROR")]
    assert failed_connect[0].code == "CONNECTION_REFUSED"
    for result in failed_login + failed_connect:
        assert "hunter2" not in repr(result)
    assert smtp_sink.rcpt_attempts == []


async def test_an_unusable_address_fails_alone(smtp_sink: SmtpSink, sender: EmailSender) -> None:
    results = await sender.send(make_email("ann@x.test", "bad address@x.test"), sink_url(smtp_sink))

    assert [(r.outcome, r.code) for r in results] == [
        (Outcome.ACCEPTED, "250"),
        (Outcome.PERMANENT, "INVALID_ADDRESS"),
    ]
    assert smtp_sink.rcpt_attempts == ["ann@x.test"]


async def test_no_recipients_means_no_connection(sender: EmailSender) -> None:
    with refused_port() as port:
        server = SmtpServer.from_url(f"smtp://127.0.0.1:{port}")

        assert await sender.send(make_email(), server) == []


def test_the_mime_message_has_the_headers_and_both_parts() -> None:
    message = build_mime(make_email("ann@x.test", to=("ann@x.test", "bob@x.test")))

    assert message.get_content_type() == "multipart/alternative"
    assert message["Message-ID"] == "<n1.d1@beacon>"
    assert message["From"] == "Beacon <notifications@beacon.test>"
    assert message["To"] == "ann@x.test, bob@x.test"
    assert message["Subject"] == "[Beacon] New comment on Ship v2"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    parts = [(p.get_content_type(), p.get_content_charset()) for p in message.iter_parts()]
    assert parts == [("text/plain", "utf-8"), ("text/html", "utf-8")]


async def test_the_delivered_html_has_the_pixel_and_escapes_the_comment(
    smtp_sink: SmtpSink, sender: EmailSender
) -> None:
    with_pixel = make_email("ann@x.test", comment="<script>alert('x')</script> Grüße")
    without_pixel = make_email("ann@x.test", message_id="<n2@beacon>", pixel_url=None)

    await sender.send(with_pixel, sink_url(smtp_sink))
    await sender.send(without_pixel, sink_url(smtp_sink))

    first, second = await smtp_sink.wait_for_messages(2)
    html_part = first.message.get_body(("html",))
    text_part = first.message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    assert f'<img src="{PIXEL}" width="1" height="1"' in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Grüße" in html
    assert "<script>alert('x')</script> Grüße" in text
    assert PIXEL not in text
    second_html = second.message.get_body(("html",))
    assert second_html is not None
    assert "<img" not in second_html.get_content()


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for a throwaway certificate valid for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        require_service("openssl", "it makes the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # fixed arguments, no shell
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_starttls_comes_before_the_login_and_the_message(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = tls_contexts
    sender = EmailSender(timeout=5, local_hostname="beacon.test", tls_context=client_tls)
    async with SmtpSink(tls_context=server_tls, credentials=("ann", "s3cret")) as sink:
        url = f"smtp+starttls://ann:s3cret@127.0.0.1:{sink.port}"

        results = await sender.send(make_email("bob@x.test"), SmtpServer.from_url(url))

        assert [(r.outcome, r.accepted_by) for r in results] == [(Outcome.ACCEPTED, "sink.test")]
        assert sink.logins == ["ann"]
        [received] = await sink.wait_for_messages(1)
        assert received.rcpt_tos == ("bob@x.test",)


async def test_a_wrong_password_is_the_servers_auth_reply_without_the_password(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = tls_contexts
    sender = EmailSender(timeout=5, local_hostname="beacon.test", tls_context=client_tls)
    async with SmtpSink(tls_context=server_tls, credentials=("ann", "s3cret")) as sink:
        url = f"smtp+starttls://ann:wrong-pw@127.0.0.1:{sink.port}"

        results = await sender.send(make_email("bob@x.test"), SmtpServer.from_url(url))

        [result] = results
        assert (result.outcome, result.code) == (Outcome.PERMANENT, "535")
        assert result.message.startswith("535 5.7.8 ")
        assert "wrong-pw" not in repr(result)
        assert sink.rcpt_attempts == []


async def test_an_untrusted_certificate_at_starttls_is_a_tls_error(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], sender: EmailSender
) -> None:
    server_tls, _ = tls_contexts
    async with SmtpSink(tls_context=server_tls) as sink:
        url = f"smtp+starttls://127.0.0.1:{sink.port}"

        results = await sender.send(make_email("bob@x.test"), SmtpServer.from_url(url))

        assert [(r.outcome, r.code) for r in results] == [(Outcome.TRANSIENT, "TLS_ERROR")]
        assert "CERTIFICATE_VERIFY_FAILED" in results[0].message
        assert sink.rcpt_attempts == []
        # The client hung up: the server sees its handshake fail too.
        async with asyncio.timeout(5):
            await sink.wait_until_idle()


async def test_implicit_tls_delivers_over_smtps(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = tls_contexts
    sender = EmailSender(timeout=5, local_hostname="beacon.test", tls_context=client_tls)
    async with SmtpSink(tls_context=server_tls, implicit_tls=True) as sink:
        url = f"smtps://127.0.0.1:{sink.port}"

        results = await sender.send(make_email("bob@x.test"), SmtpServer.from_url(url))

        assert [r.outcome for r in results] == [Outcome.ACCEPTED]
        assert len(await sink.wait_for_messages(1)) == 1
