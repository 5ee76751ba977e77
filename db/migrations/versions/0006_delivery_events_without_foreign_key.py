"""delivery_events no longer references deliveries by a foreign key (ADR 0014)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 00:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "fk_delivery_events_delivery_id_deliveries"


def upgrade() -> None:
    # SQLite cannot drop a constraint in place: batch mode copies the table (nothing
    # references delivery_events, so the copy is safe with foreign keys on).
    with op.batch_alter_table("delivery_events", schema=None) as batch_op:
        batch_op.drop_constraint(_NAME, type_="foreignkey")


def downgrade() -> None:
    # Events left behind by deliveries deleted without them would fail the constraint.
    op.execute(
        sa.text(
            "DELETE FROM delivery_events WHERE NOT EXISTS"
            " (SELECT 1 FROM deliveries WHERE deliveries.id = delivery_events.delivery_id)"
        )
    )
    with op.batch_alter_table("delivery_events", schema=None) as batch_op:
        batch_op.create_foreign_key(
            _NAME, "deliveries", ["delivery_id"], ["id"], ondelete="CASCADE"
        )
