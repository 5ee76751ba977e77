"""deliveries leave room on each page for in-place (HOT) updates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 22:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # PostgreSQL only (SQLite has no fill factor). Pages written from now on keep 15%
    # free; existing ones get the room as they are rewritten (VACUUM FULL does all).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
