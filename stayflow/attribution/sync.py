"""Keeping what attribution reads current, in Stripe requests proportional to what changed.

1. Webhooks feed the mirror (``stayflow.mirror``); nothing here for them.
2. ``GET /v1/events`` (the ``customer.subscription.*`` and ``invoice.*`` types, ``created`` from the
   stored cursor, 100 a page) catches what webhooks missed: one page when nothing changed.
3. A watched subscription that neither source has seen is retrieved on its own (a 404 makes
   its session ``unmatched``); so is one whose row names a new discount only by id.
4. Only when the cursor is older than Stripe's 30-day event retention (or on the first sync
   of an app whose sessions are older than that) are subscriptions and invoices listed in full.
Then the watches whose data changed, and those whose window ended, are judged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stayflow.attribution import repository, service
from stayflow.billing.provider import BillingObjectMissing, BillingProvider
from stayflow.billing.stripe.convert import invoice_from, object_id
from stayflow.db import utcnow
from stayflow.mirror import repository as mirror_repository
from stayflow.mirror import service as mirror_service

log = logging.getLogger("stayflow.attribution")

# Stripe documents wildcards for ``type`` only; ``types`` takes up to 20 exact names. Left
# out, as they change nothing attribution reads: customer.subscription.trial_will_end (a
# reminder), invoice.overdue and invoice.payment_action_required (the invoice stays open;
# its payment or failure has its own event).
EVENT_TYPES = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "customer.discount.created",
    "customer.discount.updated",
    "customer.discount.deleted",
    "invoice.created",
    "invoice.deleted",
    "invoice.finalized",
    "invoice.marked_uncollectible",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.updated",
    "invoice.voided",
]
assert len(EVENT_TYPES) <= 20, "Stripe's types filter takes at most 20 names"
EVENT_RETENTION = timedelta(days=30)
MAX_PAGES = 10_000
MAX_RETRIEVES = 1_000
MAX_COUPONS = 100
Progress = Callable[[str, int], None]


@dataclass
class SyncResult:
    mode: str = "events"  # "events", "full" or "none" (nothing watched)
    requests: int = 0
    pages: int = 0
    events: int = 0
    subscriptions_written: int = 0
    invoices_written: int = 0
    retrieved: int = 0
    customers_retrieved: int = 0
    coupons_read: int = 0
    webhook_endpoint_updated: bool = False
    unmatched: int = 0
    enrolled: int = 0
    judged: int = 0
    changed: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"attribution sync ({self.mode}): {self.requests} Stripe requests, "
            f"{self.events} events, {self.subscriptions_written} subscriptions and "
            f"{self.invoices_written} invoices written, {self.retrieved} retrieved, "
            f"{self.customers_retrieved} customers retrieved, {self.coupons_read} coupons read, "
            f"{self.enrolled} sessions enrolled, {self.judged} judged, "
            f"{self.changed} status changes"
        )


def _store_raw(db: Session, app_pk: int, raw: dict[str, Any], version: int) -> int:
    existing = mirror_repository.get_subscription(db, app_pk, str(raw.get("id") or ""))
    version = max(version, existing.version if existing else 0)
    return mirror_service.store_subscriptions(db, app_pk, [raw], version=version, source="live")


CustomerDiscounts = dict[str, tuple[int, str, dict[str, Any]]]


def _events(
    db: Session,
    app_pk: int,
    provider: BillingProvider,
    cursor: int,
    result: SyncResult,
    progress: Progress | None,
    discounts: CustomerDiscounts,
) -> int:
    """Read every event since ``cursor``; store the newest state of each object; new cursor.

    Customer-level discount changes (newest per customer) are left in ``discounts``: they are
    applied once the subscriptions (and the customers they bring) are stored."""
    newest_sub: dict[str, tuple[int, dict[str, Any]]] = {}
    newest_invoice: dict[str, tuple[int, dict[str, Any]]] = {}
    starting_after: str | None = None
    newest = cursor
    for _ in range(MAX_PAGES):
        page = provider.list_events(
            types=EVENT_TYPES, created_gte=cursor, starting_after=starting_after, limit=100
        )
        result.requests += 1
        result.pages += 1
        for event in page.events:
            result.events += 1
            newest = max(newest, event.created)
            obj = event.object
            if event.type.startswith("customer.subscription.") and obj.get("id"):
                kept = newest_sub.get(str(obj["id"]))
                # Newest first: the first seen of a second is the latest of that second.
                if kept is None or event.created > kept[0]:
                    newest_sub[str(obj["id"])] = (event.created, obj)
            elif event.type.startswith("invoice.") and obj.get("id"):
                kept = newest_invoice.get(str(obj["id"]))
                if kept is None or event.created > kept[0]:
                    newest_invoice[str(obj["id"])] = (event.created, obj)
            elif event.type in mirror_service.CUSTOMER_DISCOUNT_EVENTS:
                if mirror_service.is_customer_discount(obj):
                    customer_id = str(object_id(obj.get("customer")))
                    seen = discounts.get(customer_id)
                    if seen is None or event.created > seen[0]:
                        discounts[customer_id] = (event.created, event.type, obj)
        if progress is not None:
            progress("events", len(page.events))
        if not page.has_more or not page.events:
            break
        starting_after = page.events[-1].id
    # Only what the mirror does not hold yet (webhooks may have brought it): one query, then
    # one batch per event second.
    stored = repository.mirror_versions(db, app_pk, sorted(newest_sub))
    by_second: dict[int, list[dict[str, Any]]] = {}
    for sub_id, (created, obj) in newest_sub.items():
        if created > stored.get(sub_id, -1):
            by_second.setdefault(created, []).append(obj)
    for created, objs in sorted(by_second.items()):
        result.subscriptions_written += mirror_service.store_subscriptions(
            db, app_pk, objs, version=created, source="events"
        )
    result.invoices_written += repository.upsert_invoices(
        db,
        [
            repository.invoice_values(app_pk, invoice_from(obj), version=created)
            for created, obj in newest_invoice.values()
        ],
    )
    return newest


def _full(
    db: Session,
    app_pk: int,
    provider: BillingProvider,
    now: int,
    since: int,
    result: SyncResult,
    progress: Progress | None,
) -> None:
    """Every subscription (status=all) and every invoice created since ``since``."""
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = provider.list_subscriptions(starting_after=cursor, limit=100)
        result.requests += 1
        result.pages += 1
        result.subscriptions_written += mirror_service.store_subscriptions(
            db, app_pk, page.raw, version=now, source="backfill"
        )
        if progress is not None:
            progress("subscriptions", len(page.raw))
        if not page.has_more or page.last_id is None:
            break
        cursor = page.last_id
    cursor = None
    for _ in range(MAX_PAGES):
        invoice_page = provider.list_invoices(created_gte=since, starting_after=cursor, limit=100)
        result.requests += 1
        result.pages += 1
        result.invoices_written += repository.upsert_invoices(
            db,
            [repository.invoice_values(app_pk, i, version=now) for i in invoice_page.invoices],
        )
        if progress is not None:
            progress("invoices", len(invoice_page.invoices))
        if not invoice_page.has_more or invoice_page.last_id is None:
            break
        cursor = invoice_page.last_id


def _retrieve(
    db: Session,
    app_pk: int,
    provider: BillingProvider,
    subscription_ids: list[str],
    now: int,
    result: SyncResult,
) -> None:
    for sub_id in subscription_ids[:MAX_RETRIEVES]:
        result.requests += 1
        try:
            fetched = provider.retrieve_subscription(sub_id)
        except BillingObjectMissing as exc:
            why = f"Stripe has no subscription {sub_id!r} in this account ({exc.message})"
            result.unmatched += service.mark_unmatched(db, app_pk, sub_id, why)
            continue
        result.retrieved += 1
        result.subscriptions_written += _store_raw(db, app_pk, fetched.raw, now)


def _customers(
    db: Session,
    app_pk: int,
    provider: BillingProvider,
    discounts: CustomerDiscounts,
    now: int,
    result: SyncResult,
    coupons_since: datetime | None,
) -> None:
    """Customer-level discounts: apply the changes events brought; retrieve a customer the
    mirror lacks (one request each) when it owns a watched subscription; then read each coupon
    that discounts name only by id once, and write it into them."""
    unknown: list[str] = []
    for customer_id, (created, event_type, discount) in discounts.items():
        outcome = mirror_service.apply_customer_discount(
            db, app_pk, event_type, discount, version=created
        )
        if outcome == "unknown_customer":
            unknown.append(customer_id)
    wanted = sorted(repository.watched_customers(db, app_pk, unknown)) if unknown else []
    coupons: dict[str, dict[str, Any]] = {}
    for customer_id in wanted[:MAX_RETRIEVES]:
        result.requests += 1
        try:
            raw = provider.retrieve_customer_raw(customer_id)
        except BillingObjectMissing:
            # Kept as deleted, so it is not asked for again.
            raw = {"id": customer_id, "object": "customer", "deleted": True}
        mirror_service.store_customer(db, app_pk, raw, version=now)
        result.customers_retrieved += 1
        coupon = mirror_service.expanded_coupon(raw.get("discount"))
        if coupon is not None:
            coupons[str(coupon["id"])] = coupon  # read with the customer: not again
    named = mirror_repository.customers_naming_coupons(db, app_pk, coupons_since, MAX_RETRIEVES)
    for coupon_id in sorted(set(named.values()) - set(coupons))[:MAX_COUPONS]:
        result.requests += 1
        try:
            coupons[coupon_id] = provider.retrieve_coupon_raw(coupon_id)
        except BillingObjectMissing as exc:
            result.notes.append(f"coupon {coupon_id!r}: {exc.message}")
            continue
        result.coupons_read += 1
    if named and coupons:
        mirror_service.expand_customer_coupons(
            db, app_pk, [c for c, coupon in named.items() if coupon in coupons], coupons
        )


def sync(
    db: Session,
    app_pk: int,
    provider: BillingProvider,
    now: datetime,
    *,
    progress: Progress | None = None,
    requests_before: int = 0,
) -> SyncResult:
    """One sync of one app at ``now`` (injected: the sandbox's clock in tests).

    ``requests_before``: Stripe requests the caller made for this sync first (bringing the
    webhook endpoint's events up to date), counted in its total."""
    result = SyncResult(requests=requests_before)
    discounts: CustomerDiscounts = {}
    state = repository.get_or_create_state(db, app_pk)
    result.enrolled = service.enroll(db, app_pk)
    now_epoch = service.epoch(now)
    earliest = repository.earliest_open_session(db, app_pk)
    started = utcnow()
    if earliest is None and state.events_cursor is None:
        result.mode = "none"
    else:
        cursor = state.events_cursor
        if cursor is None:
            assert earliest is not None
            cursor = service.epoch(earliest) - 60
        if now_epoch - cursor > EVENT_RETENTION.total_seconds():
            result.mode = "full"
            since = service.epoch(earliest) - 60 if earliest is not None else cursor
            _full(db, app_pk, provider, now_epoch, since, result, progress)
            state.events_cursor = now_epoch
        else:
            state.events_cursor = _events(db, app_pk, provider, cursor, result, progress, discounts)
        unseen = repository.unseen_subscriptions(db, app_pk, MAX_RETRIEVES)
        unexpanded = repository.watched_with_unexpanded_discounts(
            db, app_pk, state.judged_through or started - timedelta(days=3650)
        )
        _retrieve(db, app_pk, provider, sorted(set(unseen) | set(unexpanded)), now_epoch, result)
        _customers(
            db, app_pk, provider, discounts, now_epoch, result, state.coupons_checked_through
        )
        state.coupons_checked_through = started
    judged = service.judge_changed(db, app_pk, now)
    result.judged, result.changed = judged.judged, judged.changed
    state.last_sync_at = now
    state.last_sync_outcome = "ok"
    state.last_sync_mode = result.mode
    state.last_sync_requests = result.requests
    state.last_sync_error = None
    log.info(
        "attribution.sync",
        extra={"app_pk": app_pk, "mode": result.mode, "requests": result.requests},
    )
    return result


def record_failure(db: Session, app_pk: int, now: datetime, message: str, requests: int) -> None:
    """A sync that failed leaves its outcome on the data card (its own transaction)."""
    state = repository.get_or_create_state(db, app_pk)
    state.last_sync_at = now
    state.last_sync_outcome = "failed"
    state.last_sync_requests = requests
    state.last_sync_error = message[:1000]
