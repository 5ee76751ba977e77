"""The email channel's sending side: SMTP relay settings (URL, security, login), a pool of
open connections per relay, and one result per recipient from the server's replies."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import parse_address

from channels.addresses import BlockedAddress, public_address
from channels.base import Outcome, RecipientResult
from channels.email.mime import PLAIN_ADDRESS, OutgoingEmail, render_mime
from common.text import CONTROL_CHARACTERS

log = logging.getLogger(__name__)


def classify_smtp_reply(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.ACCEPTED
    if 500 <= code < 600:
        return Outcome.PERMANENT
    # 4xx, and anything a server should not have said, may work on a later attempt.
    return Outcome.TRANSIENT


# RFC 3463 statuses that say the recipient's address itself is dead: bad mailbox (5.1.1),
# bad system (5.1.2), bad syntax (5.1.3), moved without forwarding (5.1.6), null MX
# (5.1.10, RFC 7505), mailbox disabled (5.2.1). Not 5.1.7/5.1.8, which are about our
# sender; not 5.1.0 ("other"), which servers also use for a refused sender; not 5.7.x,
# a policy refusal that may well change.
DEAD_MAILBOX_STATUSES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"})
# The enhanced status at the start of a reply's text (RFC 2034), e.g. "5.1.1 <bob@…>: …".
_ENHANCED_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# Without an enhanced status, only words that say the mailbox does not exist count: a bare
# 550 is also what servers answer for spam and policy refusals.
_NO_SUCH_MAILBOX = re.compile(
    r"\b(?:user|recipient|mailbox|address|account)\s+(?:is\s+)?"
    r"(?:unknown|not\s+found|does\s*n[o']?t\s+exist|disabled|deactivated)\b"
    r"|\bunknown\s+(?:user|recipient|mailbox|address)\b"
    r"|\bno\s+such\s+(?:user|recipient|mailbox|address|account)\b",
    re.IGNORECASE,
)


def rejects_mailbox(code: int, text: str) -> bool:
    """True when a 5xx reply to RCPT TO says the recipient's mailbox does not exist or is
    disabled (a synchronous hard bounce), as opposed to a refusal for policy or content.

    The enhanced status code decides where there is one; without one, a 5xx counts only
    when its text says so ("User unknown", "No such user") and does not speak of the
    sender."""
    if not 500 <= code < 600:
        return False
    enhanced = _ENHANCED_STATUS.match(text.lstrip())
    if enhanced is not None:
        status = ".".join(str(int(part)) for part in enhanced.groups())
        return status in DEAD_MAILBOX_STATUSES
    return _NO_SUCH_MAILBOX.search(text) is not None and "sender" not in text.lower()


# Never part of an address, and a NUL or a line break makes aiosmtplib raise.
_CONTROL = CONTROL_CHARACTERS


class Security(enum.StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": (Security.NONE, 25),
    "smtp+starttls": (Security.STARTTLS, 587),
    "smtps": (Security.TLS, 465),
}

# Longer than any real relay URL; also what the accounts table keeps.
MAX_URL_LENGTH = 500
# What `masked_url` shows in place of the password.
MASK = "********"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: Security = Security.NONE
    username: str | None = None
    # Kept out of repr (and so out of str, logs and tracebacks that show the object).
    password: str | None = field(default=None, repr=False)
    # A tenant's server (the account's relay): connect only to a public address, the one
    # that was checked (channels/addresses.py), and never echo what a non-SMTP service says.
    pin_public: bool = False

    @classmethod
    def from_url(cls, url: str, *, pin_public: bool = False) -> SmtpServer:
        # Messages never quote the URL itself: it may carry the password.
        if len(url) > MAX_URL_LENGTH:
            raise ValueError(f"SMTP URL is longer than {MAX_URL_LENGTH} characters")
        url = url.strip()
        if _CONTROL.search(url) or any(char.isspace() for char in url):
            raise ValueError("SMTP URL must not contain spaces or control characters")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"unsupported SMTP URL scheme {scheme[:20]!r}: "
                "use smtp://, smtp+starttls:// or smtps://"
            )
        security, default_port = _SCHEMES[scheme]
        if not parts.hostname:
            raise ValueError("SMTP URL has no host, expected e.g. smtp://mail.example.com:25")
        try:
            parts.hostname.encode("idna")  # what the resolver will be asked
        except UnicodeError:
            raise ValueError("SMTP URL has an invalid host name") from None
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("SMTP URL must not have a path, query or fragment")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP URL has an invalid port (expected 1-65535)") from None
        if port == 0:
            raise ValueError("SMTP URL has an invalid port (expected 1-65535)")
        return cls(
            host=parts.hostname,
            port=port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            pin_public=pin_public,
        )

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username is not None else ""
        return f"{self._scheme}://{user}{self.display}"

    @property
    def _scheme(self) -> str:
        return next(name for name, (sec, _) in _SCHEMES.items() if sec is self.security)

    @property
    def masked_url(self) -> str:
        """The URL as the API shows it: the password, a write-only secret, masked."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="")
            if self.password is not None:
                user += f":{MASK}"
            user += "@"
        return f"{self._scheme}://{user}{self.display}"

    def same_place(self, other: SmtpServer) -> bool:
        """The same server and login, whatever the password."""
        return (self.security, self.host, self.port, self.username) == (
            other.security,
            other.host,
            other.port,
            other.username,
        )


def masked_relay(url: str | None) -> str | None:
    """An account's relay URL as the API shows it: the password masked."""
    if url is None:
        return None
    try:
        return SmtpServer.from_url(url).masked_url
    except ValueError:
        return "(not a valid SMTP URL)"


def _reply_text(code: int, text: str) -> str:
    """Rebuild the server's reply as it was on the wire (aiosmtplib strips the codes)."""
    lines = text.split("\n") or [""]
    last = len(lines) - 1
    return "\n".join(
        f"{code}{' ' if i == last else '-'}{line}".rstrip() for i, line in enumerate(lines)
    )


# RFC 5321 4.3.1: the greeting starts with the server's domain or address literal.
_GREETING_HOST = re.compile(r"^(\[[^\]\s]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)$")


def _announced_host(greeting: aiosmtplib.SMTPResponse) -> str | None:
    words = greeting.message.split("\n", 1)[0].split()
    if words and _GREETING_HOST.match(words[0]):
        return words[0]
    return None


def _sendable(address: str) -> bool:
    if _CONTROL.search(address):
        return False
    if PLAIN_ADDRESS.match(address):
        return True  # what parse_address would accept unchanged, without its parser
    try:
        parse_address(address)
    except ValueError:
        return False
    return bool(address.strip())


def _invalid_recipient(address: str) -> RecipientResult:
    # repr shows a control character as an escape; long input is cut.
    shown = repr(address) if len(address) <= 200 else repr(address[:200]) + "…"
    why = ": it contains a control character" if _CONTROL.search(address) else ""
    return RecipientResult(
        address, Outcome.PERMANENT, "INVALID_ADDRESS", f"invalid recipient address {shown}{why}"
    )


def _all(
    recipients: Sequence[str], outcome: Outcome, code: str, message: str
) -> list[RecipientResult]:
    return [RecipientResult(r, outcome, code, message) for r in recipients]


class _Phase(enum.Enum):
    CONNECT = "connect"
    TLS = "tls"
    AUTH = "auth"
    SEND = "send"


class EmailSender:
    def __init__(
        self,
        timeout: float,
        *,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        pool_size: int = 4,
    ) -> None:
        """`timeout` applies to each network step (connect, each command, DATA).
        `tls_context` replaces the default (system CAs, host name checked), e.g. to
        trust a private CA."""
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._tls_context = tls_context
        self._pool = _Pool(pool_size)

    async def send(self, email: OutgoingEmail, server: SmtpServer) -> list[RecipientResult]:
        """One result per envelope recipient, in order; SMTP and network failures never raise."""
        if not email.recipients:
            return []
        if not _sendable(email.envelope_from):
            return _all(
                email.recipients,
                Outcome.PERMANENT,
                "INVALID_ADDRESS",
                f"invalid envelope sender {email.envelope_from!r}",
            )
        # An address that cannot go on a RCPT line fails alone instead of sinking the batch
        # (aiosmtplib validates the whole list up front and raises ValueError).
        valid = [r for r in email.recipients if _sendable(r)]
        by_address: dict[str, RecipientResult] = {}
        if valid:
            for result in await self._transact(email, valid, server):
                by_address[result.address] = result
                if result.outcome is not Outcome.ACCEPTED:
                    # A recipient's address is personal data: only at debug level.
                    log.info(
                        "email %s via %s: a recipient %s %s",
                        email.message_id,
                        server.display,
                        result.outcome,
                        result.code,
                    )
                    log.debug("email %s: %s %s", email.message_id, result.address, result.outcome)
        return [by_address.get(r) or _invalid_recipient(r) for r in email.recipients]

    async def _local_name(self) -> str:
        # aiosmtplib would look this up (socket.getfqdn, possibly slow DNS) on every
        # connection; once per sender is enough.
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    async def _transact(
        self, email: OutgoingEmail, recipients: list[str], server: SmtpServer
    ) -> list[RecipientResult]:
        async with self._pool.slot(server):
            connection = self._pool.take_idle(server)
            if connection is not None:
                try:
                    return await self._deliver(connection, email, recipients, server)
                except _StaleConnection:
                    # The server dropped the idle connection before MAIL FROM was
                    # answered: nothing was sent, so a fresh connection is safe.
                    pass
            try:
                client = await self._client(server)
            except BlockedAddress as blocked:
                log.info("refused the relay %s: it resolves to %s", server.display, blocked.address)
                return _all(
                    recipients,
                    Outcome.PERMANENT,
                    "BLOCKED_ADDRESS",
                    f"{blocked}: the account's SMTP relay must be a public server",
                )
            except (OSError, TimeoutError) as exc:
                return _failure(recipients, exc, _Phase.CONNECT, server)
            try:
                connection = await self._open(client, server)
            except _Refusal as refusal:
                return _all(recipients, Outcome.TRANSIENT, refusal.code, refusal.message)
            except _OpenFailed as failed:
                client.close()
                if client.sock is not None:
                    client.sock.close()  # ours (pinned); aiosmtplib may not have taken it
                return _failure(recipients, failed.error, failed.phase, server)
            try:
                return await self._deliver(connection, email, recipients, server)
            except _StaleConnection as stale:
                return _failure(recipients, stale.error, _Phase.SEND, server)

    async def _client(self, server: SmtpServer) -> aiosmtplib.SMTP:
        """A client for `server`; for a pinned server, on a socket already connected to
        the address that was checked. aiosmtplib still knows the server by its name, so
        TLS (implicit or STARTTLS) sends it as SNI and checks the certificate against it."""
        sock = await self._pinned_socket(server) if server.pin_public else None
        return aiosmtplib.SMTP(
            hostname=server.host,
            port=None if sock is not None else server.port,
            sock=sock,
            use_tls=server.security is Security.TLS,
            # STARTTLS is done explicitly so that "not offered" is reported as such;
            # smtp:// never upgrades (no opportunistic TLS).
            start_tls=False,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
            tls_context=self._tls_context,
        )

    async def _pinned_socket(self, server: SmtpServer) -> socket.socket:
        """A TCP connection to the public address `server.host` resolves to (raises
        BlockedAddress for a non-public one)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            address = await public_address(server.host, server.port)
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (address, server.port))
            except BaseException:
                sock.close()
                raise
        return sock

    async def _open(self, client: aiosmtplib.SMTP, server: SmtpServer) -> _Connection:
        """Connect, and STARTTLS and log in where the URL asks for it."""
        if self._local_hostname is None:
            client.local_hostname = await self._local_name()
        phase = _Phase.CONNECT
        try:
            greeting = await client.connect()
            if server.security is Security.STARTTLS:
                phase = _Phase.TLS
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    await _quit_quietly(client)
                    client.close()
                    raise _Refusal("TLS_ERROR", f"{server.display} does not offer STARTTLS")
                await client.starttls()
            if server.username is not None:
                phase = _Phase.AUTH
                await client.login(server.username, server.password or "")
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _OpenFailed(phase, exc) from exc
        return _Connection(client, _announced_host(greeting) or server.host)

    async def _deliver(
        self,
        connection: _Connection,
        email: OutgoingEmail,
        recipients: list[str],
        server: SmtpServer,
    ) -> list[RecipientResult]:
        """One transaction on an open connection; the connection goes back to the pool
        when the server left it in a clean state."""
        client = connection.client
        try:
            refused, data_reply = await _send_bytes(client, email, recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = {err.recipient: err for err in exc.recipients}
            # aiosmtplib sent RSET: the connection is clean and can serve the next one.
            self._pool.give_back(server, connection)
            return [_refused(r, codes[r].code, codes[r].message, at_rcpt=True) for r in recipients]
        except aiosmtplib.SMTPServerDisconnected as exc:
            client.close()
            if connection.used and not client.is_connected:
                raise _StaleConnection(exc) from exc
            return _failure(recipients, exc, _Phase.SEND, server)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _quit_quietly(client)
            client.close()
            return _failure(recipients, exc, _Phase.SEND, server)
        connection.used += 1
        self._pool.give_back(server, connection)
        return [
            _refused(r, refused[r].code, refused[r].message, at_rcpt=True)
            if r in refused
            else RecipientResult(
                r, Outcome.ACCEPTED, "250", _reply_text(250, data_reply), connection.accepted_by
            )
            for r in recipients
        ]

    async def aclose(self) -> None:
        """QUIT every idle connection (on shutdown)."""
        await self._pool.close_all()


async def _send_bytes(
    client: aiosmtplib.SMTP, email: OutgoingEmail, recipients: list[str]
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """`SMTP.send_message` for a message rendered here: the same MAIL options, without
    the email package's generator."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()
    options: list[str] = []
    utf8 = not (email.envelope_from.isascii() and all(r.isascii() for r in recipients))
    if utf8:
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                "An address containing non-ASCII characters was provided, but "
                "SMTPUTF8 is not supported by this server"
            )
        options.append("SMTPUTF8")
    if client.supports_extension("8BITMIME"):
        options.append("BODY=8BITMIME")
    return await client.sendmail(
        email.envelope_from, recipients, render_mime(email, utf8=utf8), mail_options=options
    )


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _OpenFailed(Exception):
    def __init__(self, phase: _Phase, error: Exception) -> None:
        super().__init__(str(error))
        self.phase = phase
        self.error = error


class _StaleConnection(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    accepted_by: str
    used: int = 0
    idle_since: float = 0.0


class _Pool:
    """Open SMTP connections kept per server, at most `size` per server at a time.

    Reusing a connection saves the TCP, greeting, EHLO, TLS and AUTH round trips on
    every message; the bound keeps us from opening more connections than a server
    allows. A connection idle for longer than `idle_seconds` (servers drop idle
    clients after a few minutes), or used for `max_messages`, is closed instead.
    """

    def __init__(self, size: int, idle_seconds: float = 30, max_messages: int = 100) -> None:
        self._size = size
        self._idle_seconds = idle_seconds
        self._max_messages = max_messages
        self._idle: dict[SmtpServer, list[_Connection]] = {}
        self._slots: dict[SmtpServer, asyncio.Semaphore] = {}

    def slot(self, server: SmtpServer) -> asyncio.Semaphore:
        return self._slots.setdefault(server, asyncio.Semaphore(self._size))

    def take_idle(self, server: SmtpServer) -> _Connection | None:
        idle = self._idle.get(server, [])
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.client.is_connected and now - connection.idle_since < self._idle_seconds:
                return connection
            connection.client.close()
        return None

    def give_back(self, server: SmtpServer, connection: _Connection) -> None:
        if not connection.client.is_connected or connection.used >= self._max_messages:
            asyncio.get_running_loop().create_task(_quit_and_close(connection.client))
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(server, []).append(connection)

    async def close_all(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await _quit_and_close(connection.client)


async def _quit_and_close(client: aiosmtplib.SMTP) -> None:
    await _quit_quietly(client)
    client.close()


def _refused(address: str, code: int, text: str, *, at_rcpt: bool = False) -> RecipientResult:
    if code < 0:
        # aiosmtplib's code for a reply it could not parse; `text` describes it.
        return RecipientResult(address, Outcome.TRANSIENT, "INVALID_RESPONSE", text)
    return RecipientResult(
        address,
        classify_smtp_reply(code),
        str(code),
        _reply_text(code, text),
        # Only a reply to RCPT TO is about the recipient's address; a 5.1.1 to MAIL FROM
        # is about our sender.
        dead_address=at_rcpt and rejects_mailbox(code, text),
    )


def _failure(
    recipients: list[str], exc: Exception, phase: _Phase, server: SmtpServer
) -> list[RecipientResult]:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code < 0 and server.pin_public:
            # Not SMTP at all (an SSH or database banner, say): a tenant's relay URL must
            # not become a way to read what other services announce.
            log.debug("%s answered a non-SMTP reply: %r", server.display, exc.message[:200])
            return _all(
                recipients,
                Outcome.TRANSIENT,
                "INVALID_RESPONSE",
                f"{server.display} did not answer like an SMTP server",
            )
        # A reply to EHLO, AUTH, MAIL FROM or DATA (or a 4xx/5xx greeting) concerns
        # every recipient of this transaction.
        text = _redact(exc.message, server.password)
        return [_refused(r, exc.code, text) for r in recipients]
    code, description = _network_failure(exc, phase)
    message = _redact(f"{server.display}: {description}", server.password)
    return _all(recipients, Outcome.TRANSIENT, code, message)


def _network_failure(exc: Exception, phase: _Phase) -> tuple[str, str]:
    cause = exc.__cause__
    description = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):  # includes aiosmtplib's timeout errors
        return "TIMEOUT", description
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        return "TLS_ERROR", str(cause) if isinstance(cause, ssl.SSLError) else description
    if isinstance(exc, ConnectionRefusedError) or isinstance(cause, ConnectionRefusedError):
        return "CONNECTION_REFUSED", "connection refused"
    if isinstance(exc, socket.gaierror) or isinstance(cause, socket.gaierror):
        return "HOST_NOT_FOUND", f"host name lookup failed: {cause or exc}"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected) or isinstance(
        cause, aiosmtplib.SMTPServerDisconnected
    ):
        return "DISCONNECTED", description
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return "CONNECTION_FAILED", description
    if isinstance(exc, OSError):
        return "DISCONNECTED", description
    # aiosmtplib raises plain SMTPException (no reply code) for things it refuses to do.
    symbolic = {_Phase.TLS: "TLS_ERROR", _Phase.AUTH: "AUTH_ERROR"}.get(phase, "SMTP_ERROR")
    return symbolic, description


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text


async def _quit_quietly(client: aiosmtplib.SMTP) -> None:
    # The outcome is already decided; a failed QUIT must not change it.
    if client.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
