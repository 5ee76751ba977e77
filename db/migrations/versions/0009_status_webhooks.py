"""status webhooks: endpoints, their events and attempts, webhook jobs in the outbox

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03 07:30:00.000000

Every status change of a delivery becomes one event per interested endpoint, written by
a trigger on `deliveries` in the transaction that changes the state: every path that
moves a state (the worker, reports, bounces, pixel opens, markRead, resends) is covered
without each of them knowing about webhooks (ADR 0021). The trigger also makes sure the
endpoint has a job in the outbox (`send_jobs.webhook_endpoint_id`); a job row is either a
message's or an endpoint's.

The type of an event is the new state, except SENT -> FAILED, which is BOUNCED; the rule
is domain/webhook_events.py's `event_type`, and tests/integration/test_webhook_events.py
checks that this SQL agrees with it.
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As db/tables.py spells them, frozen here.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:
    return sa.DateTime(timezone=True)


_POSTGRES_FUNCTION = """
CREATE FUNCTION webhook_events_of_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous text;
    event_type text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        previous := OLD.state;
    END IF;
    event_type := CASE WHEN previous = 'SENT' AND NEW.state = 'FAILED' THEN 'BOUNCED'
                       ELSE NEW.state END;
    INSERT INTO webhook_events (endpoint_id, delivery_id, type, old_state, new_state,
                                error_code, error_message, read_confidence, occurred_at,
                                status, attempts)
    SELECT e.id, NEW.id, event_type, previous, NEW.state, NEW.error_code,
           NEW.error_message, NEW.read_confidence,
           coalesce(CASE WHEN TG_OP = 'INSERT' THEN NEW.queued_at
                         WHEN NEW.state = 'SENT' THEN NEW.sent_at
                         WHEN NEW.state = 'READ' THEN NEW.read_at
                         WHEN NEW.state = 'FAILED' THEN NEW.failed_at END,
                    clock_timestamp()),
           'PENDING', 0
    FROM webhook_endpoints e
    WHERE e.account_id = NEW.account_id AND e.disabled_at IS NULL
      AND e.event_types::jsonb @> jsonb_build_array(event_type)
      AND (e.channels::jsonb = '[]'::jsonb OR e.channels::jsonb @> jsonb_build_array(NEW.channel))
    ORDER BY e.id;
    IF FOUND THEN
        -- A worker finishing an endpoint's job updates the row first and then looks for
        -- pending events: holding the row until this transaction ends makes it wait,
        -- and then see this event, instead of deleting the job under it.
        PERFORM 1 FROM send_jobs j JOIN webhook_endpoints e ON e.id = j.webhook_endpoint_id
        WHERE e.account_id = NEW.account_id AND e.disabled_at IS NULL
        ORDER BY j.id FOR UPDATE OF j;
        INSERT INTO send_jobs (webhook_endpoint_id, run_at, created_at)
        SELECT DISTINCT w.endpoint_id, now(), now() FROM webhook_events w
        WHERE w.delivery_id = NEW.id AND w.status = 'PENDING'
        ON CONFLICT (webhook_endpoint_id) DO NOTHING;
    END IF;
    RETURN NULL;
END $$
"""

# SQLite: the same, as two triggers (a trigger body has no variables). Times are stored
# as SQLAlchemy writes them: naive UTC text with six fractional digits.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def _sqlite_trigger(name: str, event: str, previous: str, when: str, occurred: str) -> str:
    event_type = (
        f"CASE WHEN {previous} = 'SENT' AND NEW.state = 'FAILED' THEN 'BOUNCED' ELSE NEW.state END"
    )
    return f"""
CREATE TRIGGER {name} AFTER {event} ON deliveries
FOR EACH ROW WHEN {when}
    EXISTS (SELECT 1 FROM webhook_endpoints
            WHERE account_id = NEW.account_id AND disabled_at IS NULL)
BEGIN
    INSERT INTO webhook_events (endpoint_id, delivery_id, type, old_state, new_state,
                                error_code, error_message, read_confidence, occurred_at,
                                status, attempts)
    SELECT e.id, NEW.id, {event_type}, {previous}, NEW.state, NEW.error_code,
           NEW.error_message, NEW.read_confidence, coalesce({occurred}, {_SQLITE_NOW}),
           'PENDING', 0
    FROM webhook_endpoints e
    WHERE e.account_id = NEW.account_id AND e.disabled_at IS NULL
      AND EXISTS (SELECT 1 FROM json_each(e.event_types) WHERE value = {event_type})
      AND (json_array_length(e.channels) = 0
           OR EXISTS (SELECT 1 FROM json_each(e.channels) WHERE value = NEW.channel))
    ORDER BY e.id;
    INSERT INTO send_jobs (webhook_endpoint_id, run_at, created_at)
    SELECT DISTINCT endpoint_id, {_SQLITE_NOW}, {_SQLITE_NOW} FROM webhook_events
    WHERE delivery_id = NEW.id AND status = 'PENDING'
    ON CONFLICT (webhook_endpoint_id) DO NOTHING;
END
"""


_SQLITE_TRIGGERS = (
    _sqlite_trigger("webhook_events_on_delivery_insert", "INSERT", "NULL", "", "NEW.queued_at"),
    _sqlite_trigger(
        "webhook_events_on_delivery_update",
        "UPDATE OF state",
        "OLD.state",
        "OLD.state <> NEW.state AND",
        "CASE NEW.state WHEN 'SENT' THEN NEW.sent_at WHEN 'READ' THEN NEW.read_at"
        " WHEN 'FAILED' THEN NEW.failed_at END",
    ),
)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_until", UtcDateTime(), nullable=True),
        sa.Column("disabled_at", UtcDateTime(), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("failing_since", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_webhook_endpoints_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        op.f("ix_webhook_endpoints_account_id"), "webhook_endpoints", ["account_id"], unique=False
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("old_state", sa.String(length=16), nullable=True),
        sa.Column("new_state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("read_confidence", sa.String(length=16), nullable=True),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_events_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(
        "ix_webhook_events_endpoint_id_status_id",
        "webhook_events",
        ["endpoint_id", "status", "id"],
        unique=False,
    )
    op.create_index(
        "ix_webhook_events_endpoint_id_occurred_at",
        "webhook_events",
        ["endpoint_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_webhook_events_delivery_id"), "webhook_events", ["delivery_id"], unique=False
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_attempts_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.id"],
            name=op.f("fk_webhook_attempts_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "ix_webhook_attempts_endpoint_id_id",
        "webhook_attempts",
        ["endpoint_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_webhook_attempts_event_id"), "webhook_attempts", ["event_id"], unique=False
    )
    with warnings.catch_warnings(), op.batch_alter_table("send_jobs", schema=None) as batch_op:
        # SQLite copies the table, reflecting the tables it refers to; reflection cannot
        # read people's index on lower(email), which the copy does not need.
        warnings.filterwarnings("ignore", message=".*expression-based index")
        batch_op.alter_column("message_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column("webhook_endpoint_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_send_jobs_webhook_endpoint_id_webhook_endpoints"),
            "webhook_endpoints",
            ["webhook_endpoint_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_send_jobs_webhook_endpoint_id"), ["webhook_endpoint_id"]
        )
        batch_op.create_check_constraint(
            "one_target", "(message_id IS NULL) <> (webhook_endpoint_id IS NULL)"
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER webhook_events_on_delivery_insert AFTER INSERT ON deliveries "
            "FOR EACH ROW EXECUTE FUNCTION webhook_events_of_delivery()"
        )
        op.execute(
            "CREATE TRIGGER webhook_events_on_delivery_update AFTER UPDATE OF state ON deliveries "
            "FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) "
            "EXECUTE FUNCTION webhook_events_of_delivery()"
        )
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS webhook_events_on_delivery_update ON deliveries"
        if op.get_bind().dialect.name == "postgresql"
        else "DROP TRIGGER IF EXISTS webhook_events_on_delivery_update"
    )
    op.execute(
        "DROP TRIGGER IF EXISTS webhook_events_on_delivery_insert ON deliveries"
        if op.get_bind().dialect.name == "postgresql"
        else "DROP TRIGGER IF EXISTS webhook_events_on_delivery_insert"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS webhook_events_of_delivery()")
    op.execute(sa.text("DELETE FROM send_jobs WHERE message_id IS NULL"))
    with warnings.catch_warnings(), op.batch_alter_table("send_jobs", schema=None) as batch_op:
        warnings.filterwarnings("ignore", message=".*expression-based index")
        batch_op.drop_constraint("one_target", type_="check")
        batch_op.drop_constraint(batch_op.f("uq_send_jobs_webhook_endpoint_id"), type_="unique")
        batch_op.drop_constraint(
            batch_op.f("fk_send_jobs_webhook_endpoint_id_webhook_endpoints"), type_="foreignkey"
        )
        batch_op.drop_column("webhook_endpoint_id")
        batch_op.alter_column("message_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
