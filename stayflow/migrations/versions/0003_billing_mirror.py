"""billing connections, field mappings, stripe mirror

Revision ID: 0003_billing_mirror
Revises: 0002_cancel_flow
Create Date: 2026-11-25 09:23:09.421030
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import stayflow.db

revision: str = "0003_billing_mirror"
down_revision: str | None = "0002_cancel_flow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_connections",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("key_kind", sa.String(length=20), nullable=True),
        sa.Column("account_id", sa.String(length=100), nullable=True),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("checked_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("connected_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("webhook_endpoint_id", sa.String(length=100), nullable=True),
        sa.Column("webhook_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("webhook_managed", sa.Boolean(), nullable=False),
        sa.Column("webhook_configured_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "setup",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"],
            ["apps.id"],
            name=op.f("fk_billing_connections_app_pk_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_connections")),
        sa.UniqueConstraint("app_pk", name=op.f("uq_billing_connections_app_pk")),
    )
    op.create_table(
        "field_mappings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("currency_source", sa.String(length=300), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_field_mappings_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_mappings")),
        sa.UniqueConstraint("app_pk", "field", name=op.f("uq_field_mappings_app_pk")),
    )
    with op.batch_alter_table("field_mappings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_field_mappings_app_pk"), ["app_pk"], unique=False)

    op.create_table(
        "mirror_backfills",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cursor", sa.String(length=100), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("subscriptions", sa.Integer(), nullable=False),
        sa.Column("started_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_pk"],
            ["apps.id"],
            name=op.f("fk_mirror_backfills_app_pk_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_backfills")),
        sa.UniqueConstraint("app_pk", name=op.f("uq_mirror_backfills_app_pk")),
    )
    op.create_table(
        "mirror_customers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"],
            ["apps.id"],
            name=op.f("fk_mirror_customers_app_pk_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_customers")),
        sa.UniqueConstraint("app_pk", "customer_id", name=op.f("uq_mirror_customers_app_pk")),
    )
    op.create_table(
        "mirror_products",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_mirror_products_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_products")),
        sa.UniqueConstraint("app_pk", "product_id", name=op.f("uq_mirror_products_app_pk")),
    )
    op.create_table(
        "mirror_subscriptions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("current_period_end", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("currency", sa.String(length=10), nullable=True),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("synced_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_pk"],
            ["apps.id"],
            name=op.f("fk_mirror_subscriptions_app_pk_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_subscriptions")),
        sa.UniqueConstraint(
            "app_pk", "subscription_id", name=op.f("uq_mirror_subscriptions_app_pk")
        ),
    )
    with op.batch_alter_table("mirror_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mirror_subscriptions_app_customer", ["app_pk", "customer_id"], unique=False
        )

    op.create_table(
        "stripe_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=100), nullable=True),
        sa.Column("stripe_created", sa.BigInteger(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", stayflow.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", stayflow.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_pk"], ["apps.id"], name=op.f("fk_stripe_events_app_pk_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("app_pk", "event_id", name=op.f("uq_stripe_events_app_pk")),
    )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stripe_events_app_pk"), ["app_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stripe_events_app_pk"))

    op.drop_table("stripe_events")
    with op.batch_alter_table("mirror_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_mirror_subscriptions_app_customer")

    op.drop_table("mirror_subscriptions")
    op.drop_table("mirror_products")
    op.drop_table("mirror_customers")
    op.drop_table("mirror_backfills")
    with op.batch_alter_table("field_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_field_mappings_app_pk"))

    op.drop_table("field_mappings")
    op.drop_table("billing_connections")
