"""webhook endpoints get a kind (webhook, slack, email_digest)

Revision ID: 0008_webhooks_kind
Revises: 0007_attribution
Create Date: 2026-12-01 06:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_webhooks_kind"
down_revision: str | None = "0007_attribution"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        # Endpoints made before kinds existed are Standard Webhooks endpoints.
        batch_op.add_column(
            sa.Column("kind", sa.String(length=20), nullable=False, server_default="webhook")
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("kind")
