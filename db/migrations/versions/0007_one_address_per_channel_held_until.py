"""one person per address and channel in an account (ADR 0017); deliveries.held_until

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 05:00:00.000000

A database from before this revision may hold the same address on several people of an
account. The unique indexes cannot be built over those, so first each such address is
left with one person: an employee before a contact, then the one who had it first. Each
other holder loses that address (and keeps everything else), and the keeper is subscribed
to their tasks and takes their EMAIL_PERSON scenarios, so the address still receives
what it received, once. Every change is logged with the people's ids. The downgrade
drops the indexes; the addresses cleared here are not restored.
"""

import logging
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# The tables as this revision knows them (not db/tables.py, which moves on).
people = sa.table(
    "people",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("created_at"),
    sa.column("email", sa.String()),
    sa.column("telegram_chat_id", sa.String()),
    sa.column("phone", sa.String()),
    sa.column("webhook_url", sa.String()),
)
task_subscribers = sa.table(
    "task_subscribers",
    sa.column("task_id", sa.Uuid()),
    sa.column("person_id", sa.Uuid()),
    sa.column("position", sa.Integer()),
)
scenarios = sa.table(
    "scenarios",
    sa.column("person_id", sa.Uuid()),
)

# (index name, column, whether the address compares without case)
_ADDRESSES = (
    ("uq_people_account_id_email", "email", True),
    ("uq_people_account_id_telegram_chat_id", "telegram_chat_id", False),
    ("uq_people_account_id_phone", "phone", False),
    ("uq_people_account_id_webhook_url", "webhook_url", False),
)


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    for name, column, no_case in _ADDRESSES:
        _leave_one_holder(conn, column, no_case)
        key = sa.text(f"lower({column})") if no_case else column
        op.create_index(name, "people", ["account_id", key], unique=True)


def downgrade() -> None:
    for name, _, _ in reversed(_ADDRESSES):
        op.drop_index(name, table_name="people")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("held_until")


def _leave_one_holder(conn: sa.Connection, column: str, no_case: bool) -> None:
    address = people.c[column]
    # The database's own lower(), as the index uses it (SQLite folds ASCII only).
    key = sa.func.lower(address) if no_case else address
    rows = conn.execute(
        sa.select(people.c.id, people.c.account_id, key.label("key"))
        .where(address.is_not(None))
        .order_by(
            people.c.account_id,
            key,
            sa.case((people.c.kind == "EMPLOYEE", 0), else_=1),
            people.c.created_at,
            people.c.id,
        )
    ).all()
    keeper: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
    for person_id, account_id, value in rows:
        first = keeper.setdefault((account_id, value), person_id)
        if first != person_id:
            _hand_over(conn, column, duplicate=person_id, keeper=first)


def _hand_over(
    conn: sa.Connection, column: str, *, duplicate: uuid.UUID, keeper: uuid.UUID
) -> None:
    conn.execute(people.update().where(people.c.id == duplicate).values({column: None}))
    subscribed = set(
        conn.execute(
            sa.select(task_subscribers.c.task_id).where(task_subscribers.c.person_id == keeper)
        ).scalars()
    )
    tasks = conn.execute(
        sa.select(task_subscribers.c.task_id).where(task_subscribers.c.person_id == duplicate)
    ).scalars()
    for task_id in [task for task in tasks if task not in subscribed]:
        last = conn.execute(
            sa.select(sa.func.max(task_subscribers.c.position)).where(
                task_subscribers.c.task_id == task_id
            )
        ).scalar_one()
        conn.execute(
            task_subscribers.insert().values(task_id=task_id, person_id=keeper, position=last + 1)
        )
    if column == "email":
        # A scenario emails one person: the address it meant now belongs to the keeper.
        conn.execute(
            scenarios.update().where(scenarios.c.person_id == duplicate).values(person_id=keeper)
        )
    log.warning(
        "0007: person %s had the same %s as person %s; it was cleared on %s, and %s now "
        "receives what it was subscribed to",
        duplicate,
        column,
        keeper,
        duplicate,
        keeper,
    )
