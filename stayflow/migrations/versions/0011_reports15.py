"""reports: facts, rollups, offer rollups, dirty sessions, counting rules

Revision ID: 0011_reports15
Revises: 0011_flows14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0011_reports15"
down_revision: str | None = "0011_modal16"
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


def upgrade() -> None:
    op.create_table(
        "report_facts",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("session_pk", PK, nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(10), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason_id", sa.String(100), nullable=False),
        sa.Column("offer_id", sa.String(100), nullable=False),
        sa.Column("offers_shown", sa.Text(), nullable=False),
        sa.Column("experience_id", sa.String(100), nullable=False),
        sa.Column("experiment_id", sa.String(100), nullable=False),
        sa.Column("variant_id", sa.String(100), nullable=False),
        sa.Column("audience_id", sa.String(100), nullable=False),
        sa.Column("plan", sa.String(255), nullable=False),
        sa.Column("interval", sa.String(20), nullable=False),
        sa.Column("account_age", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mrr_kept", sa.BigInteger(), nullable=False),
        sa.Column("mrr_lost", sa.BigInteger(), nullable=False),
        sa.Column("cash", sa.BigInteger(), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        _app_fk("report_facts"),
        sa.ForeignKeyConstraint(
            ["session_pk"],
            ["cancel_sessions.id"],
            name=op.f("fk_report_facts_session_pk_cancel_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_facts")),
        sa.UniqueConstraint("session_pk", name="uq_report_facts_session_pk"),
    )
    op.create_index("ix_report_facts_app_day", "report_facts", ["app_pk", "day"])
    op.create_index(
        "ix_report_facts_app_subscription", "report_facts", ["app_pk", "subscription_id"]
    )
    op.create_index(
        "ix_report_facts_app_experiment",
        "report_facts",
        ["app_pk", "experiment_id", "variant_id"],
    )
    op.create_table(
        "report_rollups",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(10), nullable=False),
        sa.Column("dimension", sa.String(20), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        *[sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS],
        _app_fk("report_rollups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_rollups")),
        sa.UniqueConstraint(
            "app_pk", "dimension", "day", "currency", "value", name="uq_report_rollups_key"
        ),
    )
    op.create_table(
        "report_offer_rollups",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(10), nullable=False),
        sa.Column("offer_id", sa.String(100), nullable=False),
        sa.Column("shown", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("mrr_kept", sa.BigInteger(), nullable=False),
        _app_fk("report_offer_rollups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_offer_rollups")),
        sa.UniqueConstraint(
            "app_pk", "day", "currency", "offer_id", name="uq_report_offer_rollups_key"
        ),
    )
    op.create_table(
        "report_dirty",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        _app_fk("report_dirty"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_dirty")),
    )
    op.create_index("ix_report_dirty_app_pk_id", "report_dirty", ["app_pk", "id"])
    op.create_table(
        "report_settings",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("app_pk", PK, nullable=False),
        sa.Column("dedup_days", sa.Integer(), nullable=False),
        sa.Column("blocked_domains", JSON, nullable=False),
        sa.Column("test_accounts", JSON, nullable=False),
        sa.Column("rebuild_requested", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        _app_fk("report_settings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_settings")),
        sa.UniqueConstraint("app_pk", name=op.f("uq_report_settings_app_pk")),
    )


def downgrade() -> None:
    op.drop_table("report_settings")
    op.drop_index("ix_report_dirty_app_pk_id", table_name="report_dirty")
    op.drop_table("report_dirty")
    op.drop_table("report_offer_rollups")
    op.drop_table("report_rollups")
    op.drop_index("ix_report_facts_app_experiment", table_name="report_facts")
    op.drop_index("ix_report_facts_app_subscription", table_name="report_facts")
    op.drop_index("ix_report_facts_app_day", table_name="report_facts")
    op.drop_table("report_facts")
