"""the team (issue 14): roles, named and revocable tokens, invitations, erased people,
closed tasks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:30:00.000000

Each employee gets a role. An existing account's first employee (the one
create-account made) becomes OWNER and every other employee MEMBER, so that nobody
gains rights by the upgrade and every account keeps one OWNER (ADR 0020). Existing
tokens are named "first token" and are never marked used until their next request.
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EMAIL_INDEX = "uq_people_account_id_email"

people = sa.table(
    "people",
    sa.column("id", sa.Uuid()),
    sa.column("account_id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("created_at"),
    sa.column("role", sa.String()),
)


def upgrade() -> None:
    # Plain ADD COLUMN (both databases have it): batch mode would copy `people` on
    # SQLite, whose reflection drops the index on lower(email).
    op.add_column("people", sa.Column("role", sa.String(16), nullable=True))
    op.add_column("people", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "api_tokens",
        sa.Column("name", sa.String(200), nullable=False, server_default="first token"),
    )
    op.add_column("api_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True)))
    op.add_column("api_tokens", sa.Column("revoked_at", sa.DateTime(timezone=True)))
    op.add_column("tasks", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
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
    # An invitation's notification is about no task. SQLite copies the table to change
    # a column; reflecting the tables it refers to reaches `people`, whose index on
    # lower(email) it cannot read (a warning; `people` itself is not copied).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        with op.batch_alter_table("notifications", schema=None) as batch_op:
            batch_op.alter_column("task_id", existing_type=sa.Uuid(), nullable=True)
            batch_op.add_column(sa.Column("invitation_id", sa.Uuid(), nullable=True))
            batch_op.create_foreign_key(
                op.f("fk_notifications_invitation_id_invitations"),
                "invitations",
                ["invitation_id"],
                ["id"],
                ondelete="SET NULL",
            )

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
    # SQLite copies a table to drop a column. Its reflection cannot read the index on
    # lower(email) (it warns, and the copy of `people` would lose it): that index is
    # dropped and built again around the copy, and the warning, raised while tables
    # that refer to `people` are reflected, is expected.
    op.drop_index(_EMAIL_INDEX, table_name="people")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        # Invitations' emails are about no task: they go with the invitations.
        op.execute(sa.text("DELETE FROM notifications WHERE task_id IS NULL"))
        with op.batch_alter_table("notifications", schema=None) as batch_op:
            batch_op.drop_constraint(
                op.f("fk_notifications_invitation_id_invitations"), type_="foreignkey"
            )
            batch_op.drop_column("invitation_id")
            batch_op.alter_column("task_id", existing_type=sa.Uuid(), nullable=False)
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
    op.create_index(_EMAIL_INDEX, "people", ["account_id", sa.text("lower(email)")], unique=True)
