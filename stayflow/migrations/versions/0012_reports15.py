"""reports: rollups per filter (filter_dim, filter_value), so a filtered view reads rollups;
an index of the sessions that have a comment

Revision ID: 0012_reports15
Revises: 0011_attr12

The rollups are derived data: both tables are made again with the filter in their key and
every app with facts is marked for a rebuild, which the next ``reports.refresh`` job (or
opening the reports page) runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC as UTC_ZONE
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0012_reports15"
down_revision: str | None = "0011_attr12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
UTC = stayflow.db.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
COUNTERS = (
    "sessions",
    "saves",
    "deflects",
    "cancels",
    "abandoned",
    "validated",
    "lapsed",
    "reactivations",
    "mrr_kept",
    "mrr_kept_sq",
    "mrr_lost",
    "cash",
)


def _app_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["app_pk"], ["apps.id"], name=op.f(f"fk_{table}_app_pk_apps"), ondelete="CASCADE"
    )


def _create(filtered: bool) -> None:
    rollup_key = ["app_pk", "dimension", "day", "currency", "value"]
    offer_key = ["app_pk", "day", "currency", "offer_id"]
    extra: list[sa.Column[str]] = []
    if filtered:
        rollup_key = ["app_pk", "filter_dim", "filter_value", "day", "dimension", "currency"]
        rollup_key.append("value")
        offer_key = ["app_pk", "filter_dim", "filter_value", "day", "currency", "offer_id"]
        extra = [
            sa.Column("filter_dim", sa.String(20), nullable=False),
            sa.Column("filter_value", sa.String(255), nullable=False),
        ]
    op.create_table(
        "report_rollups",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        *[sa.Column(c.name, c.type, nullable=False) for c in extra],
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(10), nullable=False),
        sa.Column("dimension", sa.String(20), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        *[sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS],
        _app_fk("report_rollups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_rollups")),
        sa.UniqueConstraint(*rollup_key, name="uq_report_rollups_key"),
    )
    op.create_table(
        "report_offer_rollups",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        *[sa.Column(c.name, c.type, nullable=False) for c in extra],
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(10), nullable=False),
        sa.Column("offer_id", sa.String(100), nullable=False),
        sa.Column("shown", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("mrr_kept", sa.BigInteger(), nullable=False),
        _app_fk("report_offer_rollups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_offer_rollups")),
        sa.UniqueConstraint(*offer_key, name="uq_report_offer_rollups_key"),
    )


def _rebuild_every_app() -> None:
    """The next refresh recounts every app that has facts (and so fills the new rollups)."""
    settings = sa.table(
        "report_settings",
        sa.column("app_pk", PK),
        sa.column("dedup_days", sa.Integer()),
        sa.column("blocked_domains", JSON),
        sa.column("test_accounts", JSON),
        sa.column("rebuild_requested", sa.Boolean()),
        sa.column("updated_at", UTC),
    )
    facts = sa.table("report_facts", sa.column("app_pk", PK))
    bind = op.get_bind()
    bind.execute(sa.update(settings).values(rebuild_requested=True))
    have = set(bind.scalars(sa.select(settings.c.app_pk)))
    missing = sorted(set(bind.scalars(sa.select(facts.c.app_pk).distinct())) - have)
    if missing:
        now = datetime.now(UTC_ZONE)
        bind.execute(
            sa.insert(settings),
            [
                {
                    "app_pk": pk,
                    "dedup_days": 60,
                    "blocked_domains": [],
                    "test_accounts": [],
                    "rebuild_requested": True,
                    "updated_at": now,
                }
                for pk in missing
            ],
        )


def upgrade() -> None:
    op.drop_table("report_offer_rollups")
    op.drop_table("report_rollups")
    _create(filtered=True)
    _rebuild_every_app()
    # The reports' comments walk only the sessions that have one.
    op.create_index(
        "ix_cancel_sessions_app_commented_at",
        "cancel_sessions",
        ["app_pk", "created_at"],
        postgresql_where=sa.text("reason_comment IS NOT NULL"),
        sqlite_where=sa.text("reason_comment IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_cancel_sessions_app_commented_at", table_name="cancel_sessions")
    op.drop_table("report_offer_rollups")
    op.drop_table("report_rollups")
    _create(filtered=False)
    _rebuild_every_app()
