"""The local copy of an app's Stripe subscriptions (and the customers and products they show).

Each row keeps the key columns stayflow filters on and the raw Stripe object. ``version``
is the Stripe time (epoch seconds) of the data: an event's ``created``, or the moment a
live read or backfill saw it; a row only ever moves forward in version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow


class StripeEvent(Base):
    """Every Stripe event received, once (unique per app and event id)."""

    __tablename__ = "stripe_events"
    __table_args__ = (UniqueConstraint("app_pk", "event_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(100), default=None)
    stripe_created: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(40), default=None)


class MirrorSubscription(Base):
    __tablename__ = "mirror_subscriptions"
    __table_args__ = (
        UniqueConstraint("app_pk", "subscription_id"),
        Index("ix_mirror_subscriptions_app_customer", "app_pk", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    subscription_id: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(40))
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    current_period_end: Mapped[datetime | None] = mapped_column(default=None)
    currency: Mapped[str | None] = mapped_column(String(10), default=None)
    livemode: Mapped[bool] = mapped_column(default=False)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(20))
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class MirrorCustomer(Base):
    __tablename__ = "mirror_customers"
    __table_args__ = (UniqueConstraint("app_pk", "customer_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class MirrorProduct(Base):
    __tablename__ = "mirror_products"
    __table_args__ = (UniqueConstraint("app_pk", "product_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(500), default=None)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class MirrorBackfill(Base):
    """Where an app's backfill is: resumable from ``cursor`` (the last subscription id stored)."""

    __tablename__ = "mirror_backfills"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    cursor: Mapped[str | None] = mapped_column(String(100), default=None)
    pages: Mapped[int] = mapped_column(default=0)
    subscriptions: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
