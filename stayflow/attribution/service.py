"""Attribution: the watch list, each session's status and figures, and the app's totals.

Statuses are judged from the mirror (subscriptions, customers, invoices) at an injected
``now``; Stripe is read only by ``attribution.sync``. Services never commit. Every status
change writes its event (``save.validated``, ``save.lapsed``, ``cancel.reactivated``) in the
caller's transaction through ``billing.actions.service.emit_event``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from stayflow.attribution import repository
from stayflow.attribution.models import (
    CONFIRMED,
    LAPSED,
    PENDING,
    REACTIVATED,
    UNMATCHED,
    VALIDATED,
    AttributionState,
    AttributionWatch,
    MirrorInvoice,
)
from stayflow.attribution.mrr import mrr
from stayflow.billing.stripe.convert import epoch_to_utc, invoice_from
from stayflow.cancel_sessions.models import CANCELED, CancelSession
from stayflow.db import utcnow
from stayflow.errors import BadRequest
from stayflow.events import service as events_service
from stayflow.events.schemas import CancelReactivated, SaveLapsed, SaveValidated
from stayflow.mirror.models import MirrorSubscription
from stayflow.reports import service as reports

MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 365
DEFAULT_WINDOW_DAYS = 30
WIN_BACK_DAYS = 90
ENROLL_BATCH = 5000
MAX_ENROLL_BATCHES = 100
JUDGE_BATCH = 500
MAX_ENRICHED_ITEMS = 10
WEBHOOK_BATCH = 1000
MAX_WEBHOOK_BATCHES = 100
# Offers whose effect on Stripe is a pause: "paused by our own offer" still validates.
PAUSE_OFFERS = ("pause", "extension")
ENDED = ("canceled", "incomplete_expired")


class InvalidWindow(BadRequest):
    error_type = "invalid_window"


def epoch(value: datetime) -> int:
    return int(value.timestamp())


# --- settings --------------------------------------------------------------------------


def set_window(db: Session, app_pk: int, days: int) -> AttributionState:
    """The validation window for sessions enrolled from now on (1-365 days)."""
    if not MIN_WINDOW_DAYS <= days <= MAX_WINDOW_DAYS:
        raise InvalidWindow(
            f"the validation window is {MIN_WINDOW_DAYS} to {MAX_WINDOW_DAYS} days, not {days}"
        )
    state = repository.get_or_create_state(db, app_pk)
    state.window_days = days
    return state


# --- the watch list --------------------------------------------------------------------


def _offer_type(cs: CancelSession) -> str | None:
    if not cs.offer_accepted_id:
        return None
    for offer in (cs.flow or {}).get("offers") or []:
        if isinstance(offer, dict) and offer.get("id") == cs.offer_accepted_id:
            found = offer.get("type")
            return str(found) if found else None
    return None


def snapshot_of(fields: dict[str, Any]) -> dict[str, Any]:
    """Items and first discount as the session's enrichment saw them (Stripe's JSON shape).

    Empty unless every item's price is known; the enrichment keeps at most 10 items.
    """
    count = fields.get("subscription.items.count")
    if not isinstance(count, int) or not 0 < count <= MAX_ENRICHED_ITEMS:
        return {}
    items: list[dict[str, Any]] = []
    for i in range(count):
        p = f"subscription.items.{i}"
        amount = fields.get(f"{p}.price.amount")
        decimal = fields.get(f"{p}.price.amount_decimal")
        interval = fields.get(f"{p}.price.interval")
        if (amount is None and decimal is None) or not isinstance(interval, str):
            return {}
        items.append(
            {
                "id": fields.get(f"{p}.id"),
                "quantity": fields.get(f"{p}.quantity"),
                "price": {
                    "id": fields.get(f"{p}.price.id"),
                    "unit_amount": amount,
                    "unit_amount_decimal": decimal,
                    "recurring": {
                        "interval": interval,
                        "interval_count": fields.get(f"{p}.price.interval_count") or 1,
                    },
                },
            }
        )
    found: dict[str, Any] = {"items": items}
    percent = fields.get("subscription.discount.coupon.percent_off")
    amount_off = fields.get("subscription.discount.coupon.amount_off")
    if percent is not None or amount_off is not None:
        found["discount"] = {
            "id": fields.get("subscription.discount.id"),
            "start": None,
            "end": None,
            "source": {
                "type": "coupon",
                "coupon": {
                    "id": fields.get("subscription.discount.coupon.id"),
                    "percent_off": percent,
                    "amount_off": amount_off,
                    "currency": fields.get("subscription.discount.coupon.currency"),
                    "duration": fields.get("subscription.discount.coupon.duration"),
                },
            },
        }
    return found


def enroll(db: Session, app_pk: int) -> int:
    """Put every finished saved / deflected / canceled session not yet watched on the list."""
    state = repository.get_or_create_state(db, app_pk)
    added = 0
    for _ in range(MAX_ENROLL_BATCHES):
        batch = repository.sessions_to_enroll(db, app_pk, ENROLL_BATCH)
        added += _enroll_batch(db, app_pk, state.window_days, batch)
        if len(batch) < ENROLL_BATCH:
            break
    return added


def _enroll_batch(
    db: Session, app_pk: int, window_days: int, sessions: Sequence[CancelSession]
) -> int:
    rows = [
        {
            "app_pk": app_pk,
            "session_id": cs.session_id,
            "subscription_id": cs.subscription_id,
            "customer_id": None,
            "outcome": str(cs.outcome),
            "offer_id": cs.offer_accepted_id,
            "offer_type": _offer_type(cs),
            "snapshot": snapshot_of(cs.enriched_fields or {}),
            "session_at": cs.created_at,
            "window_days": window_days,
            "window_ends_at": cs.created_at + timedelta(days=window_days),
            "status": PENDING,
            "mrr_kept": 0,
            "mrr_lost": 0,
            "cash_collected": 0,
            "created_at": utcnow(),
        }
        for cs in sessions
    ]
    if rows:
        # One executemany (the table, not the ORM: no identity map for thousands of rows).
        db.execute(insert(AttributionWatch.__table__), rows)  # type: ignore[arg-type]
        reports.mark_dirty(db, app_pk, [cs.session_id for cs in sessions])
    return len(rows)


def mark_unmatched(db: Session, app_pk: int, subscription_id: str, why: str) -> int:
    """Stripe does not know this subscription: its open watches say so (and why)."""
    changed = 0
    for watch in repository.never_judged(db, app_pk, subscription_id):
        watch.status = UNMATCHED
        watch.cause = why[:500]
        watch.judged_at = utcnow()
        reports.mark_dirty(db, app_pk, [watch.session_id])
        changed += 1
    return changed


# --- MRR at the session ----------------------------------------------------------------


def before_offer(raw: dict[str, Any], watch: AttributionWatch) -> dict[str, Any]:
    """The subscription as it stood when the session began, rebuilt from its state now.

    Drops discounts that started at or after the session (the offer's), a pause set by a pause
    offer, and an end that came after (a cancel is undone: it was active then).
    """
    at = epoch(watch.session_at)
    before = dict(raw)  # top-level keys are replaced below, never changed in place
    snapshot = watch.snapshot or {}
    if snapshot.get("items"):
        # The enrichment saw the items before the offer (a plan change swaps them).
        before["items"] = {"object": "list", "data": snapshot["items"]}
    discounts = [d for d in before.get("discounts") or [] if isinstance(d, dict)]
    kept = [d for d in discounts if int(d.get("start") or 0) < at]
    if not kept and snapshot.get("discount"):
        # A discount offer replaces the discounts; the enrichment saw the first one before.
        kept = [snapshot["discount"]]
    before["discounts"] = kept
    if watch.offer_type in PAUSE_OFFERS:
        before["pause_collection"] = None
    if before.get("status") in ENDED or before.get("status") in ("past_due", "unpaid"):
        before["status"] = "active"
    return before


# --- judging ---------------------------------------------------------------------------


@dataclass
class Judgement:
    status: str
    at: datetime | None = None
    cause: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _when(value: Any, fallback: datetime) -> datetime:
    found = epoch_to_utc(value)
    return found if found is not None else fallback


def _seen_at(row: MirrorSubscription) -> datetime:
    found = epoch_to_utc(row.version)
    assert found is not None
    return found


def _lapse(
    watch: AttributionWatch, row: MirrorSubscription, invoices: list[MirrorInvoice]
) -> Judgement | None:
    """A lapse inside the window (the earliest that Stripe shows), or None."""
    raw = row.raw
    end = watch.window_ends_at
    status = str(raw.get("status") or "")
    found: list[Judgement] = []
    if status == "canceled":
        at = _when(raw.get("ended_at") or raw.get("canceled_at"), _seen_at(row))
        found.append(Judgement(LAPSED, at, "canceled"))
    elif status == "incomplete_expired":
        found.append(Judgement(LAPSED, _when(raw.get("ended_at"), _seen_at(row)), status))
    elif raw.get("cancel_at_period_end") or raw.get("cancel_at"):
        cause = "cancel_at_period_end" if raw.get("cancel_at_period_end") else "cancel_at"
        found.append(Judgement(LAPSED, _when(raw.get("canceled_at"), _seen_at(row)), cause))
    if status == "unpaid":
        unpaid = [i for i in invoices if i.status == "open" and i.amount_due > 0]
        first = min((i.stripe_created for i in unpaid), default=None)
        found.append(Judgement(LAPSED, _when(first, _seen_at(row)), "unpaid"))
    inside = [j for j in found if j.at is not None and j.at <= end]
    return min(inside, key=lambda j: j.at or end) if inside else None


def _unpaid_in_window(
    watch: AttributionWatch, invoices: list[MirrorInvoice]
) -> MirrorInvoice | None:
    """The first invoice that fell due inside the window and is not paid."""
    start, end = epoch(watch.session_at), epoch(watch.window_ends_at)
    skip: tuple[str, ...] = ("paid", "void", "draft")
    if watch.offer_type == "extension":
        # An extension marks its invoices uncollectible on purpose.
        skip = (*skip, "uncollectible")
    due = [
        i
        for i in invoices
        if start <= i.stripe_created <= end and i.amount_due > 0 and i.status not in skip
    ]
    return min(due, key=lambda i: i.stripe_created) if due else None


def judge_save(
    watch: AttributionWatch,
    row: MirrorSubscription,
    invoices: list[MirrorInvoice],
    now: datetime,
) -> Judgement:
    lapse = _lapse(watch, row, invoices)
    if lapse is not None and lapse.at is not None and lapse.at <= now:
        return lapse
    if now < watch.window_ends_at:
        return Judgement(PENDING)
    unpaid = _unpaid_in_window(watch, invoices)
    if unpaid is not None:
        return Judgement(
            LAPSED,
            _when(unpaid.stripe_created, watch.window_ends_at),
            "unpaid",
            {"invoice": unpaid.invoice_id},
        )
    status = str(row.raw.get("status") or "")
    if status in ("active", "trialing") or (
        status == "paused" and watch.offer_type in PAUSE_OFFERS
    ):
        return Judgement(VALIDATED, watch.window_ends_at)
    return Judgement(LAPSED, watch.window_ends_at, status or "unknown")


def _win_back(
    db: Session, watch: AttributionWatch, now: datetime
) -> tuple[MirrorSubscription, datetime] | None:
    """A paying subscription the same customer started within 90 days of the session."""
    if not watch.customer_id:
        return None
    start = epoch(watch.session_at)
    limit = start + WIN_BACK_DAYS * 86_400
    for row in repository.customer_subscriptions(db, watch.app_pk, watch.customer_id):
        created = int(row.raw.get("created") or 0)
        if row.subscription_id == watch.subscription_id or not start <= created <= limit:
            continue
        if row.raw.get("status") != "active":
            continue
        customer = repository.customer_raw(db, watch.app_pk, row.customer_id)
        if mrr(row.raw, at=epoch(now), customer=customer).amount > 0:
            return row, _when(created, now)
    return None


def judge_cancel(
    db: Session, watch: AttributionWatch, row: MirrorSubscription, now: datetime
) -> Judgement:
    if watch.status == CONFIRMED:
        found = _win_back(db, watch, now)
        if found is not None:
            new, at = found
            return Judgement(REACTIVATED, at, None, {"subscription": new})
        return Judgement(CONFIRMED, watch.status_at)
    raw = row.raw
    if raw.get("status") in ENDED or raw.get("cancel_at_period_end") or raw.get("cancel_at"):
        at = _when(raw.get("canceled_at") or raw.get("ended_at"), _seen_at(row))
        return Judgement(CONFIRMED, at, "canceled" if raw.get("status") in ENDED else "cancelling")
    return Judgement(PENDING)


def _cash(watch: AttributionWatch, invoices: list[MirrorInvoice]) -> int:
    since = epoch(watch.session_at)
    return sum(i.amount_paid for i in invoices if i.status == "paid" and (i.paid_at or 0) > since)


def _event_data(watch: AttributionWatch) -> dict[str, Any]:
    return {
        "session_id": watch.session_id,
        "subscription_id": watch.subscription_id,
        "outcome": watch.outcome,
        "status": watch.status,
        "at": watch.status_at,
        "cause": watch.cause,
        "currency": watch.currency,
        "mrr_at_session": watch.mrr_at_session,
        "mrr_kept": watch.mrr_kept,
        "mrr_lost": watch.mrr_lost,
        "cash_collected": watch.cash_collected,
        "reactivated_subscription_id": watch.reactivated_subscription_id,
    }


@dataclass
class Prefetched:
    """The mirror data a batch of watches needs, read in three queries."""

    rows: dict[str, MirrorSubscription]
    invoices: dict[str, list[MirrorInvoice]]
    customers: dict[str, dict[str, Any]]


def prefetch(db: Session, app_pk: int, watches: list[AttributionWatch]) -> Prefetched:
    sub_ids = sorted({w.subscription_id for w in watches})
    rows = repository.mirror_rows(db, app_pk, sub_ids)
    invoices: dict[str, list[MirrorInvoice]] = {}
    for invoice in repository.invoices_of_many(db, app_pk, sub_ids):
        invoices.setdefault(invoice.subscription_id or "", []).append(invoice)
    customer_ids = sorted({r.customer_id for r in rows.values() if r.customer_id})
    return Prefetched(rows, invoices, repository.customers_raw(db, app_pk, customer_ids))


def judge(
    db: Session, watch: AttributionWatch, now: datetime, data: Prefetched | None = None
) -> bool:
    """Judge one watch from the mirror; True when its status changed (an event was written)."""
    data = data or prefetch(db, watch.app_pk, [watch])
    row = data.rows.get(watch.subscription_id)
    watch.judged_at = utcnow()
    if row is None:
        return False
    counted_before = _counted(watch)
    try:
        return _judge(db, watch, row, now, data)
    finally:
        if _counted(watch) != counted_before:
            reports.mark_dirty(db, watch.app_pk, [watch.session_id])


def _counted(watch: AttributionWatch) -> tuple[Any, ...]:
    """What the reports read of a watch (a change makes them recount its session)."""
    return (watch.status, watch.currency, watch.mrr_kept, watch.mrr_lost, watch.cash_collected)


def _judge(
    db: Session, watch: AttributionWatch, row: MirrorSubscription, now: datetime, data: Prefetched
) -> bool:
    if watch.status == UNMATCHED:
        watch.status, watch.cause = PENDING, None  # Stripe knows it after all
    watch.customer_id = row.customer_id or watch.customer_id
    customer = data.customers.get(row.customer_id)
    if watch.mrr_at_session is None:
        found = mrr(before_offer(row.raw, watch), at=epoch(watch.session_at), customer=customer)
        watch.mrr_at_session, watch.currency = found.amount, found.currency
    invoices = data.invoices.get(watch.subscription_id, [])
    watch.cash_collected = _cash(watch, invoices)
    before = watch.status
    if watch.outcome == CANCELED:
        verdict = judge_cancel(db, watch, row, now)
    elif watch.status == VALIDATED:
        verdict = Judgement(VALIDATED, watch.status_at)  # the window has passed: it stays
    else:
        verdict = judge_save(watch, row, invoices, now)
    watch.status = verdict.status
    if verdict.status != before:
        watch.status_at = verdict.at
        watch.cause = verdict.cause
    kept_now = mrr(row.raw, at=epoch(now), customer=customer).amount
    at_session = watch.mrr_at_session or 0
    if watch.status == LAPSED:
        watch.mrr_kept, watch.mrr_lost = 0, at_session
    elif watch.status == CONFIRMED:
        watch.mrr_kept, watch.mrr_lost = 0, at_session
    elif watch.status == REACTIVATED:
        new = verdict.extra.get("subscription")
        if isinstance(new, MirrorSubscription):
            watch.reactivated_subscription_id = new.subscription_id
            new_customer = repository.customer_raw(db, watch.app_pk, new.customer_id)
            watch.mrr_kept = mrr(new.raw, at=epoch(now), customer=new_customer).amount
        watch.mrr_lost = 0
    elif watch.outcome == CANCELED:
        watch.mrr_kept, watch.mrr_lost = 0, 0
    else:
        watch.mrr_kept, watch.mrr_lost = kept_now, 0
    if watch.status == before:
        return False
    event = {VALIDATED: SaveValidated, LAPSED: SaveLapsed, REACTIVATED: CancelReactivated}
    if watch.status in event:
        events_service.emit(db, watch.app_pk, event[watch.status](**_event_data(watch)))
    return True


@dataclass
class JudgeResult:
    judged: int = 0
    changed: int = 0


def absorb_webhook_invoices(db: Session, app_pk: int) -> int:
    """Copy the invoices that webhooks brought (``stripe_events``) into mirror_invoices.

    The mirror stores subscription events itself; invoices are attribution's (cash collected,
    dues unpaid), read from the stored events past a cursor, so none is read twice.
    """
    state = repository.get_or_create_state(db, app_pk)
    written = 0
    for _ in range(MAX_WEBHOOK_BATCHES):
        events = repository.webhook_invoice_events(
            db, app_pk, state.webhook_events_through, WEBHOOK_BATCH
        )
        rows = []
        for event in events:
            data = event.payload.get("data") if isinstance(event.payload, dict) else None
            obj = data.get("object") if isinstance(data, dict) else None
            if isinstance(obj, dict) and obj.get("id"):
                rows.append(
                    repository.invoice_values(
                        app_pk, invoice_from(obj), version=event.stripe_created
                    )
                )
        written += repository.upsert_invoices(db, rows)
        if events:
            state.webhook_events_through = events[-1].id
        if len(events) < WEBHOOK_BATCH:
            break
    return written


def judge_changed(db: Session, app_pk: int, now: datetime) -> JudgeResult:
    """Judge what needs it: new watches, windows ended, data changed since the last pass."""
    absorb_webhook_invoices(db, app_pk)
    state = repository.get_or_create_state(db, app_pk)
    mark = utcnow()
    result = JudgeResult()
    watches = list(repository.watches_to_judge(db, app_pk, now, state.judged_through))
    for start in range(0, len(watches), JUDGE_BATCH):
        batch = watches[start : start + JUDGE_BATCH]
        data = prefetch(db, app_pk, batch)
        for watch in batch:
            result.judged += 1
            if judge(db, watch, now, data):
                result.changed += 1
    state.judged_through = mark
    return result
