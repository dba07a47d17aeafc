"""billing_connections.webhook_events: the event types stayflow's managed endpoint asked for;
attribution_state.coupons_checked_through: customers looked at for coupons named only by id

Revision ID: 0011_attr12
Revises: 0011_flows14
Create Date: 2026-12-02 01:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0011_attr12"
down_revision: str | None = "0011_reports15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_connections", schema=None) as batch_op:
        # NULL for endpoints made before this column: the next sync brings their list up to
        # date (one POST to Stripe) and records it.
        batch_op.add_column(
            sa.Column(
                "webhook_events",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    with op.batch_alter_table("attribution_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "coupons_checked_through", stayflow.db.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("attribution_state", schema=None) as batch_op:
        batch_op.drop_column("coupons_checked_through")
    with op.batch_alter_table("billing_connections", schema=None) as batch_op:
        batch_op.drop_column("webhook_events")
