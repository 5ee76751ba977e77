"""The SMTP listener at the VERP return path (BOUNCE_SMTP_PORT): mail servers deliver
bounces, auto-replies and complaints here. It takes mail only for return paths whose
VERP token carries our MAC, and then believes only that token (never a quoted
Message-ID) about which message a bounce concerns."""

from __future__ import annotations

import logging

from aiosmtpd.smtp import SMTP, Envelope, Session
from broadcaster import Broadcast

from broadcast import publish_changes
from channels.email.verp import message_key_of, verp_token
from db.engine import Database
from inbound.bounces import MAX_BOUNCE_BYTES, record_bounce
from inbound.smtp_listener import SmtpListener

log = logging.getLogger(__name__)


class _BounceHandler:
    def __init__(self, db: Database, broadcast: Broadcast, secret_key: bytes) -> None:
        self.db = db
        self.broadcast = broadcast
        self.secret_key = secret_key

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        # Only our return paths, each with a token we signed: this is not an open relay
        # or a general inbox, and a bounce must prove which message of ours it is about
        # (ADR 0016). A forged token is refused here, before any data is taken or kept.
        token = verp_token(address)
        if token is None or message_key_of(token, self.secret_key) is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            outcome = await record_bounce(
                self.db, self.secret_key, raw, source="smtp", envelope_to=envelope.rcpt_tos
            )
        except Exception:
            log.exception("could not record a bounce; asking the sender to retry")
            # A temporary failure: the sending server keeps the bounce and tries again.
            return "451 4.3.0 Temporary failure, please try again later"
        await publish_changes(self.broadcast, outcome.changes)
        return f"250 2.0.0 Ok: {outcome.report.kind.value} recorded"


class BounceListener(SmtpListener):
    def __init__(
        self, db: Database, broadcast: Broadcast, secret_key: bytes, host: str, port: int
    ) -> None:
        super().__init__(
            _BounceHandler(db, broadcast, secret_key),
            host,
            port,
            hostname="bounces.beacon",
            data_size_limit=MAX_BOUNCE_BYTES,
        )
