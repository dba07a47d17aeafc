"""Attribution: the watch list (one row per finished session), the invoices it counts cash
from, each app's sync state and settings, and the business's dated exchange rates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow
from stayflow.mirror.models import MirrorCustomer, MirrorSubscription

# Statuses of a watched session.
PENDING = "pending"  # a save inside its window, or a cancel Stripe does not show yet
VALIDATED = "validated"  # a save that kept paying to the end of its window
LAPSED = "lapsed"  # a save that canceled / went unpaid inside its window (date and cause)
UNMATCHED = "unmatched"  # Stripe does not know the subscription (``cause`` says why)
CONFIRMED = "confirmed"  # a cancel Stripe shows canceled or cancelling
REACTIVATED = "reactivated"  # a confirmed cancel whose customer paid again within 90 days
STATUSES = (PENDING, VALIDATED, LAPSED, UNMATCHED, CONFIRMED, REACTIVATED)
# Statuses that may still change, re-judged when their subscription's data changes.
OPEN_STATUSES = (PENDING, UNMATCHED, CONFIRMED, VALIDATED)


class AttributionWatch(Base):
    """A saved, deflected or canceled session and what Stripe has shown of it since."""

    __tablename__ = "attribution_watches"
    __table_args__ = (
        UniqueConstraint("session_id", name="uq_attribution_watches_session_id"),
        Index("ix_attribution_watches_app_subscription", "app_pk", "subscription_id"),
        Index("ix_attribution_watches_app_customer", "app_pk", "customer_id"),
        Index("ix_attribution_watches_app_status_window", "app_pk", "status", "window_ends_at"),
        Index("ix_attribution_watches_app_session_at", "app_pk", "session_at"),
        Index("ix_attribution_watches_app_judged_at", "app_pk", "judged_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(100), default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    offer_id: Mapped[str | None] = mapped_column(String(100), default=None)
    offer_type: Mapped[str | None] = mapped_column(String(30), default=None)
    session_at: Mapped[datetime] = mapped_column()
    window_days: Mapped[int] = mapped_column()
    window_ends_at: Mapped[datetime] = mapped_column()
    # What the session's enrichment saw before the offer (items, first discount), if anything.
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    status_at: Mapped[datetime | None] = mapped_column(default=None)
    cause: Mapped[str | None] = mapped_column(Text, default=None)
    currency: Mapped[str | None] = mapped_column(String(10), default=None)
    # Integer minor units of ``currency``; None until the subscription has been seen.
    mrr_at_session: Mapped[int | None] = mapped_column(BigInteger, default=None)
    mrr_kept: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_lost: Mapped[int] = mapped_column(BigInteger, default=0)
    cash_collected: Mapped[int] = mapped_column(BigInteger, default=0)
    reactivated_subscription_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # Wall-clock time of the last judgement (compared with the mirror's ``synced_at``).
    judged_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MirrorInvoice(Base):
    """The few fields of a Stripe invoice attribution needs (cash collected, dues unpaid)."""

    __tablename__ = "mirror_invoices"
    __table_args__ = (
        UniqueConstraint("app_pk", "invoice_id", name="uq_mirror_invoices_app_invoice"),
        Index("ix_mirror_invoices_app_subscription", "app_pk", "subscription_id"),
        Index("ix_mirror_invoices_app_synced_at", "app_pk", "synced_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    invoice_id: Mapped[str] = mapped_column(String(100))
    subscription_id: Mapped[str | None] = mapped_column(String(255), default=None)
    customer_id: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str | None] = mapped_column(String(10), default=None)
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    # Epoch seconds, as Stripe has them.
    stripe_created: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    version: Mapped[int] = mapped_column(BigInteger)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttributionState(Base):
    """Per app: the validation window, the events cursor and what the last sync did."""

    __tablename__ = "attribution_state"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    window_days: Mapped[int] = mapped_column(default=30)
    # The ``created`` (epoch seconds) of the newest Stripe event read; None before any sync.
    events_cursor: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sync_outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    last_sync_mode: Mapped[str | None] = mapped_column(String(20), default=None)
    last_sync_requests: Mapped[int] = mapped_column(default=0)
    last_sync_error: Mapped[str | None] = mapped_column(Text, default=None)
    # The last ``stripe_events.id`` (webhooks) whose invoice was copied into mirror_invoices.
    webhook_events_through: Mapped[int] = mapped_column(BigInteger, default=0)
    # Mirror rows written after this (wall clock) have not been judged yet.
    judged_through: Mapped[datetime | None] = mapped_column(default=None)
    # Customers stored since (wall clock, like ``synced_at``) are looked at for coupons named
    # only by id; the scan is indexed by (app_pk, synced_at), not over every customer.
    coupons_checked_through: Mapped[datetime | None] = mapped_column(default=None)


class ExchangeRate(Base):
    """A rate the business set: 1 ``currency`` = ``rate`` ``base_currency``, from ``valid_from``."""

    __tablename__ = "attribution_rates"
    __table_args__ = (
        UniqueConstraint(
            "app_pk", "currency", "valid_from", name="uq_attribution_rates_app_currency_day"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(10))
    base_currency: Mapped[str] = mapped_column(String(10))
    # A decimal in major units, written as text (exact); minor units use each currency's
    # exponent (JPY 0, USD 2, KWD 3).
    rate: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[date] = mapped_column(Date)


# What changed since the last judging pass is found by ``synced_at`` on the mirror's tables.
Index(
    "ix_mirror_subscriptions_app_synced_at", MirrorSubscription.app_pk, MirrorSubscription.synced_at
)
Index("ix_mirror_customers_app_synced_at", MirrorCustomer.app_pk, MirrorCustomer.synced_at)
