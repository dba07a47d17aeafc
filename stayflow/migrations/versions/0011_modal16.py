"""cancel sessions opened in a modal: the origin of the page that frames the hosted page

Revision ID: 0011_modal16
Revises: 0011_flows14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_modal16"
down_revision: str | None = "0011_flows14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cancel_sessions") as batch:
        batch.add_column(sa.Column("embed_origin", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cancel_sessions") as batch:
        batch.drop_column("embed_origin")
