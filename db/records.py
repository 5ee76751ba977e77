"""The rows db/ hands to other packages, typed: one frozen record per table, built
from a result row with `of`, so callers read checked attributes instead of Row[Any]."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import Field, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from sqlalchemy.engine import Row


class _Record:
    __slots__ = ()
    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> Self:
        """The record of a row that selected (at least) the record's columns."""
        mapping = row._mapping
        values: dict[str, Any] = {field.name: mapping[field.name] for field in fields(cls)}
        return cls(**values)

    @classmethod
    def of_all(cls, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[Self]:
        return [cls.of(row) for row in rows]


@dataclass(frozen=True, slots=True)
class AccountRecord(_Record):
    id: uuid.UUID
    name: str
    plan: str
    open_tracking: bool
    show_all_recipients: bool
    smtp_relay: str | None
    require_tracking_consent: bool
    count_machine_opens: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PersonRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    name: str
    email: str | None
    telegram_chat_id: str | None
    phone: str | None
    webhook_url: str | None
    disabled_channels: list[str] | None
    tracking_consent: str
    created_at: dt.datetime
    role: str | None  # OWNER, ADMIN or MEMBER (domain/roles.py); None for a contact
    erased_at: dt.datetime | None  # set when deletePerson erased them (db/erasure.py)


@dataclass(frozen=True, slots=True)
class TaskRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    title: str
    created_by: uuid.UUID | None
    created_at: dt.datetime
    closed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class CommentRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    task_id: uuid.UUID
    author_id: uuid.UUID | None
    body: str
    is_system: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ScenarioRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    trigger: str
    keyword: str | None
    action: str
    person_id: uuid.UUID | None
    template: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SuppressionRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    channel: str
    address: str
    reason: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class BounceRecord(_Record):
    """A bounce as the API lists it: everything but the raw message."""

    id: uuid.UUID
    account_id: uuid.UUID | None
    message_id: uuid.UUID | None
    delivery_id: uuid.UUID | None
    received_at: dt.datetime
    source: str
    kind: str
    parsed: bool
    summary: str


@dataclass(frozen=True, slots=True)
class NotificationRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    task_id: uuid.UUID | None  # None for an invitation's email
    comment_id: uuid.UUID | None
    kind: str
    message_text: str | None
    created_at: dt.datetime
    invitation_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class MessageRecord(_Record):
    id: uuid.UUID
    account_id: uuid.UUID
    notification_id: uuid.UUID
    channel: str
    header_message_id: str
    pixel_id: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StatusCount(_Record):
    """How many of a task's deliveries are in one state, for its own notification
    (`is_system` None) or its comments' (system ones or not); `held` of them held back
    by the rate limit, the first until `held_until`."""

    task_id: uuid.UUID
    is_system: bool | None
    state: str
    deliveries: int
    held: int
    held_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryEventRecord(_Record):
    """A delivery's state change or other event (delivery_events), for its history."""

    id: int
    delivery_id: uuid.UUID
    type: str
    at: dt.datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class InAppNotificationRecord(_Record):
    """A person's in-app notification as db/notifications.py pages it: the IN_APP
    delivery (`id`, `state`, `read_at`) with its notification's kind, time and text, and
    the task and comment it is about."""

    id: uuid.UUID
    state: str
    read_at: dt.datetime | None
    created_at: dt.datetime
    kind: str
    message_text: str | None
    task_id: uuid.UUID
    task_title: str
    comment_id: uuid.UUID | None
    comment_body: str | None


@dataclass(frozen=True, slots=True)
class ApiTokenRecord(_Record):
    """An API token: every column but its hash, which never leaves db/api_tokens.py."""

    id: uuid.UUID
    account_id: uuid.UUID
    person_id: uuid.UUID
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class InvitationRecord(_Record):
    """An invitation: every column but its secret's hash."""

    id: uuid.UUID
    account_id: uuid.UUID
    person_id: uuid.UUID
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class WebhookEndpointRecord(_Record):
    """A webhook endpoint, its secrets included: the worker signs with them (the API
    shows a secret only when it is made)."""

    id: uuid.UUID
    account_id: uuid.UUID
    url: str
    event_types: list[str]
    channels: list[str]  # [] = every channel
    secret: str
    previous_secret: str | None
    previous_secret_until: dt.datetime | None
    disabled_at: dt.datetime | None
    disabled_reason: str | None
    failing_since: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class WebhookEventRecord(_Record):
    """A status-webhook event with its delivery's fixed facts, which are None once the
    delivery is purged (the event outlives it)."""

    id: int
    endpoint_id: uuid.UUID
    delivery_id: uuid.UUID
    type: str
    old_state: str | None
    new_state: str
    error_code: str | None
    error_message: str | None
    read_confidence: str | None
    occurred_at: dt.datetime
    status: str  # PENDING, DELIVERED or FAILED
    attempts: int
    finished_at: dt.datetime | None
    recipient_id: uuid.UUID | None
    channel: str | None
    address: str | None
    task_id: uuid.UUID | None
    comment_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class WebhookAttemptRecord(_Record):
    """One attempt to send an event, with the event's type and delivery."""

    id: int
    endpoint_id: uuid.UUID
    event_id: int
    at: dt.datetime
    status_code: int | None
    latency_ms: float
    response: str | None  # the first KiB of the answer
    error: str | None
    succeeded: bool
    type: str
    delivery_id: uuid.UUID


class LoggedEvent(Protocol):
    """An event of db/event_log.py's log: which delivery changed. A Protocol over the
    result rows, as DeliveryRow is: the live feed reads every event of every account."""

    @property
    def id(self) -> int: ...
    @property
    def delivery_id(self) -> uuid.UUID: ...


class AccountLoggedEvent(LoggedEvent, Protocol):
    """A logged event with its delivery's account (the live feed sorts by account)."""

    @property
    def account_id(self) -> uuid.UUID: ...


class DeliveryRow(Protocol):
    """A delivery as db/deliveries.py and db/event_log.py select it: its columns, and
    the task, comment and time of its notification. A Protocol rather than a record
    while the live feed (resolvers/live*.py) still passes result rows through."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def notification_id(self) -> uuid.UUID: ...
    @property
    def message_id(self) -> uuid.UUID: ...
    @property
    def recipient_id(self) -> uuid.UUID: ...
    @property
    def position(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def queued_at(self) -> dt.datetime: ...
    @property
    def sent_at(self) -> dt.datetime | None: ...
    @property
    def failed_at(self) -> dt.datetime | None: ...
    @property
    def read_at(self) -> dt.datetime | None: ...
    @property
    def accepted_by(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def error_permanent(self) -> bool | None: ...
    @property
    def open_count(self) -> int: ...
    @property
    def provider_message_id(self) -> str | None: ...
    @property
    def delivered_at(self) -> dt.datetime | None: ...
    @property
    def read_confidence(self) -> str | None: ...
    @property
    def held_until(self) -> dt.datetime | None: ...
    @property
    def task_id(self) -> uuid.UUID | None: ...  # None for an invitation's email
    @property
    def comment_id(self) -> uuid.UUID | None: ...
    @property
    def notified_at(self) -> dt.datetime: ...


class TaskDeliveryRow(DeliveryRow, Protocol):
    """A delivery behind a task's overall icon, with whether its comment is a system
    one (null for the task's own notification)."""

    @property
    def is_system(self) -> bool | None: ...
