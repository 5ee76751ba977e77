"""the team (issue 14): roles, named and revocable tokens, invitations, closed tasks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:30:00.000000

Each employee gets a role. An existing account's first employee (the one
create-account made) becomes OWNER and every other employee MEMBER, so that nobody
gains rights by the upgrade and every account keeps one OWNER (ADR 0020). Existing
tokens are named "first token" and are never marked used until their next request.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

people = sa.table(
    "people",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("created_at"),
    sa.column("role", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name", sa.String(200), nullable=False, server_default="first token")
        )
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_invitations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_invitations_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_invitations_secret_hash")),
    )
    op.create_index(op.f("ix_invitations_person_id"), "invitations", ["person_id"])

    conn = op.get_bind()
    employees = conn.execute(
        sa.select(people.c.id, people.c.account_id)
        .where(people.c.kind == "EMPLOYEE")
        .order_by(people.c.account_id, people.c.created_at, people.c.id)
    ).all()
    owners: set[object] = set()
    for person_id, account_id in employees:
        role = "MEMBER" if account_id in owners else "OWNER"
        owners.add(account_id)
        conn.execute(people.update().where(people.c.id == person_id).values(role=role))


def downgrade() -> None:
    op.drop_index(op.f("ix_invitations_person_id"), table_name="invitations")
    op.drop_table("invitations")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("name")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("role")
