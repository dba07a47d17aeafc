from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stayflow.db import Base, BigIntPK, utcnow
from stayflow.events.models import Event

APPLY_OFFER = "apply_offer"
CANCEL = "cancel"
KINDS = (APPLY_OFFER, CANCEL)

PENDING = "pending"  # written, not yet applied (the job retries)
APPLIED = "applied"  # done in the billing provider; ``result`` holds the state read back
SKIPPED = "skipped"  # nothing sent: the use case is off or the app has no connection
FAILED = "failed"  # could not be applied (Stripe refused, or retries ran out)
STATUSES = (PENDING, APPLIED, SKIPPED, FAILED)


class BillingAction(Base):
    """What one cancel session asked of the billing provider, and what came of it.

    One row per (session, kind). ``plan`` is frozen at the first attempt (e.g. a pause's
    ``resumes_at``), so every retry sends the very same parameters under the same
    Idempotency-Key, and "is it already applied?" is a comparison with the plan.
    """

    __tablename__ = "billing_actions"
    __table_args__ = (
        UniqueConstraint("session_id", "kind", name="uq_billing_actions_session_kind"),
        Index("ix_billing_actions_app_pk_status", "app_pk", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    subscription_id: Mapped[str] = mapped_column(String(255))
    offer_id: Mapped[str | None] = mapped_column(String(100), default=None)
    offer_type: Mapped[str | None] = mapped_column(String(30), default=None)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"subscriptions": {sub_id: {status, pause_collection, discounts, prices, cancel_at, ...}}}
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


# The event log outgrew billing: its model lives in ``stayflow.events`` (same table).
BillingEvent = Event
