"""Building cancel sessions for report tests without the page (the flow's own event
functions still run, so the reports' hooks are the real ones)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.cancel_sessions import events as session_events
from stayflow.cancel_sessions.models import CancelSession

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def app_pk(db: Session, app_id: str) -> int:
    found = db.scalar(select(App.id).where(App.app_id == app_id))
    assert found is not None
    return int(found)


def new_session(
    db: Session,
    app_pk: int,
    subscription_id: str,
    created_at: datetime,
    *,
    currency: str = "usd",
    plan: str = "Pro",
    interval: str = "month",
    email: str | None = None,
    customer_created: datetime | None = None,
    experience: str = "default",
    audience: str | None = None,
    experiment: str | None = None,
    variant: str | None = None,
    offers_shown: list[str] | None = None,
    amount: int = 1000,
) -> CancelSession:
    token = secrets.token_urlsafe(16)
    fields: dict[str, Any] = {
        "subscription.currency": currency,
        "subscription.plan.product.name": plan,
        "subscription.plan.interval": interval,
        "subscription.customer.id": "cus_" + subscription_id,
        "subscription.items.count": 1,
        "subscription.items.0.price.amount": amount,
        "subscription.items.0.price.interval": interval,
        "subscription.items.0.price.currency": currency,
    }
    if email:
        fields["subscription.customer.email"] = email
    if customer_created:
        fields["subscription.customer.created"] = int(customer_created.timestamp())
    exp: dict[str, Any] = {"id": experience}
    if audience:
        exp["audience"] = audience
    cs = CancelSession(
        session_id="cs_" + secrets.token_hex(8),
        app_pk=app_pk,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        subscription_id=subscription_id,
        request_fields={},
        signed_fields={},
        enriched_fields=fields,
        experience_id=experience,
        experiment_id=experiment,
        variant_id=variant,
        flow={
            "experience": exp,
            "reasons": [],
            "offers": [{"id": o, "type": "discount"} for o in offers_shown or []],
        },
        offers_shown=list(offers_shown or []),
        created_at=created_at,
        viewed_at=created_at,
        expires_at=created_at + timedelta(days=1),
        abandon_at=created_at + timedelta(hours=2),
    )
    db.add(cs)
    db.flush()
    session_events.session_created(db, cs)
    return cs


def finish(
    db: Session,
    cs: CancelSession,
    outcome: str,
    *,
    reason: str | None = None,
    comment: str | None = None,
    offer: str | None = None,
) -> None:
    """Give a session its outcome through the flow's own event functions."""
    at = cs.created_at + timedelta(minutes=5)
    cs.reason_id, cs.reason_comment = reason, comment
    cs.outcome, cs.outcome_at = outcome, at
    if outcome == "saved":
        assert offer is not None
        cs.offer_accepted_id = offer
        db.flush()
        session_events.session_saved(db, cs, at)
    elif outcome == "deflected":
        db.flush()
        session_events.session_deflected(db, cs, at)
    elif outcome == "canceled":
        db.flush()
        session_events.session_canceled(db, cs, at)
    else:
        db.flush()
        from stayflow.events import service as events_service

        events_service.emit_event(
            db, cs.app_pk, "session.abandoned", {"session_id": cs.session_id}, fan_out=False
        )
