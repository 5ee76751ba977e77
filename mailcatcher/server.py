"""The built-in mail catcher: an SMTP server that keeps what it receives for /mailbox."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP, Envelope, Session

# The mail catcher receives what our own sender sends: an inbound SMTP server like the
# bounce listener, so it shares inbound's listener (mailcatcher -> inbound, never back).
from inbound.smtp_listener import SmtpListener
from mailcatcher.store import MailStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1025


class _CatchAll:
    """aiosmtpd handler: every recipient is accepted (aiosmtpd's default RCPT), every
    message is stored."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        stored = self.store.add(envelope.mail_from or "", envelope.rcpt_tos, raw)
        return f"250 2.0.0 Ok: queued as {stored.id}"


class MailCatcher(SmtpListener):
    """The embedded mode's SMTP server: stands in for a real relay on a developer's laptop."""

    def __init__(
        self,
        store: MailStore,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        hostname: str = "mailcatcher.localhost",
    ) -> None:
        super().__init__(_CatchAll(store), host, port, hostname)
        self.store = store
