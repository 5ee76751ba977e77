"""Who is notified, on which address, and which deliveries share one message."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Protocol

from common.domain import Channel, PersonKind, Plan, TrackingConsent


class TrackingAccount(Protocol):
    """What the rules read of an account."""

    @property
    def plan(self) -> str: ...
    @property
    def open_tracking(self) -> bool: ...
    @property
    def require_tracking_consent(self) -> bool: ...
    @property
    def show_all_recipients(self) -> bool: ...


class Addressee(Protocol):
    """What the rules read of a person."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def kind(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def telegram_chat_id(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def disabled_channels(self) -> Sequence[str] | None: ...
    @property
    def tracking_consent(self) -> str: ...


def may_track(account: TrackingAccount, addressees: Sequence[Addressee]) -> bool:
    """Whether an email to these people carries an open-tracking pixel: the plan tracks,
    the account has the pixel on, and every addressee may be tracked (one pixel serves
    a shared email, so one refusal takes it out for all)."""
    if not (Plan(account.plan).tracks_delivery and account.open_tracking):
        return False
    for person in addressees:
        consent = TrackingConsent(person.tracking_consent)
        if consent is TrackingConsent.DENIED:
            return False
        if account.require_tracking_consent and consent is not TrackingConsent.GRANTED:
            return False
    return True


def addresses_of(person: Addressee, configured: frozenset[Channel]) -> dict[Channel, str]:
    """Where a person can be reached: each channel they have an address for, that the
    account can send on, and that they have not switched off. In-app notifications are
    for employees, who sign in."""
    disabled = set(person.disabled_channels or ())
    candidates: dict[Channel, str | None] = {
        Channel.EMAIL: person.email,
        Channel.TELEGRAM: person.telegram_chat_id,
        Channel.WHATSAPP: person.phone,
        Channel.SMS: person.phone,
        Channel.WEBHOOK: person.webhook_url,
        Channel.IN_APP: "in-app" if person.kind == PersonKind.EMPLOYEE.value else None,
    }
    return {
        channel: address
        for channel, address in candidates.items()
        if address and channel in configured and channel.value not in disabled
    }


@dataclass(frozen=True)
class Route:
    """One delivery to make: a recipient on a channel, at an address; `position` keeps
    the order recipients were given in."""

    position: int
    person: Addressee
    channel: Channel
    address: str


@dataclass(frozen=True)
class PlannedMessage:
    """One message to send: its deliveries, and whether it carries a tracking pixel."""

    channel: Channel
    routes: list[Route]
    pixel_id: str | None


def plan_messages(
    account: TrackingAccount, recipients: Sequence[Addressee], configured: frozenset[Channel]
) -> list[PlannedMessage]:
    """One delivery per recipient and channel they can be reached on (`addresses_of`).

    Each delivery is its own message, except email with `show_all_recipients`: then
    the email deliveries share one message (one email, every addressee in To:, one
    pixel)."""
    routes = [
        Route(position, person, channel, address)
        for position, (person, channel, address) in enumerate(
            (person, channel, address)
            for person in recipients
            for channel, address in addresses_of(person, configured).items()
        )
    ]
    emails = [route for route in routes if route.channel is Channel.EMAIL]
    groups = (
        [emails, *([route] for route in routes if route.channel is not Channel.EMAIL)]
        if account.show_all_recipients and emails
        else [[route] for route in routes]
    )
    return [
        PlannedMessage(
            channel=group[0].channel,
            routes=group,
            # Only email carries a pixel; messengers report reads themselves.
            pixel_id=secrets.token_hex(16)
            if group[0].channel is Channel.EMAIL
            and may_track(account, [route.person for route in group])
            else None,
        )
        for group in groups
    ]


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def message_id_domain(mail_from: str) -> str:
    """The domain of our Message-IDs: the sender address's."""
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "beacon.localhost"
