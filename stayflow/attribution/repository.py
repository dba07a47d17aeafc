"""Every attribution query; always by app."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from stayflow.attribution.models import (
    OPEN_STATUSES,
    PENDING,
    AttributionState,
    AttributionWatch,
    ExchangeRate,
    MirrorInvoice,
)
from stayflow.cancel_sessions.models import CANCELED, DEFLECTED, SAVED, CancelSession
from stayflow.db import utcnow
from stayflow.mirror import repository as mirror_repository
from stayflow.mirror.models import MirrorCustomer, MirrorSubscription

WATCHED_OUTCOMES = (SAVED, DEFLECTED, CANCELED)


def get_state(db: Session, app_pk: int) -> AttributionState | None:
    return db.scalar(
        select(AttributionState)
        .where(AttributionState.app_pk == app_pk)
        .execution_options(populate_existing=True)
    )


def get_or_create_state(db: Session, app_pk: int) -> AttributionState:
    state = get_state(db, app_pk)
    if state is None:
        state = AttributionState(app_pk=app_pk, window_days=30, last_sync_requests=0)
        db.add(state)
        db.flush()
    return state


def sessions_to_enroll(db: Session, app_pk: int, limit: int) -> Sequence[CancelSession]:
    """Finished sessions with an outcome worth watching that are not on the watch list yet."""
    watched = exists().where(AttributionWatch.session_id == CancelSession.session_id)
    return db.scalars(
        select(CancelSession)
        .where(
            CancelSession.app_pk == app_pk,
            CancelSession.outcome.in_(WATCHED_OUTCOMES),
            CancelSession.outcome_at.is_not(None),
            ~watched,
        )
        .order_by(CancelSession.id)
        .limit(limit)
    ).all()


def unseen_subscriptions(db: Session, app_pk: int, limit: int) -> list[str]:
    """Subscriptions of open watches the mirror has never seen."""
    seen = exists().where(
        MirrorSubscription.app_pk == AttributionWatch.app_pk,
        MirrorSubscription.subscription_id == AttributionWatch.subscription_id,
    )
    rows = db.scalars(
        select(AttributionWatch.subscription_id)
        .where(
            AttributionWatch.app_pk == app_pk,
            AttributionWatch.status.in_((PENDING,)),
            AttributionWatch.judged_at.is_(None),
            ~seen,
        )
        .distinct()
        .limit(limit)
    ).all()
    return list(rows)


def watched_with_unexpanded_discounts(db: Session, app_pk: int, since: datetime) -> list[str]:
    """Watched subscriptions whose mirror row names a discount only by id (changed since)."""
    rows = db.execute(
        select(MirrorSubscription.subscription_id, MirrorSubscription.raw)
        .join(
            AttributionWatch,
            and_(
                AttributionWatch.app_pk == MirrorSubscription.app_pk,
                AttributionWatch.subscription_id == MirrorSubscription.subscription_id,
            ),
        )
        .where(
            MirrorSubscription.app_pk == app_pk,
            MirrorSubscription.synced_at > since,
            AttributionWatch.status.in_(OPEN_STATUSES),
        )
    ).all()
    found = [
        sub_id
        for sub_id, raw in rows
        if any(isinstance(d, str) for d in (raw or {}).get("discounts") or [])
    ]
    return sorted(set(found))


def earliest_open_session(db: Session, app_pk: int) -> datetime | None:
    found: datetime | None = db.scalar(
        select(func.min(AttributionWatch.session_at)).where(
            AttributionWatch.app_pk == app_pk, AttributionWatch.status.in_(OPEN_STATUSES)
        )
    )
    return found


def watches_to_judge(
    db: Session, app_pk: int, now: datetime, changed_since: datetime | None
) -> Sequence[AttributionWatch]:
    """Never judged, window ended while pending, or their data changed since the last pass."""
    conditions: list[Any] = [
        AttributionWatch.judged_at.is_(None),
        and_(AttributionWatch.status == PENDING, AttributionWatch.window_ends_at <= now),
    ]
    if changed_since is not None:
        changed_subs = select(MirrorSubscription.subscription_id).where(
            MirrorSubscription.app_pk == app_pk, MirrorSubscription.synced_at > changed_since
        )
        changed_customers = select(MirrorSubscription.customer_id).where(
            MirrorSubscription.app_pk == app_pk, MirrorSubscription.synced_at > changed_since
        )
        changed_customer_rows = select(MirrorCustomer.customer_id).where(
            MirrorCustomer.app_pk == app_pk, MirrorCustomer.synced_at > changed_since
        )
        changed_invoices = select(MirrorInvoice.subscription_id).where(
            MirrorInvoice.app_pk == app_pk, MirrorInvoice.synced_at > changed_since
        )
        conditions += [
            AttributionWatch.subscription_id.in_(changed_subs),
            AttributionWatch.subscription_id.in_(changed_invoices),
            AttributionWatch.customer_id.in_(changed_customers),
            AttributionWatch.customer_id.in_(changed_customer_rows),
        ]
    return db.scalars(
        select(AttributionWatch)
        .where(
            AttributionWatch.app_pk == app_pk,
            AttributionWatch.status.in_(OPEN_STATUSES),
            or_(*conditions),
        )
        .order_by(AttributionWatch.id)
    ).all()


def mirror_rows(db: Session, app_pk: int, subscription_ids: list[str]) -> dict[str, Any]:
    if not subscription_ids:
        return {}
    rows = db.scalars(
        select(MirrorSubscription)
        .where(
            MirrorSubscription.app_pk == app_pk,
            MirrorSubscription.subscription_id.in_(subscription_ids),
        )
        .execution_options(populate_existing=True)
    ).all()
    return {row.subscription_id: row for row in rows}


def mirror_versions(db: Session, app_pk: int, subscription_ids: list[str]) -> dict[str, int]:
    if not subscription_ids:
        return {}
    rows = db.execute(
        select(MirrorSubscription.subscription_id, MirrorSubscription.version).where(
            MirrorSubscription.app_pk == app_pk,
            MirrorSubscription.subscription_id.in_(subscription_ids),
        )
    ).all()
    return {sub_id: int(version) for sub_id, version in rows}


def customer_raw(db: Session, app_pk: int, customer_id: str | None) -> dict[str, Any] | None:
    if not customer_id:
        return None
    row = mirror_repository.get_customer(db, app_pk, customer_id)
    return row.raw if row is not None else None


def customer_subscriptions(
    db: Session, app_pk: int, customer_id: str
) -> Sequence[MirrorSubscription]:
    return db.scalars(
        select(MirrorSubscription).where(
            MirrorSubscription.app_pk == app_pk, MirrorSubscription.customer_id == customer_id
        )
    ).all()


def invoices_of(db: Session, app_pk: int, subscription_id: str) -> Sequence[MirrorInvoice]:
    return db.scalars(
        select(MirrorInvoice).where(
            MirrorInvoice.app_pk == app_pk, MirrorInvoice.subscription_id == subscription_id
        )
    ).all()


def invoices_of_many(
    db: Session, app_pk: int, subscription_ids: list[str]
) -> Sequence[MirrorInvoice]:
    if not subscription_ids:
        return []
    return db.scalars(
        select(MirrorInvoice).where(
            MirrorInvoice.app_pk == app_pk, MirrorInvoice.subscription_id.in_(subscription_ids)
        )
    ).all()


def customers_raw(db: Session, app_pk: int, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not customer_ids:
        return {}
    rows = db.execute(
        select(MirrorCustomer.customer_id, MirrorCustomer.raw).where(
            MirrorCustomer.app_pk == app_pk, MirrorCustomer.customer_id.in_(customer_ids)
        )
    ).all()
    return {customer_id: raw for customer_id, raw in rows}


def upsert_invoices(db: Session, rows: list[dict[str, Any]]) -> int:
    """Insert or move invoices forward (newer ``version`` only); one row per invoice id."""
    if not rows:
        return 0
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = latest.get(row["invoice_id"])
        if kept is None or row["version"] >= kept["version"]:
            latest[row["invoice_id"]] = row
    stmt = mirror_repository._insert(db, MirrorInvoice).values(list(latest.values()))
    excluded = stmt.excluded
    columns = (
        "subscription_id",
        "customer_id",
        "status",
        "currency",
        "amount_due",
        "amount_paid",
        "paid_at",
        "version",
        "synced_at",
    )
    written = db.execute(
        stmt.on_conflict_do_update(
            index_elements=["app_pk", "invoice_id"],
            set_={name: getattr(excluded, name) for name in columns},
            where=MirrorInvoice.version <= excluded.version,
        )
        .returning(MirrorInvoice.id)
        .execution_options(synchronize_session=False)
    ).all()
    return len(written)


def invoice_values(app_pk: int, invoice: Any, *, version: int) -> dict[str, Any]:
    return {
        "app_pk": app_pk,
        "invoice_id": invoice.id[:100],
        "subscription_id": invoice.subscription_id,
        "customer_id": invoice.customer_id,
        "status": invoice.status[:20],
        "currency": invoice.currency,
        "amount_due": invoice.amount_due,
        "amount_paid": invoice.amount_paid,
        "stripe_created": invoice.created,
        "paid_at": invoice.paid_at,
        "version": version,
        "synced_at": utcnow(),
    }


def list_watches(
    db: Session,
    app_pk: int,
    *,
    status: str | None = None,
    outcome: str | None = None,
    currency: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[AttributionWatch]:
    query = select(AttributionWatch).where(AttributionWatch.app_pk == app_pk)
    if status is not None:
        query = query.where(AttributionWatch.status == status)
    if outcome is not None:
        query = query.where(AttributionWatch.outcome == outcome)
    if currency is not None:
        query = query.where(AttributionWatch.currency == currency.lower())
    if since is not None:
        query = query.where(AttributionWatch.session_at >= since)
    if until is not None:
        query = query.where(AttributionWatch.session_at < until)
    if before_id is not None:
        query = query.where(AttributionWatch.id < before_id)
    return db.scalars(query.order_by(AttributionWatch.id.desc()).limit(limit)).all()


def watch_totals(
    db: Session, app_pk: int, since: datetime | None, until: datetime | None
) -> list[Any]:
    """Per (currency, outcome, status): count and sums, in one grouped query."""
    query = select(
        AttributionWatch.currency,
        AttributionWatch.outcome,
        AttributionWatch.status,
        func.count(),
        func.coalesce(func.sum(AttributionWatch.mrr_at_session), 0),
        func.coalesce(func.sum(AttributionWatch.mrr_kept), 0),
        func.coalesce(func.sum(AttributionWatch.mrr_lost), 0),
        func.coalesce(func.sum(AttributionWatch.cash_collected), 0),
    ).where(AttributionWatch.app_pk == app_pk)
    if since is not None:
        query = query.where(AttributionWatch.session_at >= since)
    if until is not None:
        query = query.where(AttributionWatch.session_at < until)
    query = query.group_by(
        AttributionWatch.currency, AttributionWatch.outcome, AttributionWatch.status
    )
    return list(db.execute(query).all())


def abandoned_count(
    db: Session, app_pk: int, since: datetime | None, until: datetime | None
) -> int:
    query = select(func.count()).where(
        CancelSession.app_pk == app_pk, CancelSession.outcome == "abandoned"
    )
    if since is not None:
        query = query.where(CancelSession.created_at >= since)
    if until is not None:
        query = query.where(CancelSession.created_at < until)
    return int(db.scalar(query) or 0)


def rates(db: Session, app_pk: int, on: date) -> dict[str, ExchangeRate]:
    """Per currency, the newest rate valid on ``on``."""
    rows = db.scalars(
        select(ExchangeRate)
        .where(ExchangeRate.app_pk == app_pk, ExchangeRate.valid_from <= on)
        .order_by(ExchangeRate.valid_from)
    ).all()
    return {row.currency: row for row in rows}


def all_rates(db: Session, app_pk: int) -> Sequence[ExchangeRate]:
    return db.scalars(
        select(ExchangeRate)
        .where(ExchangeRate.app_pk == app_pk)
        .order_by(ExchangeRate.currency, ExchangeRate.valid_from)
    ).all()
