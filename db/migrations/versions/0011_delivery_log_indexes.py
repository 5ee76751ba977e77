"""delivery log indexes: an account's deliveries by queued_at (and by address, state);
a person's in-app deliveries by state

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03 07:45:00.000000

The delivery log and its export (db/delivery_log.py) read an account's deliveries newest
first by (queued_at, id): with these indexes a page is one short range scan at any size.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# name: columns. The first serves every page; the others the filters whose matches can
# be rare (an address; the few QUEUED or FAILED), which would otherwise read the whole
# account's range of the first.
_INDEXES = {
    "ix_deliveries_account_id_queued_at": ["account_id", "queued_at", "id"],
    "ix_deliveries_account_id_address_queued_at": ["account_id", "address", "queued_at", "id"],
    "ix_deliveries_account_id_state_queued_at": ["account_id", "state", "queued_at", "id"],
    # Not the log's: a person's unread in-app count, recounted by every open bell on each
    # change in the account (db/notifications.py).
    "ix_deliveries_recipient_id_channel_state": ["recipient_id", "channel", "state"],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("deliveries", schema=None) as batch_op:
            for name, columns in _INDEXES.items():
                batch_op.create_index(name, columns, unique=False)
        return
    # On a deliveries table in use, a plain CREATE INDEX blocks every write to it until
    # the index is built (minutes at millions of rows). CONCURRENTLY does not, but cannot
    # run inside a transaction: the migrations before commit first. If a build fails, it
    # leaves an invalid index of that name: drop it and run `migrate` again.
    with op.get_context().autocommit_block():
        for name, columns in _INDEXES.items():
            op.create_index(name, "deliveries", columns, postgresql_concurrently=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("deliveries", schema=None) as batch_op:
            for name in _INDEXES:
                batch_op.drop_index(name)
        return
    with op.get_context().autocommit_block():
        for name in _INDEXES:
            op.drop_index(name, "deliveries", postgresql_concurrently=True)
