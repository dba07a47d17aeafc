"""billing actions and events

Revision ID: 0004_billing_actions
Revises: 0003_billing_mirror
Create Date: 2026-11-25 09:33:32.391167
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0004_billing_actions"
down_revision: str | None = "0003_billing_mirror"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_actions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=False),
        sa.Column("offer_id", sa.String(length=100), nullable=True),
        sa.Column("offer_type", sa.String(length=30), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "plan",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_billing_actions_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_actions")),
        sa.UniqueConstraint("session_id", "kind", name="uq_billing_actions_session_kind"),
    )
    with op.batch_alter_table("billing_actions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_actions_app_pk_status", ["app_pk", "status"], unique=False
        )

    op.create_table(
        "billing_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_billing_events_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_events")),
    )
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.create_index("ix_billing_events_app_pk_id", ["app_pk", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_events_app_pk_id")

    op.drop_table("billing_events")
    with op.batch_alter_table("billing_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_actions_app_pk_status")

    op.drop_table("billing_actions")
