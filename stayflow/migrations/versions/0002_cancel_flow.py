"""cancel flow: cancel sessions and flow configs

Revision ID: 0002_cancel_flow
Revises: 0001
Create Date: 2026-11-25 09:21:33.492567
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0002_cancel_flow"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cancel_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=False),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column(
            "request_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "enriched_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("save_return_url", sa.String(length=2048), nullable=False),
        sa.Column("cancel_confirmation_url", sa.String(length=2048), nullable=False),
        sa.Column("experience_id", sa.String(length=100), nullable=True),
        sa.Column("experiment_id", sa.String(length=100), nullable=True),
        sa.Column("variant_id", sa.String(length=100), nullable=True),
        sa.Column(
            "flow",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "offers_shown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason_id", sa.String(length=100), nullable=True),
        sa.Column("reason_feedback", sa.String(length=40), nullable=True),
        sa.Column("reason_comment", sa.Text(), nullable=True),
        sa.Column("offer_accepted_id", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("created_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("viewed_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("abandon_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_cancel_sessions_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancel_sessions")),
        sa.UniqueConstraint("session_id", name=op.f("uq_cancel_sessions_session_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_cancel_sessions_token_hash")),
    )
    with op.batch_alter_table("cancel_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cancel_sessions_app_pk_created_at", ["app_pk", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_cancel_sessions_outcome_abandon_at", ["outcome", "abandon_at"], unique=False
        )

    op.create_table(
        "flow_configs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_flow_configs_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_configs")),
        sa.UniqueConstraint("app_pk", name=op.f("uq_flow_configs_app_pk")),
    )


def downgrade() -> None:
    op.drop_table("flow_configs")
    with op.batch_alter_table("cancel_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_cancel_sessions_outcome_abandon_at")
        batch_op.drop_index("ix_cancel_sessions_app_pk_created_at")

    op.drop_table("cancel_sessions")
