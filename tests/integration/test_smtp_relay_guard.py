"""An account's own SMTP relay is a tenant's choice of host: the sender connects to it only
at a public address, the one it checked, and keeps TLS checking the relay's name
(channels/email/sender.py with channels/addresses.py). Against real SMTP servers on loopback,
with host-name answers faked where a test needs a name."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from channels import addresses
from channels.base import Outcome
from channels.email.sender import EmailSender, SmtpServer
from tests.integration.test_email_sender import make_email
from tests.support.services import require_service
from tests.support.smtp_sink import SmtpSink

RELAY_NAME = "relay.example.test"


def fake_dns(answers: Mapping[str, list[str]], asked: list[str]) -> Callable[..., Any]:
    """A loop.getaddrinfo that knows only `answers`, and notes every name it is asked."""

    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[Any, ...]]:
        asked.append(host)
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


@pytest.fixture
async def sender() -> AsyncIterator[EmailSender]:
    sender = EmailSender(timeout=5, local_hostname="beacon.test")
    yield sender
    await sender.aclose()


async def test_a_relay_named_for_a_loopback_address_is_refused_before_any_connection(
    sender: EmailSender,
) -> None:
    async with SmtpSink(hostname="internal.banner.test") as internal:
        for url in (
            f"smtp://localhost:{internal.port}",
            f"smtp://127.0.0.1:{internal.port}",
            f"smtp://2130706433:{internal.port}",
            f"smtps://[::ffff:127.0.0.1]:{internal.port}",
        ):
            server = SmtpServer.from_url(url, pin_public=True)

            (result,) = await sender.send(make_email("bob@x.test"), server)

            assert (result.outcome, result.code) == (Outcome.PERMANENT, "BLOCKED_ADDRESS"), url
            assert "non-public address" in result.message
            assert "must be a public server" in result.message
            assert "banner" not in result.message
        assert internal.connections_opened == 0


async def test_the_system_relay_is_not_pinned(sender: EmailSender) -> None:
    async with SmtpSink() as system:
        server = SmtpServer.from_url(f"smtp://localhost:{system.port}")

        (result,) = await sender.send(make_email("bob@x.test"), server)

    assert result.outcome is Outcome.ACCEPTED


async def test_a_relay_goes_to_the_address_that_was_checked_without_a_second_lookup(
    sender: EmailSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the name resolves (in this test only) to the relay's address, taken as public
    asked: list[str] = []
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", fake_dns({RELAY_NAME: ["127.0.0.1"]}, asked)
    )
    monkeypatch.setattr(addresses, "is_blocked", lambda address: False)
    async with SmtpSink(hostname="relay.customer.test") as relay:
        server = SmtpServer.from_url(f"smtp://{RELAY_NAME}:{relay.port}", pin_public=True)

        # when
        (result,) = await sender.send(make_email("bob@x.test"), server)

        # then: delivered, after one lookup (the connection did not resolve the name again)
        assert (result.outcome, result.accepted_by) == (Outcome.ACCEPTED, "relay.customer.test")
        assert len(await relay.wait_for_messages(1)) == 1
    assert asked == [RELAY_NAME]


async def test_a_name_with_one_private_answer_among_public_ones_is_refused(
    sender: EmailSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(
        asyncio.get_running_loop(),
        "getaddrinfo",
        fake_dns({RELAY_NAME: ["93.184.215.14", "10.0.0.7"]}, asked),
    )
    server = SmtpServer.from_url(f"smtp://{RELAY_NAME}:25", pin_public=True)

    (result,) = await sender.send(make_email("bob@x.test"), server)

    assert (result.outcome, result.code) == (Outcome.PERMANENT, "BLOCKED_ADDRESS")
    # (what the server's DNS says about a name is not for the tenant to read)
    assert result.message == (
        f"{RELAY_NAME} resolves to a non-public address: "
        "the account's SMTP relay must be a public server"
    )


async def test_a_relay_whose_name_does_not_resolve_is_worth_retrying(
    sender: EmailSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_dns({}, []))
    server = SmtpServer.from_url("smtp://gone.example.test:25", pin_public=True)

    (result,) = await sender.send(make_email("bob@x.test"), server)

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "HOST_NOT_FOUND")


@pytest.fixture(scope="module")
def named_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for a throwaway certificate valid for RELAY_NAME only."""
    openssl = shutil.which("openssl")
    if openssl is None:
        require_service("openssl", "it makes the test certificate")
    folder: Path = tmp_path_factory.mktemp("named-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # fixed arguments, no shell
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={RELAY_NAME}", "-addext", f"subjectAltName=DNS:{RELAY_NAME}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
async def test_tls_to_a_pinned_relay_checks_the_certificate_against_the_relays_name(
    named_tls: tuple[ssl.SSLContext, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    # given: a relay whose certificate names RELAY_NAME, reached by that name at a
    # checked address (127.0.0.1, taken as public here)
    server_tls, client_tls = named_tls
    monkeypatch.setattr(
        asyncio.get_running_loop(),
        "getaddrinfo",
        fake_dns({RELAY_NAME: ["127.0.0.1"], "127.0.0.1": ["127.0.0.1"]}, []),
    )
    monkeypatch.setattr(addresses, "is_blocked", lambda address: False)
    sender = EmailSender(timeout=5, local_hostname="beacon.test", tls_context=client_tls)
    implicit = scheme == "smtps"
    try:
        async with SmtpSink(tls_context=server_tls, implicit_tls=implicit) as relay:
            by_name = SmtpServer.from_url(f"{scheme}://{RELAY_NAME}:{relay.port}", pin_public=True)
            # the same server by its address: the certificate does not name it
            by_address = SmtpServer.from_url(f"{scheme}://127.0.0.1:{relay.port}", pin_public=True)

            # when
            (named,) = await sender.send(make_email("bob@x.test"), by_name)
            (unnamed,) = await sender.send(make_email("ann@x.test"), by_address)

            # then: TLS verified the name, and only the name
            assert named.outcome is Outcome.ACCEPTED, named
            assert (unnamed.outcome, unnamed.code) == (Outcome.TRANSIENT, "TLS_ERROR")
            (received,) = await relay.wait_for_messages(1)
            assert received.rcpt_tos == ("bob@x.test",)
    finally:
        await sender.aclose()


async def test_what_a_non_smtp_service_says_is_not_echoed_for_a_tenants_relay(
    sender: EmailSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a service that greets with a banner of its own (an SSH server, say)
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6 internal-build-42\r\n")
        await writer.drain()
        await reader.read(1024)
        writer.close()

    service = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = service.sockets[0].getsockname()[1]
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", fake_dns({RELAY_NAME: ["127.0.0.1"]}, [])
    )
    monkeypatch.setattr(addresses, "is_blocked", lambda address: False)
    try:
        # when
        server = SmtpServer.from_url(f"smtp://{RELAY_NAME}:{port}", pin_public=True)
        (result,) = await sender.send(make_email("bob@x.test"), server)
    finally:
        service.close()
        await service.wait_closed()

    # then
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "INVALID_RESPONSE")
    assert result.message == f"{RELAY_NAME}:{port} did not answer like an SMTP server"
