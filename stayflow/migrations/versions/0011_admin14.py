"""admin web app: each user's language, invitations by one-time link

Revision ID: 0011_admin14
Revises: 0007_admin
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stayflow.db

revision: str = "0011_admin14"
down_revision: str | None = "0007_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
UTC = stayflow.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("admin_users") as batch:
        batch.add_column(sa.Column("language", sa.String(length=8), nullable=True))
    op.create_table(
        "admin_invites",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by_pk", PK, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_admin_invites_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_pk"],
            ["admin_users.id"],
            name=op.f("fk_admin_invites_invited_by_pk_admin_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_invites_token_hash")),
    )
    op.create_index(op.f("ix_admin_invites_app_pk"), "admin_invites", ["app_pk"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_invites_app_pk"), table_name="admin_invites")
    op.drop_table("admin_invites")
    with op.batch_alter_table("admin_users") as batch:
        batch.drop_column("language")
