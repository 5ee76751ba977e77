"""delivery log index: an account's deliveries by queued_at

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03 07:45:00.000000

The delivery log and its export (db/delivery_log.py) read an account's deliveries newest
first by (queued_at, id): with this index a page is one short range scan at any size.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_account_id_queued_at", ["account_id", "queued_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_account_id_queued_at")
