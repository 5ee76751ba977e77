"""The schema as SQLAlchemy Core metadata. Migrations in db/migrations follow it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way in and out, on every backend.

    SQLite has no time zones: values are stored as naive UTC text, which sorts and
    compares correctly because every value is UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        utc: dt.datetime = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), primary_key=True)


def _parent(name: str, table: str, *, nullable: bool = False, index: bool = True) -> sa.Column[Any]:
    """A reference to the row this one belongs to: it goes when its parent goes."""
    return sa.Column(
        name,
        sa.Uuid(),
        sa.ForeignKey(f"{table}.id", ondelete="CASCADE"),
        nullable=nullable,
        index=index,
    )


def _account_fk(*, index: bool = True) -> sa.Column[Any]:
    return _parent("account_id", "accounts", index=index)


def _created_at() -> sa.Column[Any]:
    return sa.Column("created_at", UtcDateTime(), nullable=False)


accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("plan", sa.String(16), nullable=False),
    sa.Column("open_tracking", sa.Boolean(), nullable=False, default=True),
    sa.Column("show_all_recipients", sa.Boolean(), nullable=False, default=False),
    sa.Column("smtp_relay", sa.String(500), nullable=True),
    # Track only recipients whose consent is GRANTED (not just "not DENIED").
    sa.Column("require_tracking_consent", sa.Boolean(), nullable=False, server_default=sa.false()),
    # Let machine opens (privacy prefetch, scanners) set READ too.
    sa.Column("count_machine_opens", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created_at(),
)

people = sa.Table(
    "people",
    metadata,
    _id(),
    _account_fk(),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("telegram_chat_id", sa.String(64), nullable=True),
    sa.Column("phone", sa.String(32), nullable=True),
    sa.Column("webhook_url", sa.String(2000), nullable=True),
    # Channels the person switched off, e.g. ["SMS", "WHATSAPP"].
    sa.Column("disabled_channels", sa.JSON(), nullable=False, server_default="[]"),
    sa.Column("tracking_consent", sa.String(16), nullable=False, server_default="UNKNOWN"),
    _created_at(),
    # An employee's OWNER, ADMIN or MEMBER (domain/roles.py); null for a contact.
    sa.Column("role", sa.String(16), nullable=True),
    # Set when the person was erased: the row stays only as the placeholder recipient
    # of their past deliveries (db/erasure.py).
    sa.Column("erased_at", UtcDateTime(), nullable=True),
)

# One person per address and channel in an account, so that an address is never
# notified twice and two concurrent adds cannot both win (migration 0007, ADR 0017).
# Emails compare without case, as the suppression list compares them.
sa.Index(
    "uq_people_account_id_email", people.c.account_id, sa.func.lower(people.c.email), unique=True
)
sa.Index(
    "uq_people_account_id_telegram_chat_id",
    people.c.account_id,
    people.c.telegram_chat_id,
    unique=True,
)
sa.Index("uq_people_account_id_phone", people.c.account_id, people.c.phone, unique=True)
sa.Index("uq_people_account_id_webhook_url", people.c.account_id, people.c.webhook_url, unique=True)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    _account_fk(),
    _parent("person_id", "people"),
    # SHA-256 of the token: the token itself is shown once and never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    _created_at(),
    sa.Column("name", sa.String(200), nullable=False, server_default="first token"),
    # Written at most once a minute (db/api_tokens.py), not on every request.
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

# A sign-in link sent by email: single use, expiring; only the secret's hash is kept
# (the secret itself is an HMAC of the id: db/invitations.py).
invitations = sa.Table(
    "invitations",
    metadata,
    _id(),
    _account_fk(index=False),
    _parent("person_id", "people"),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    _created_at(),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    _id(),
    _account_fk(index=False),  # led by ix_tasks_account_id_created_at
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("created_by", sa.Uuid(), sa.ForeignKey("people.id"), nullable=True),
    _created_at(),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Index("ix_tasks_account_id_created_at", "account_id", "created_at", "id"),
)

task_subscribers = sa.Table(
    "task_subscribers",
    metadata,
    sa.Column(
        "task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "person_id",
        sa.Uuid(),
        sa.ForeignKey("people.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    sa.Column("position", sa.Integer(), nullable=False),
)

comments = sa.Table(
    "comments",
    metadata,
    _id(),
    _account_fk(),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("author_id", sa.Uuid(), sa.ForeignKey("people.id"), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("is_system", sa.Boolean(), nullable=False, default=False),
    _created_at(),
    sa.Index("ix_comments_task_id_created_at", "task_id", "created_at", "id"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    _id(),
    _account_fk(),
    _parent("task_id", "tasks", nullable=True),  # null only for an invitation (below)
    _parent("comment_id", "comments", nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    # What the message says when it is not the comment itself (a scenario's template).
    sa.Column("message_text", sa.Text(), nullable=True),
    _created_at(),
    sa.Index("ix_notifications_created_at", "created_at"),
    # An invitation's email (db/invitations.py) is about no task. Its deliveries outlive
    # the invitation (an erased person's keep a placeholder address).
    sa.Column(
        "invitation_id",
        sa.Uuid(),
        sa.ForeignKey("invitations.id", ondelete="SET NULL"),
        nullable=True,
    ),
)

messages = sa.Table(
    "messages",
    metadata,
    _id(),
    _account_fk(),
    _parent("notification_id", "notifications"),
    sa.Column("channel", sa.String(16), nullable=False),
    # The Message-ID header: stable across retries so a duplicate send is recognisable.
    sa.Column("header_message_id", sa.String(255), nullable=False, unique=True),
    # Random, unguessable id carried by the pixel token; null when no pixel was added.
    sa.Column("pixel_id", sa.String(32), nullable=True, unique=True),
    _created_at(),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    _id(),
    _account_fk(),
    _parent("notification_id", "notifications"),
    _parent("message_id", "messages"),
    sa.Column("recipient_id", sa.Uuid(), sa.ForeignKey("people.id"), nullable=False),
    # The recipient's place among the notification's: lists and To: follow the task's
    # subscriber order.
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(2000), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("queued_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Column("failed_at", UtcDateTime(), nullable=True),
    sa.Column("read_at", UtcDateTime(), nullable=True),
    sa.Column("accepted_by", sa.String(255), nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("error_permanent", sa.Boolean(), nullable=True),
    sa.Column("open_count", sa.Integer(), nullable=False, default=0),
    # The provider's id for the message (Telegram message id, WhatsApp wamid, Twilio
    # SID): its status reports name it.
    sa.Column("provider_message_id", sa.String(255), nullable=True),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    # The most a pixel open said so far: HUMAN, PROXY or MACHINE.
    sa.Column("read_confidence", sa.String(16), nullable=True),
    # While QUEUED: the recipient rate limit holds it back until then. Set by the worker,
    # cleared by its next attempt or state change; ignore it in any other state.
    sa.Column("held_until", UtcDateTime(), nullable=True),
    sa.Index("ix_deliveries_provider_message", "channel", "provider_message_id"),
    # A delivery is updated several times (sent, each open, a late bounce): room left on
    # each page lets PostgreSQL update in place (HOT) instead of writing the row anew and
    # an entry in each of its six indexes (migration 0005).
    postgresql_with={"fillfactor": 85},
)

# Append-only: rows are inserted, never updated. `delivery_id` names a delivery without
# a foreign key: the check cost every pixel open a lookup (ADR 0014). Events are written
# only for deliveries the same transaction read or locked, and are deleted with them by
# db/purge.py; the event log joins deliveries, so an event whose delivery is gone is
# never shown.
delivery_events = sa.Table(
    "delivery_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Uuid(), nullable=False, index=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=True),
)

# The outbox: one row per message waiting to be (re)sent. A worker leases a row while it
# sends, and deletes it in the transaction that records the outcome.
send_jobs = sa.Table(
    "send_jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "message_id",
        sa.Uuid(),
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=True,
        unique=True,
    ),
    # Or a status-webhook endpoint's job: send its pending events, in order (0009).
    sa.Column(
        "webhook_endpoint_id",
        sa.Uuid(),
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=True,
        unique=True,
    ),
    sa.Column("run_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    _created_at(),
    sa.CheckConstraint("(message_id IS NULL) <> (webhook_endpoint_id IS NULL)", name="one_target"),
)

# Every inbound bounce, auto-reply or complaint is kept, parsed or not, so that nothing a
# mail server told us is thrown away and unreadable ones can be reviewed.
bounces = sa.Table(
    "bounces",
    metadata,
    _id(),
    sa.Column(
        "account_id",
        sa.Uuid(),
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=True,  # unknown when the bounce carries no valid VERP token
        index=True,
    ),
    sa.Column(
        "message_id",
        sa.Uuid(),
        sa.ForeignKey("messages.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column(
        "delivery_id",
        sa.Uuid(),
        sa.ForeignKey("deliveries.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("parsed", sa.Boolean(), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("raw", sa.LargeBinary(), nullable=False),
)

# The per-recipient rate limit counts recent sends to one address.
sa.Index(
    "ix_deliveries_rate",
    deliveries.c.account_id,
    deliveries.c.channel,
    deliveries.c.address,
    deliveries.c.sent_at,
)

# The delivery log (db/delivery_log.py): an account's deliveries newest first, a page per
# range scan (migration 0011); and the same by address and by state, the filters whose
# matches can be rare enough that filtering the first index would read the whole account
# (an address's deliveries, the few QUEUED or FAILED). Other filters read the first one.
sa.Index(
    "ix_deliveries_account_id_queued_at",
    deliveries.c.account_id,
    deliveries.c.queued_at,
    deliveries.c.id,
)
sa.Index(
    "ix_deliveries_account_id_address_queued_at",
    deliveries.c.account_id,
    deliveries.c.address,
    deliveries.c.queued_at,
    deliveries.c.id,
)
sa.Index(
    "ix_deliveries_account_id_state_queued_at",
    deliveries.c.account_id,
    deliveries.c.state,
    deliveries.c.queued_at,
    deliveries.c.id,
)
# A person's in-app notifications (db/notifications.py): the bell recounts its unread
# ones whenever a delivery of the account changes, so that count must not scan the account.
sa.Index(
    "ix_deliveries_recipient_id_channel_state",
    deliveries.c.recipient_id,
    deliveries.c.channel,
    deliveries.c.state,
)


# An account's provider credentials: write-only over the API, never logged.
channel_credentials = sa.Table(
    "channel_credentials",
    metadata,
    sa.Column(
        "account_id",
        sa.Uuid(),
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("telegram_bot_token", sa.String(255), nullable=True),
    # Callbacks name these, so an account is found from the payload.
    sa.Column("whatsapp_phone_number_id", sa.String(64), nullable=True, unique=True),
    sa.Column("whatsapp_access_token", sa.String(1000), nullable=True),
    sa.Column("whatsapp_app_secret", sa.String(255), nullable=True),
    sa.Column("whatsapp_verify_token", sa.String(255), nullable=True),
    sa.Column("twilio_account_sid", sa.String(64), nullable=True, index=True),
    sa.Column("twilio_auth_token", sa.String(255), nullable=True),
    sa.Column("twilio_from_number", sa.String(32), nullable=True),
    sa.Column("webhook_signing_secret", sa.String(255), nullable=True),
)

# Each provider report once: a replayed or duplicated callback adds no second event.
provider_reports = sa.Table(
    "provider_reports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("provider_message_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("channel", "provider_message_id", "status"),
)


# Addresses that must not be sent to again: a hard bounce, a blocked bot, a complaint.
suppressions = sa.Table(
    "suppressions",
    metadata,
    _id(),
    _account_fk(index=False),  # led by the unique constraint
    sa.Column("channel", sa.String(16), nullable=False),
    # Emails compare case-insensitively: stored lower-cased.
    sa.Column("address", sa.String(2000), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    _created_at(),
    sa.UniqueConstraint("account_id", "channel", "address"),
)

# Automation: when something happens on a task, email someone, as a system comment.
scenarios = sa.Table(
    "scenarios",
    metadata,
    _id(),
    _account_fk(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("keyword", sa.String(200), nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column(
        "person_id", sa.Uuid(), sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("template", sa.Text(), nullable=False),
    _created_at(),
)


# Status webhooks (ADR 0021): where an account wants its deliveries' status changes sent.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    _id(),
    _account_fk(),
    sa.Column("url", sa.String(2000), nullable=False),
    # Event types wanted, e.g. ["SENT", "BOUNCED"]; channels wanted ([] = every channel).
    sa.Column("event_types", sa.JSON(), nullable=False),
    sa.Column("channels", sa.JSON(), nullable=False),
    # "whsec_<base64>": needed in the clear to sign. After a rotation the previous one
    # signs too, for a while, so receivers can switch without losing events.
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("previous_secret", sa.String(100), nullable=True),
    sa.Column("previous_secret_until", UtcDateTime(), nullable=True),
    sa.Column("disabled_at", UtcDateTime(), nullable=True),
    sa.Column("disabled_reason", sa.Text(), nullable=True),
    # The first failed attempt since the last success: too long ago disables the endpoint.
    sa.Column("failing_since", UtcDateTime(), nullable=True),
    _created_at(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# One row per status change and endpoint, written by a trigger on deliveries (migration
# 0009) in the transaction of the change. The id orders an endpoint's events and names
# the event to receivers ("evt_<id>"), the same on every retry and replay. No foreign
# key to deliveries, as for delivery_events.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "endpoint_id",
        sa.Uuid(),
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("delivery_id", sa.Uuid(), nullable=False, index=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("old_state", sa.String(16), nullable=True),
    sa.Column("new_state", sa.String(16), nullable=False),
    # The delivery's error and read confidence as they were at the change.
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("read_confidence", sa.String(16), nullable=True),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    # PENDING, DELIVERED, or FAILED (retries ran out); a replay makes it PENDING again.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Index("ix_webhook_events_endpoint_id_status_id", "endpoint_id", "status", "id"),
    sa.Index("ix_webhook_events_endpoint_id_occurred_at", "endpoint_id", "occurred_at", "id"),
)

# Every attempt to send an event, for the delivery log (webhookDeliveries).
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "endpoint_id",
        sa.Uuid(),
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "event_id",
        BigId,
        sa.ForeignKey("webhook_events.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    # The first KiB of the answer, as text.
    sa.Column("response", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("succeeded", sa.Boolean(), nullable=False),
    sa.Index("ix_webhook_attempts_endpoint_id_id", "endpoint_id", "id"),
)

# One row per idempotency key an account used in the last 24 hours (ADR 0021): the
# primary key is the unique index that decides a race between two requests with one
# key. Written in the transaction of the mutation it guards, so a key is taken if and
# only if the mutation's writes committed; `result_id` names what the mutation made.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    _account_fk(index=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("mutation", sa.String(32), nullable=False),
    # SHA-256 (hex) of the canonical input (domain/idempotency.py).
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("result_id", sa.Uuid(), nullable=True),
    _created_at(),
    sa.PrimaryKeyConstraint("account_id", "key"),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)


async def insert_new(conn: AsyncConnection, table: sa.Table, **values: Any) -> uuid.UUID:
    """Insert a row under a fresh id; returns the id."""
    row_id = uuid.uuid4()
    await conn.execute(table.insert().values(id=row_id, **values))
    return row_id
