"""The cancel flow's entries in the app's event log (``session.*``).

Kept apart from ``service.py`` so the flow's code calls one function per moment:

- ``session.created`` is written when the page is first opened (the experience is known
  by then), or, for a session never opened, when it is marked abandoned. Precancel's hot
  path (a batched INSERT in ``writer.py``) therefore writes nothing more.
- ``session.saved`` / ``session.deflected`` / ``session.canceled`` with the outcome.
- ``session.completed`` once the outcome is final and any billing work is settled: at once
  for outcomes with no billing work, else by ``billing.actions`` when it settles.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.cancel_sessions.models import ABANDONED, CANCELED, CancelSession
from stayflow.events import service as events_service
from stayflow.events.schemas import (
    BillingOutcome,
    Money,
    OfferRef,
    SessionAbandoned,
    SessionCanceled,
    SessionCompleted,
    SessionCreated,
    SessionDeflected,
    SessionSaved,
)
from stayflow.offers.schemas import BILLING_OFFER_TYPES

_MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


def _customer_id(cs: CancelSession) -> str | None:
    found = cs.enriched_fields.get("subscription.customer.id")
    return str(found) if found else None


def _offer(cs: CancelSession, offer_id: str | None) -> OfferRef | None:
    if offer_id is None:
        return None
    for offer in cs.flow.get("offers", []) or []:
        if isinstance(offer, Mapping) and offer.get("id") == offer_id:
            details = {k: v for k, v in offer.items() if k not in ("id", "type", "translations")}
            return OfferRef(id=offer_id, type=str(offer.get("type", "")), details=details)
    return OfferRef(id=offer_id, type="unknown")


def _text(*candidates: Any) -> str | None:
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _reason_label(cs: CancelSession) -> str | None:
    for reason in cs.flow.get("reasons", []) or []:
        if isinstance(reason, Mapping) and reason.get("id") == cs.reason_id:
            return _text(reason.get("label"))
    return None


def mrr_of(fields: Mapping[str, Any]) -> Money | None:
    """Monthly recurring revenue from the enriched price fields (None when unknown)."""
    total = 0.0
    currency: str | None = None
    count = int(fields.get("subscription.items.count") or 0)
    for index in range(count):
        prefix = f"subscription.items.{index}"
        amount = fields.get(f"{prefix}.price.amount")
        interval = fields.get(f"{prefix}.price.interval")
        every = fields.get(f"{prefix}.price.interval_count") or 1
        quantity = fields.get(f"{prefix}.quantity") or 1
        item_currency = fields.get(f"{prefix}.price.currency")
        if not isinstance(amount, int) or interval not in _MONTHS_PER or not item_currency:
            return None
        if currency is not None and item_currency != currency:
            return None
        currency = str(item_currency)
        total += amount * int(quantity) / (_MONTHS_PER[str(interval)] * int(every))
    if currency is None:
        return None
    return Money(amount=round(total), currency=currency)


def mrr_after(mrr: Money | None, offer: OfferRef | None, fields: Mapping[str, Any]) -> Money | None:
    """MRR once a discount applies, when its coupon is known from enrichment; else None."""
    if mrr is None or offer is None or offer.type != "discount":
        return None
    coupon = offer.details.get("coupon")
    if not coupon or fields.get("subscription.discount.coupon.id") != coupon:
        return None
    percent = fields.get("subscription.discount.coupon.percent_off")
    if isinstance(percent, int | float):
        return Money(amount=round(mrr.amount * (100 - percent) / 100), currency=mrr.currency)
    return None


def session_created(db: Session, cs: CancelSession) -> None:
    events_service.emit(
        db,
        cs.app_pk,
        SessionCreated(
            session_id=cs.session_id,
            subscription_id=cs.subscription_id,
            customer_id=_customer_id(cs),
            signed=cs.signed,
            created_at=cs.created_at,
            experience_id=cs.experience_id,
            experiment_id=cs.experiment_id,
            variant_id=cs.variant_id,
        ),
    )


def first_view(db: Session, cs: CancelSession, was_viewed: bool) -> None:
    """Called once the page assigned the session; writes ``session.created`` the first time."""
    if not was_viewed and cs.outcome != ABANDONED:
        session_created(db, cs)


def session_saved(db: Session, cs: CancelSession, now: datetime) -> None:
    offer = _offer(cs, cs.offer_accepted_id)
    assert offer is not None
    events_service.emit(
        db,
        cs.app_pk,
        SessionSaved(
            session_id=cs.session_id,
            subscription_id=cs.subscription_id,
            customer_id=_customer_id(cs),
            outcome=cs.outcome or "",
            offer=offer,
            reason_id=cs.reason_id,
            comment=cs.reason_comment,
            at=now,
        ),
    )
    if offer.type not in BILLING_OFFER_TYPES:
        session_completed(db, cs, None, now)


def session_deflected(db: Session, cs: CancelSession, now: datetime) -> None:
    events_service.emit(
        db,
        cs.app_pk,
        SessionDeflected(
            session_id=cs.session_id,
            subscription_id=cs.subscription_id,
            customer_id=_customer_id(cs),
            at=now,
        ),
    )
    session_completed(db, cs, None, now)


def session_canceled(db: Session, cs: CancelSession, now: datetime) -> None:
    events_service.emit(
        db,
        cs.app_pk,
        SessionCanceled(
            session_id=cs.session_id,
            subscription_id=cs.subscription_id,
            customer_id=_customer_id(cs),
            reason_id=cs.reason_id,
            reason_feedback=cs.reason_feedback,
            comment=cs.reason_comment,
            at=now,
        ),
    )


def session_completed(
    db: Session, cs: CancelSession, billing: BillingOutcome | None, now: datetime
) -> None:
    app = db.get(App, cs.app_pk)
    assert app is not None
    fields = cs.enriched_fields
    offer = _offer(cs, cs.offer_accepted_id) if cs.outcome != CANCELED else None
    mrr = mrr_of(fields)
    account = cs.request_fields.get("account")
    custom = cs.request_fields.get("custom")
    events_service.emit(
        db,
        cs.app_pk,
        SessionCompleted(
            app_id=app.app_id,
            session_id=cs.session_id,
            subscription_id=cs.subscription_id,
            customer_id=_customer_id(cs),
            outcome=cs.outcome or "",
            account=account if isinstance(account, dict) else {},
            custom=custom if isinstance(custom, dict) else {},
            mapped_fields=dict(fields),
            experience_id=cs.experience_id,
            experiment_id=cs.experiment_id,
            variant_id=cs.variant_id,
            customer_name=_text(
                fields.get("subscription.customer.name"),
                cs.request_fields.get("full_name"),
                " ".join(
                    str(cs.request_fields[k])
                    for k in ("first_name", "last_name")
                    if cs.request_fields.get(k)
                ),
            ),
            customer_email=_text(
                fields.get("subscription.customer.email"), cs.request_fields.get("email")
            ),
            plan_name=_text(
                fields.get("subscription.plan.product.name"),
                fields.get("subscription.plan.nickname"),
            ),
            reason_id=cs.reason_id,
            reason_label=_reason_label(cs),
            reason_feedback=cs.reason_feedback,
            comment=cs.reason_comment,
            offers_shown=list(cs.offers_shown or []),
            offer_accepted=offer,
            billing=billing,
            mrr=mrr,
            mrr_after_offer=mrr_after(mrr, offer, fields),
            created_at=cs.created_at,
            completed_at=now,
        ),
    )


def billing_settled(
    db: Session, session_id: str, action: str, status: str, error: str | None, now: datetime
) -> None:
    """Called by ``billing.actions`` when an offer or a cancel is applied, skipped or failed."""
    cs = db.scalar(select(CancelSession).where(CancelSession.session_id == session_id))
    if cs is None:
        return
    session_completed(db, cs, BillingOutcome(action=action, status=status, error=error), now)


def mark_abandoned(db: Session, now: datetime, batch: int) -> int:
    """Mark sessions nobody acted on in time; each gets ``session.abandoned``."""
    due = db.scalars(
        select(CancelSession)
        .where(CancelSession.outcome.is_(None), CancelSession.abandon_at <= now)
        .order_by(CancelSession.abandon_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    count = 0
    for cs in due:
        result = db.execute(
            update(CancelSession)
            .where(CancelSession.id == cs.id, CancelSession.outcome.is_(None))
            .values(outcome=ABANDONED, outcome_at=now)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            continue
        count += 1
        if cs.viewed_at is None:
            session_created(db, cs)
        events_service.emit(
            db,
            cs.app_pk,
            SessionAbandoned(
                session_id=cs.session_id,
                subscription_id=cs.subscription_id,
                customer_id=_customer_id(cs),
                created_at=cs.created_at,
                at=now,
            ),
        )
    return count
