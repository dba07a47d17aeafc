from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.cancel_sessions.models import ABANDONED, CancelSession


def get_by_token_hash(db: Session, token_hash: str) -> CancelSession | None:
    return db.scalar(select(CancelSession).where(CancelSession.token_hash == token_hash))


def get(db: Session, app: App, session_id: str) -> CancelSession | None:
    return db.scalar(
        select(CancelSession).where(
            CancelSession.app_pk == app.id, CancelSession.session_id == session_id
        )
    )


def list_sessions(
    db: Session,
    app: App,
    *,
    outcome: str | None,
    open_only: bool,
    created_after: datetime | None,
    created_before: datetime | None,
    before_pk: int | None,
    limit: int,
) -> Sequence[CancelSession]:
    query = select(CancelSession).where(CancelSession.app_pk == app.id)
    if outcome is not None:
        query = query.where(CancelSession.outcome == outcome)
    if open_only:
        query = query.where(CancelSession.outcome.is_(None))
    if created_after is not None:
        query = query.where(CancelSession.created_at >= created_after)
    if created_before is not None:
        query = query.where(CancelSession.created_at < created_before)
    if before_pk is not None:
        query = query.where(CancelSession.id < before_pk)
    return db.scalars(query.order_by(CancelSession.id.desc()).limit(limit)).all()


def mark_abandoned(db: Session, now: datetime, batch: int) -> int:
    due = (
        select(CancelSession.id)
        .where(CancelSession.outcome.is_(None), CancelSession.abandon_at <= now)
        .order_by(CancelSession.abandon_at)
        .limit(batch)
        .scalar_subquery()
    )
    result = db.execute(
        update(CancelSession)
        .where(CancelSession.id.in_(due), CancelSession.outcome.is_(None))
        .values(outcome=ABANDONED, outcome_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def search_sessions(
    db: Session,
    app: App,
    *,
    outcome: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    subscription_id: str | None,
    customer_id: str | None,
    limit: int,
) -> Sequence[CancelSession]:
    """The admin web app's session list (newest first); outcome ``open`` means none yet."""
    query = select(CancelSession).where(CancelSession.app_pk == app.id)
    if outcome == "open":
        query = query.where(CancelSession.outcome.is_(None))
    elif outcome is not None:
        query = query.where(CancelSession.outcome == outcome)
    if created_after is not None:
        query = query.where(CancelSession.created_at >= created_after)
    if created_before is not None:
        query = query.where(CancelSession.created_at < created_before)
    if subscription_id:
        query = query.where(CancelSession.subscription_id == subscription_id)
    if customer_id:
        query = query.where(
            CancelSession.enriched_fields["subscription.customer.id"].as_string() == customer_id
        )
    return db.scalars(query.order_by(CancelSession.id.desc()).limit(limit)).all()


def count_by_outcome(db: Session, app: App, since: datetime) -> dict[str | None, int]:
    """Sessions created since ``since`` per outcome (None: still open)."""
    rows = db.execute(
        select(CancelSession.outcome, func.count())
        .where(CancelSession.app_pk == app.id, CancelSession.created_at >= since)
        .group_by(CancelSession.outcome)
    ).all()
    return {outcome: int(count) for outcome, count in rows}


def filter_sessions(
    db: Session,
    app: App,
    *,
    outcome: str | None = None,
    reason_id: str | None = None,
    offer_id: str | None = None,
    experience_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    email: str | None = None,
    before_pk: int | None = None,
    limit: int = 50,
) -> Sequence[CancelSession]:
    """The admin web app's filtered session list, newest first, a page at a time.

    ``outcome`` ``open`` means none yet; ``email`` matches the customer's email read from
    Stripe or the one the snippet sent (case-insensitive); ``before_pk`` is the keyset
    cursor (the last row of the previous page).
    """
    query = select(CancelSession).where(CancelSession.app_pk == app.id)
    if outcome == "open":
        query = query.where(CancelSession.outcome.is_(None))
    elif outcome is not None:
        query = query.where(CancelSession.outcome == outcome)
    if reason_id:
        query = query.where(CancelSession.reason_id == reason_id)
    if offer_id:
        query = query.where(CancelSession.offer_accepted_id == offer_id)
    if experience_id:
        query = query.where(CancelSession.experience_id == experience_id)
    if created_after is not None:
        query = query.where(CancelSession.created_at >= created_after)
    if created_before is not None:
        query = query.where(CancelSession.created_at < created_before)
    if subscription_id:
        query = query.where(CancelSession.subscription_id == subscription_id)
    if customer_id:
        query = query.where(
            CancelSession.enriched_fields["subscription.customer.id"].as_string() == customer_id
        )
    if email:
        wanted = email.strip().lower()
        query = query.where(
            or_(
                func.lower(CancelSession.enriched_fields["subscription.customer.email"].as_string())
                == wanted,
                func.lower(CancelSession.request_fields["email"].as_string()) == wanted,
            )
        )
    if before_pk is not None:
        query = query.where(CancelSession.id < before_pk)
    return db.scalars(query.order_by(CancelSession.id.desc()).limit(limit)).all()
