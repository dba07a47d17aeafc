"""Every attribution query; always by app."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
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
from stayflow.mirror.models import MirrorCustomer, MirrorSubscription, StripeEvent

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


def never_judged(db: Session, app_pk: int, subscription_id: str) -> Sequence[AttributionWatch]:
    return db.scalars(
        select(AttributionWatch).where(
            AttributionWatch.app_pk == app_pk,
            AttributionWatch.subscription_id == subscription_id,
            AttributionWatch.judged_at.is_(None),
        )
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
            AttributionWatch.judged_at.is_(None),  # never judged: pending, never seen
            ~seen,
        )
        .distinct()
        .limit(limit)
    ).all()
    return list(rows)


def watched_customers(db: Session, app_pk: int, customer_ids: list[str]) -> set[str]:
    """Those of these customers that own the mirrored subscription of an open watch."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(customer_ids))):
        found.update(
            db.scalars(
                select(MirrorSubscription.customer_id)
                .join(
                    AttributionWatch,
                    and_(
                        AttributionWatch.app_pk == MirrorSubscription.app_pk,
                        AttributionWatch.subscription_id == MirrorSubscription.subscription_id,
                    ),
                )
                .where(
                    MirrorSubscription.app_pk == app_pk,
                    MirrorSubscription.customer_id.in_(chunk),
                    AttributionWatch.status.in_(OPEN_STATUSES),
                )
                .distinct()
            ).all()
        )
    return found


def watched_with_unexpanded_discounts(db: Session, app_pk: int, since: datetime) -> list[str]:
    """Watched subscriptions whose mirror row (changed since) names a discount only by id."""
    rows = db.execute(
        select(MirrorSubscription.subscription_id, MirrorSubscription.raw).where(
            MirrorSubscription.app_pk == app_pk, MirrorSubscription.synced_at > since
        )
    ).all()
    named = sorted(
        sub_id
        for sub_id, raw in rows
        if any(isinstance(d, str) for d in (raw or {}).get("discounts") or [])
    )
    watched: set[str] = set()
    for chunk in _chunks(named):
        watched.update(
            db.scalars(
                select(AttributionWatch.subscription_id).where(
                    AttributionWatch.app_pk == app_pk,
                    AttributionWatch.status.in_(OPEN_STATUSES),
                    AttributionWatch.subscription_id.in_(chunk),
                )
            ).all()
        )
    return sorted(watched)


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def earliest_open_session(db: Session, app_pk: int) -> datetime | None:
    # In session order along (app_pk, session_at): stops at the first open watch.
    found: datetime | None = db.scalar(
        select(AttributionWatch.session_at)
        .where(AttributionWatch.app_pk == app_pk, AttributionWatch.status.in_(OPEN_STATUSES))
        .order_by(AttributionWatch.session_at)
        .limit(1)
    )
    return found


def watches_to_judge(
    db: Session, app_pk: int, now: datetime, changed_since: datetime | None
) -> Sequence[AttributionWatch]:
    """Never judged, window ended while pending, or their data changed since the last pass.

    Each part is its own indexed query (an OR over them would scan every watch of the app).
    """
    open_watch = and_(AttributionWatch.app_pk == app_pk, AttributionWatch.status.in_(OPEN_STATUSES))
    ids: set[int] = set(
        db.scalars(
            # Never judged means still pending: (app_pk, judged_at) alone finds them.
            select(AttributionWatch.id).where(
                AttributionWatch.app_pk == app_pk, AttributionWatch.judged_at.is_(None)
            )
        ).all()
    )
    ids.update(
        db.scalars(
            select(AttributionWatch.id).where(
                AttributionWatch.app_pk == app_pk,
                AttributionWatch.status == PENDING,
                AttributionWatch.window_ends_at <= now,
            )
        ).all()
    )
    if changed_since is not None:
        changed = db.execute(
            select(MirrorSubscription.subscription_id, MirrorSubscription.customer_id).where(
                MirrorSubscription.app_pk == app_pk, MirrorSubscription.synced_at > changed_since
            )
        ).all()
        sub_ids = {sub_id for sub_id, _ in changed}
        sub_ids.update(
            i
            for i in db.scalars(
                select(MirrorInvoice.subscription_id).where(
                    MirrorInvoice.app_pk == app_pk, MirrorInvoice.synced_at > changed_since
                )
            ).all()
            if i
        )
        customers = {customer for _, customer in changed if customer}
        customers.update(
            db.scalars(
                select(MirrorCustomer.customer_id).where(
                    MirrorCustomer.app_pk == app_pk, MirrorCustomer.synced_at > changed_since
                )
            ).all()
        )
        for chunk in _chunks(sorted(sub_ids)):
            ids.update(
                db.scalars(
                    select(AttributionWatch.id).where(
                        open_watch, AttributionWatch.subscription_id.in_(chunk)
                    )
                ).all()
            )
        for chunk in _chunks(sorted(customers)):
            ids.update(
                db.scalars(
                    select(AttributionWatch.id).where(
                        open_watch, AttributionWatch.customer_id.in_(chunk)
                    )
                ).all()
            )
    found: list[AttributionWatch] = []
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        found.extend(
            db.scalars(
                select(AttributionWatch)
                .where(AttributionWatch.id.in_(ordered[start : start + 500]))
                .order_by(AttributionWatch.id)
            ).all()
        )
    return found


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


def webhook_invoice_events(
    db: Session, app_pk: int, after_id: int, limit: int
) -> Sequence[StripeEvent]:
    """Invoice events the webhooks stored (``stripe_events``) after ``after_id``, oldest first."""
    return db.scalars(
        select(StripeEvent)
        .where(
            StripeEvent.app_pk == app_pk,
            StripeEvent.id > after_id,
            StripeEvent.type.like("invoice.%"),
        )
        .order_by(StripeEvent.id)
        .limit(limit)
    ).all()


def last_event_id(db: Session, app_pk: int) -> int:
    found = db.scalar(select(func.max(StripeEvent.id)).where(StripeEvent.app_pk == app_pk))
    return int(found or 0)


def upsert_invoices(db: Session, rows: list[dict[str, Any]]) -> int:
    """Insert or move invoices forward (newer ``version`` only); returns the rows offered.

    One statement executed for many rows (a multi-row VALUES costs more to compile than to run).
    """
    if not rows:
        return 0
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = latest.get(row["invoice_id"])
        if kept is None or row["version"] >= kept["version"]:
            latest[row["invoice_id"]] = row
    table = MirrorInvoice.__table__
    stmt = mirror_repository._insert(db, table)
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
    db.execute(
        stmt.on_conflict_do_update(
            index_elements=["app_pk", "invoice_id"],
            set_={name: excluded[name] for name in columns},
            where=table.c.version <= excluded.version,
        ),
        list(latest.values()),
    )
    return len(latest)


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


def watches_of_session(db: Session, app_pk: int, session_id: str) -> Sequence[AttributionWatch]:
    """Where attribution stands on one cancel session (the admin's session story)."""
    return db.scalars(
        select(AttributionWatch)
        .where(AttributionWatch.app_pk == app_pk, AttributionWatch.session_id == session_id)
        .order_by(AttributionWatch.id)
    ).all()


def pending_saves(db: Session, app_pk: int) -> int:
    """Saves (and deflections) still inside their validation window."""
    return int(
        db.scalar(
            select(func.count()).where(
                AttributionWatch.app_pk == app_pk,
                AttributionWatch.status == "pending",
                AttributionWatch.outcome.in_((SAVED, DEFLECTED)),
            )
        )
        or 0
    )
