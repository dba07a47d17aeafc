"""cancel sessions: signed fields, and return URLs that may be left to stayflow's result page

Revision ID: 0005_precancel
Revises: 0008_webhooks_kind
Create Date: 2026-12-01 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0005_precancel"
down_revision: str | None = "0008_webhooks_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cancel_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "signed_fields",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )
        # NULL: no URL from the request nor the app; the flow ends on stayflow's result page.
        batch_op.alter_column(
            "save_return_url", existing_type=sa.String(length=2048), nullable=True
        )
        batch_op.alter_column(
            "cancel_confirmation_url", existing_type=sa.String(length=2048), nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("cancel_sessions", schema=None) as batch_op:
        batch_op.execute(
            "UPDATE cancel_sessions SET save_return_url = '' WHERE save_return_url IS NULL"
        )
        batch_op.execute(
            "UPDATE cancel_sessions SET cancel_confirmation_url = '' "
            "WHERE cancel_confirmation_url IS NULL"
        )
        batch_op.alter_column(
            "cancel_confirmation_url", existing_type=sa.String(length=2048), nullable=False
        )
        batch_op.alter_column(
            "save_return_url", existing_type=sa.String(length=2048), nullable=False
        )
        batch_op.drop_column("signed_fields")
