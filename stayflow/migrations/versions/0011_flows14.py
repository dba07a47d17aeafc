"""flows versions: flow_versions (every change kept), a draft beside the live flows, and the
version each cancel session was shown; each app's current flows become its version 1

Revision ID: 0011_flows14
Revises: 0007_admin
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import yaml
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0011_flows14"
down_revision: str | None = "0011_admin14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
UTC_TIME = stayflow.db.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def _diff(document: dict[str, Any]) -> str:
    # The diff of version 1 is from nothing (as stayflow.flows.fileformat.diff writes it; a
    # copy here, so this migration does not change when that module does).
    after = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return "".join(difflib.unified_diff([], after.splitlines(keepends=True), "current", "new"))


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_flow_versions_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
        sa.UniqueConstraint("app_pk", "number", name=op.f("uq_flow_versions_app_pk")),
    )
    with op.batch_alter_table("flow_configs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft", JSON, nullable=True))
        batch_op.add_column(sa.Column("draft_message", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("draft_author", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("draft_updated_at", UTC_TIME, nullable=True))
        batch_op.add_column(sa.Column("draft_base_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("cancel_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flow_version", sa.Integer(), nullable=True))

    # Each app's current flows become its version 1 (the live version number with it).
    bind = op.get_bind()
    configs = sa.table(
        "flow_configs",
        sa.column("id", PK),
        sa.column("app_pk", PK),
        sa.column("document", JSON),
        sa.column("version", sa.Integer()),
        sa.column("updated_at", UTC_TIME),
    )
    versions = sa.table(
        "flow_versions",
        sa.column("app_pk", PK),
        sa.column("number", sa.Integer()),
        sa.column("author", sa.String()),
        sa.column("created_at", UTC_TIME),
        sa.column("message", sa.String()),
        sa.column("document", JSON),
        sa.column("diff", sa.Text()),
    )
    rows = bind.execute(
        sa.select(configs.c.id, configs.c.app_pk, configs.c.document, configs.c.updated_at).where(
            configs.c.version > 0
        )
    ).all()
    for config_id, app_pk, document, updated_at in rows:
        doc = document if isinstance(document, dict) else json.loads(document or "{}")
        bind.execute(
            versions.insert().values(
                app_pk=app_pk,
                number=1,
                author="migration",
                created_at=updated_at or datetime.now(UTC),
                message="the flows as they were before versions were kept",
                document=doc,
                diff=_diff(doc) if doc else "",
            )
        )
        bind.execute(configs.update().where(configs.c.id == config_id).values(version=1))
    # The sessions already assigned were shown what is now version 1.
    cancel_sessions = sa.table(
        "cancel_sessions",
        sa.column("app_pk", PK),
        sa.column("experience_id", sa.String()),
        sa.column("flow_version", sa.Integer()),
    )
    for _config_id, app_pk, _document, _updated_at in rows:
        bind.execute(
            cancel_sessions.update()
            .where(cancel_sessions.c.app_pk == app_pk)
            .where(cancel_sessions.c.experience_id.is_not(None))
            .values(flow_version=1)
        )


def downgrade() -> None:
    with op.batch_alter_table("cancel_sessions", schema=None) as batch_op:
        batch_op.drop_column("flow_version")
    with op.batch_alter_table("flow_configs", schema=None) as batch_op:
        batch_op.drop_column("draft_base_version")
        batch_op.drop_column("draft_updated_at")
        batch_op.drop_column("draft_author")
        batch_op.drop_column("draft_message")
        batch_op.drop_column("draft")
    op.drop_table("flow_versions")
