"""Reports' tables: one fact per opened session, rollups per (app, day, currency, dimension),
offer rollups, the sessions waiting to be (re)counted, and each app's counting rules.

Only ``stayflow.reports.service`` writes them. Facts are what the rollups are summed from:
a fact's contribution is subtracted and the new one added whenever a session, its outcome or
its attribution status changes, so the rollups always equal a sum over the counted facts.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, JSONType, utcnow

# The counters every rollup row carries (and a fact contributes 0 or 1 / an amount to).
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
OFFER_COUNTERS = ("shown", "accepted", "mrr_kept")
DEFAULT_DEDUP_DAYS = 60


class ReportFact(Base):
    """One opened (or abandoned) cancel session as the reports count it."""

    __tablename__ = "report_facts"
    __table_args__ = (
        UniqueConstraint("session_pk", name="uq_report_facts_session_pk"),
        Index("ix_report_facts_app_day", "app_pk", "day"),
        Index("ix_report_facts_app_subscription", "app_pk", "subscription_id"),
        Index("ix_report_facts_app_experiment", "app_pk", "experiment_id", "variant_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    session_pk: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("cancel_sessions.id", ondelete="CASCADE")
    )
    session_id: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column()
    day: Mapped[date] = mapped_column(Date)
    # Lower-case ISO code; "" when the session's currency is not known.
    currency: Mapped[str] = mapped_column(String(10), default="")
    # saved / deflected / canceled / redirected / abandoned; "" while the session is open.
    outcome: Mapped[str] = mapped_column(String(16), default="")
    reason_id: Mapped[str] = mapped_column(String(100), default="")
    offer_id: Mapped[str] = mapped_column(String(100), default="")
    # ",a,b," so one LIKE finds a shown offer on both backends.
    offers_shown: Mapped[str] = mapped_column(Text, default=",")
    experience_id: Mapped[str] = mapped_column(String(100), default="")
    experiment_id: Mapped[str] = mapped_column(String(100), default="")
    variant_id: Mapped[str] = mapped_column(String(100), default="")
    audience_id: Mapped[str] = mapped_column(String(100), default="")
    plan: Mapped[str] = mapped_column(String(255), default="")
    interval: Mapped[str] = mapped_column(String(20), default="")
    account_age: Mapped[str] = mapped_column(String(20), default="")
    # The attribution watch's status ("" when not watched).
    status: Mapped[str] = mapped_column(String(16), default="")
    mrr_kept: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_lost: Mapped[int] = mapped_column(BigInteger, default=0)
    cash: Mapped[int] = mapped_column(BigInteger, default=0)
    # Left out of figures: a blocked email domain or a test account (the flow ran as usual).
    excluded: Mapped[bool] = mapped_column(default=False)
    # False when the same subscriber opened the flow again within the dedup window.
    counted: Mapped[bool] = mapped_column(default=True)


class ReportRollup(Base):
    """Sums of the counted, not excluded facts of one (app, filter, day, currency, dimension,
    value).

    ``filter_dim`` / ``filter_value`` say which facts are summed: ``""`` / ``""`` all of them,
    else only those matching one filter (``reason`` / ``too_expensive``: the facts with that
    reason; ``offer``: the facts shown that offer), so a view with one filter reads rollups
    too. The key starts with (app, filter, day): one range scan reads every dimension of a
    date range.
    """

    __tablename__ = "report_rollups"
    __table_args__ = (
        UniqueConstraint(
            "app_pk",
            "filter_dim",
            "filter_value",
            "day",
            "dimension",
            "currency",
            "value",
            name="uq_report_rollups_key",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    filter_dim: Mapped[str] = mapped_column(String(20), default="")
    filter_value: Mapped[str] = mapped_column(String(255), default="")
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(10))
    dimension: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(255))
    sessions: Mapped[int] = mapped_column(BigInteger, default=0)
    saves: Mapped[int] = mapped_column(BigInteger, default=0)
    deflects: Mapped[int] = mapped_column(BigInteger, default=0)
    cancels: Mapped[int] = mapped_column(BigInteger, default=0)
    abandoned: Mapped[int] = mapped_column(BigInteger, default=0)
    validated: Mapped[int] = mapped_column(BigInteger, default=0)
    lapsed: Mapped[int] = mapped_column(BigInteger, default=0)
    reactivations: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_kept: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sum of squares of each session's MRR kept: the variance for the revenue test.
    mrr_kept_sq: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_lost: Mapped[int] = mapped_column(BigInteger, default=0)
    cash: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportOfferRollup(Base):
    """Per (app, filter, day, currency, offer): times shown, accepted, and the MRR kept by
    it (the filter as in ``ReportRollup``)."""

    __tablename__ = "report_offer_rollups"
    __table_args__ = (
        UniqueConstraint(
            "app_pk",
            "filter_dim",
            "filter_value",
            "day",
            "currency",
            "offer_id",
            name="uq_report_offer_rollups_key",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    filter_dim: Mapped[str] = mapped_column(String(20), default="")
    filter_value: Mapped[str] = mapped_column(String(255), default="")
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(10))
    offer_id: Mapped[str] = mapped_column(String(100))
    shown: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_kept: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportDirty(Base):
    """A session whose facts must be recomputed; written in the transaction that changed it.

    Append-only (no unique key): the job deletes exactly the rows it read, so a change
    committed while it runs leaves its own row for the next run.
    """

    __tablename__ = "report_dirty"
    __table_args__ = (Index("ix_report_dirty_app_pk_id", "app_pk", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportSettings(Base):
    """Per app: the counting rules (documented in docs/reports.md)."""

    __tablename__ = "report_settings"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), unique=True)
    dedup_days: Mapped[int] = mapped_column(default=DEFAULT_DEDUP_DAYS)
    # Lower-case email domains whose sessions are left out of figures.
    blocked_domains: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Subscription ids, customer ids or email addresses of test accounts.
    test_accounts: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Set when the rules change: the next refresh recounts every session of the app.
    rebuild_requested: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def empty_counters() -> dict[str, Any]:
    return dict.fromkeys(COUNTERS, 0)
