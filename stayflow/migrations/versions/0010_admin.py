"""admin web app: users, memberships, sessions, sign-in throttle

Revision ID: 0007_admin
Revises: 0005_precancel
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stayflow.db

revision: str = "0007_admin"
down_revision: str | None = "0005_precancel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
UTC = stayflow.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "admin_users",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("password_changed_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("email", name=op.f("uq_admin_users_email")),
    )
    op.create_table(
        "admin_memberships",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("user_pk", PK, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"],
            ["apps.id"],
            name=op.f("fk_admin_memberships_app_pk_apps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["admin_users.id"],
            name=op.f("fk_admin_memberships_user_pk_admin_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_memberships")),
        sa.UniqueConstraint("user_pk", "app_pk", name=op.f("uq_admin_memberships_user_pk")),
    )
    op.create_index(
        op.f("ix_admin_memberships_app_pk"), "admin_memberships", ["app_pk"], unique=False
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_pk", PK, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["admin_users.id"],
            name=op.f("fk_admin_sessions_user_pk_admin_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_sessions_token_hash")),
    )
    op.create_index(op.f("ix_admin_sessions_user_pk"), "admin_sessions", ["user_pk"], unique=False)
    op.create_table(
        "admin_login_throttle",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", UTC, nullable=False),
        sa.Column("locked_until", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_login_throttle")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_admin_login_throttle_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("admin_login_throttle")
    op.drop_index(op.f("ix_admin_sessions_user_pk"), table_name="admin_sessions")
    op.drop_table("admin_sessions")
    op.drop_index(op.f("ix_admin_memberships_app_pk"), table_name="admin_memberships")
    op.drop_table("admin_memberships")
    op.drop_table("admin_users")
