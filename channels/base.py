"""What every channel shares: the notice it sends, the account settings it sends with,
the result it returns, and the provider reports it may receive later.

A channel module turns a `Notice` into requests to its provider and answers one
`RecipientResult` per recipient; it never raises for a provider's or the network's
failure, it describes it. Channels know nothing of the database or GraphQL.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Protocol

from common.domain import Channel


class Outcome(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    # Worth retrying: the same request may succeed later.
    TRANSIENT = "TRANSIENT"
    # Retrying cannot help: the delivery fails for good.
    PERMANENT = "PERMANENT"


@dataclass(frozen=True)
class RecipientResult:
    address: str
    outcome: Outcome
    # The provider's reply code ("250", "550", "403", "131026"), or a symbolic one when
    # there was no reply at all ("CONNECTION_REFUSED", "TIMEOUT", "NOT_CONFIGURED", ...).
    code: str
    # The provider's own words, or a readable description of the network error.
    message: str
    # For ACCEPTED: the server that took responsibility for the message.
    accepted_by: str | None = None
    # For ACCEPTED: the provider's id for the message (Telegram message id, WhatsApp
    # wamid, Twilio SID), which its later status reports name.
    provider_message_id: str | None = None
    # For TRANSIENT: how long the provider asked us to wait (HTTP 429 Retry-After,
    # Telegram's parameters.retry_after), in seconds.
    retry_after: float | None = None
    # For PERMANENT: the provider said the address itself is dead (an SMTP "550 5.1.1
    # user unknown" at RCPT TO, a disabled mailbox), not that this message was refused:
    # sending to it again cannot work, so the worker suppresses it.
    dead_address: bool = False


@dataclass(frozen=True)
class Notice:
    """One notification as a messenger channel sends it, to one recipient."""

    # Our id for the message: stable across retries, so providers and receivers that
    # support idempotency keys can recognise a duplicate.
    message_key: str
    address: str
    subject: str
    text: str
    # For webhooks: the structured event (task, comment, author).
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelCredentials:
    """An account's provider credentials. Secrets are kept out of repr (and so out of
    logs and tracebacks)."""

    telegram_bot_token: str | None = field(default=None, repr=False)
    whatsapp_phone_number_id: str | None = None
    whatsapp_access_token: str | None = field(default=None, repr=False)
    whatsapp_app_secret: str | None = field(default=None, repr=False)
    whatsapp_verify_token: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from_number: str | None = None
    webhook_signing_secret: str | None = field(default=None, repr=False)


class MessengerChannel(Protocol):
    """A channel that sends one notice to one address through a provider's API."""

    channel: Channel

    async def send(self, notice: Notice, credentials: ChannelCredentials) -> RecipientResult:
        """Never raises for provider or network failures: they become results."""
        ...

    async def aclose(self) -> None: ...


class ReportStatus(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True)
class ProviderReport:
    """A status report from a provider about a message it accepted earlier."""

    channel: Channel
    provider_message_id: str
    status: ReportStatus
    at: dt.datetime
    error_code: str | None = None
    error_message: str | None = None
