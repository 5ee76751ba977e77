"""A real SMTP server for tests, whose answers are chosen by the recipient's local part.

- local part contains "reject": 550 5.1.1 at RCPT TO (no such user: the address is
  suppressed)
- local part contains "deny": 550 5.7.1 at RCPT TO (a policy refusal: not suppressed)
- local part contains "defer": 451 4.7.1 at RCPT TO
- otherwise: 250
- a sender whose local part contains "reject": 550 5.7.1 at MAIL FROM
- `data_reply`, when set, is the answer to DATA (and the message is not kept)
- inside `holding()`, every transaction waits at MAIL FROM: what it carries stays QUEUED
  until the block ends (keep the block under the server's SMTP timeout)

Run alone for tests in another process: python -m tests.support.smtp_sink --port N
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from inbound.smtp_listener import SmtpListener


@dataclass(frozen=True)
class ReceivedMessage:
    envelope_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str | None:
        value = self.message.get("Message-ID")
        return None if value is None else str(value)


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].lower() if "@" in address else address.lower()


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        await self.sink.gate.wait()
        if "reject" in _local_part(address):
            return f"550 5.7.1 <{address}>: Sender address rejected: Access denied"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.sink.rcpt_attempts.append(address)
        local = _local_part(address)
        if "reject" in local:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if "deny" in local:
            return f"550 5.7.1 <{address}>: Recipient address rejected: Access denied"
        if "defer" in local:
            return f"451 4.7.1 <{address}>: Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.data_reply is not None:
            return self.sink.data_reply
        raw = envelope.original_content or b""
        received = ReceivedMessage(
            envelope_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=message_from_bytes(raw, _class=EmailMessage, policy=policy.default),
        )
        async with self.sink.arrived:
            self.sink.messages.append(received)
            self.sink.arrived.notify_all()
        return "250 2.0.0 Ok: queued"


class SmtpSink(SmtpListener):
    """`tls_context` offers STARTTLS (or, with `implicit_tls`, serves SMTPS); `credentials`
    makes AUTH required, offered only over TLS as a real submission server would."""

    def __init__(
        self,
        hostname: str = "sink.test",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if implicit_tls and credentials is not None:
            # aiosmtpd only counts STARTTLS as TLS for AUTH, and warns if told otherwise.
            raise ValueError("credentials need STARTTLS, not implicit TLS")
        options: dict[str, Any] = {}
        if tls_context is not None and not implicit_tls:
            options["tls_context"] = tls_context
        if credentials is not None:
            options.update(auth_required=True, authenticator=self._authenticate)
        super().__init__(
            _SinkHandler(self),
            host,
            port,
            hostname,
            implicit_tls=tls_context if implicit_tls else None,
            **options,
        )
        self.credentials = credentials
        self.logins: list[str] = []
        self.messages: list[ReceivedMessage] = []
        self.rcpt_attempts: list[str] = []
        self.data_reply: str | None = None
        self.arrived = asyncio.Condition()
        self.gate = asyncio.Event()
        self.gate.set()

    @property
    def url(self) -> str:
        """As SMTP_URL takes it."""
        return f"smtp://{self.host}:{self.port}"

    @asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Hold every transaction at MAIL FROM until the block ends."""
        self.gate.clear()
        try:
            yield
        finally:
            self.gate.set()

    # A timeout argument (not asyncio.timeout) keeps call sites short and the error specific.
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append(login)
        return AuthResult(success=(login, password) == self.credentials, handled=False)

    async def wait_for_messages(
        self,
        n: int,
        timeout: float = 10,
    ) -> list[ReceivedMessage]:
        """At least `n` messages (all received so far), or TimeoutError."""
        try:
            async with asyncio.timeout(timeout), self.arrived:
                await self.arrived.wait_for(lambda: len(self.messages) >= n)
        except TimeoutError:
            raise TimeoutError(
                f"expected {n} message(s) within {timeout}s, got {len(self.messages)}"
            ) from None
        return list(self.messages)


async def _serve(host: str, port: int, hostname: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SmtpSink(hostname=hostname, host=host, port=port) as sink:
        # The parent process waits for this line before it connects.
        sys.stdout.write(f"ready {sink.port}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--hostname", default="sink.test", help="name in the 220 greeting")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.hostname))


if __name__ == "__main__":
    main()
