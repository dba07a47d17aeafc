"""Keeping the mirror current: Stripe webhooks in, live reads and backfill pages stored.

Services never commit; the request, the job runner or the CLI does.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.config import billing_settings
from stayflow.billing.models import BillingConnection
from stayflow.billing.provider import BillingProvider, InvalidWebhookSignature
from stayflow.billing.stripe.client import WEBHOOK_TOLERANCE_SECONDS, verify_webhook
from stayflow.billing.stripe.convert import object_id
from stayflow.crypto import Encryptor
from stayflow.db import insert_ignoring_conflicts, utcnow
from stayflow.errors import BadRequest, NotFound
from stayflow.jobs import service as jobs
from stayflow.mirror import repository
from stayflow.mirror.models import MirrorBackfill, MirrorSubscription, StripeEvent

log = logging.getLogger("stayflow.mirror")

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
    }
)
CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated"})
# A customer-level discount (its ``subscription`` is null) changes the customer's row; one of a
# subscription comes with that subscription's own event.
CUSTOMER_DISCOUNT_EVENTS = frozenset(
    {"customer.discount.created", "customer.discount.updated", "customer.discount.deleted"}
)
PRODUCT_EVENTS = frozenset({"product.created", "product.updated"})
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
# Pages one backfill job stores before it hands over to the next (each job one transaction).
BACKFILL_PAGES_PER_JOB = 10


class UnknownApp(NotFound):
    pass


class MalformedEvent(BadRequest):
    """Correctly signed, but not an event this app can store (Stripe must not retry it)."""

    error_type = "invalid_event"


# Stripe's ``created`` is epoch seconds; beyond year 5000 it is not a real event.
MAX_EVENT_CREATED = 100_000_000_000
MAX_EVENT_ID_LENGTH = 100


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: str
    duplicate: bool


# --- storing Stripe objects ------------------------------------------------------------


def _unexpanded_discounts(raw: dict[str, Any]) -> list[str]:
    return [d for d in raw.get("discounts") or [] if isinstance(d, str)]


def _carry_discounts(raw: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """Put back the expanded discounts an event names only by id; returns ids still unknown."""
    known = {
        d["id"]: d
        for d in (previous or {}).get("discounts") or []
        if isinstance(d, dict) and d.get("id")
    }
    discounts = raw.get("discounts")
    if isinstance(discounts, list):
        raw["discounts"] = [known.get(d, d) if isinstance(d, str) else d for d in discounts]
    return _unexpanded_discounts(raw)


def _split(
    app_pk: int, raw: dict[str, Any], version: int
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The subscription with ids in place of its expanded customer and products, and those.

    ``raw`` is left as it was: only the dicts on the way to what is replaced are copied (a
    deep copy of every subscription of a page cost more than storing it).
    """
    raw = dict(raw)
    customers: list[dict[str, Any]] = []
    products: list[dict[str, Any]] = []
    customer = raw.get("customer")
    if isinstance(customer, dict) and customer.get("id"):
        if not customer.get("deleted"):
            customers.append(repository.customer_values(app_pk, customer, version=version))
        raw["customer"] = customer["id"]
    items = raw.get("items")
    if isinstance(items, dict) and isinstance(items.get("data"), list):
        data: list[Any] = []
        for item in items["data"]:
            if isinstance(item, dict):
                item = dict(item)
                for key in ("price", "plan"):
                    price = item.get(key)
                    product = price.get("product") if isinstance(price, dict) else None
                    if isinstance(price, dict) and isinstance(product, dict) and product.get("id"):
                        if not product.get("deleted"):
                            products.append(
                                repository.product_values(app_pk, product, version=version)
                            )
                        item[key] = {**price, "product": product["id"]}
            data.append(item)
        raw["items"] = {**items, "data": data}
    return raw, customers, products


def store_subscriptions(
    db: Session, app_pk: int, raws: list[dict[str, Any]], *, version: int, source: str
) -> int:
    """Store subscriptions as Stripe sent them, set-based (see the repository); returns rows
    written."""
    subscriptions: dict[str, dict[str, Any]] = {}
    customers: list[dict[str, Any]] = []
    products: list[dict[str, Any]] = []
    stripped_all: list[dict[str, Any]] = []
    for raw in raws:
        if not raw.get("id"):
            continue
        stripped, found_customers, found_products = _split(app_pk, raw, version)
        stripped_all.append(stripped)
        customers.extend(found_customers)
        products.extend(found_products)
    # Discounts an event names only by id: put back the ones the stored rows expanded (one
    # read for all of them).
    named = [str(s["id"]) for s in stripped_all if _unexpanded_discounts(s)]
    previous = repository.subscription_raws(db, app_pk, named) if named else {}
    for stripped in stripped_all:
        if _unexpanded_discounts(stripped):
            _carry_discounts(stripped, previous.get(str(stripped["id"])))
        # One row per subscription per statement (the last one given wins).
        subscriptions[str(stripped["id"])] = repository.subscription_values(
            app_pk, stripped, version=version, source=source
        )
    store_customer_rows(db, app_pk, customers)
    repository.upsert_products(db, products)
    return repository.upsert_subscriptions(db, list(subscriptions.values()))


# --- customers and their discounts --------------------------------------------------------


def discount_coupon_id(discount: Any) -> str | None:
    """The id of the coupon a discount names only by id (current API: ``source.coupon``)."""
    if not isinstance(discount, dict):
        return None
    source = discount.get("source")
    coupon = source.get("coupon") if isinstance(source, dict) else None
    return coupon if isinstance(coupon, str) and coupon else None


def expanded_coupon(discount: Any) -> dict[str, Any] | None:
    source = discount.get("source") if isinstance(discount, dict) else None
    coupon = source.get("coupon") if isinstance(source, dict) else None
    return coupon if isinstance(coupon, dict) and coupon.get("id") else None


def with_coupon(discount: dict[str, Any], coupon: dict[str, Any]) -> dict[str, Any]:
    """The discount with its coupon expanded (a copy)."""
    source = discount.get("source")
    return {
        **discount,
        "source": {**(source if isinstance(source, dict) else {}), "coupon": coupon},
    }


def _carry_coupon(raw: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Put back the coupon a stored copy of the customer had expanded (same coupon id)."""
    wanted = discount_coupon_id(raw.get("discount"))
    known = expanded_coupon((previous or {}).get("discount"))
    if wanted and known is not None and known["id"] == wanted:
        return {**raw, "discount": with_coupon(raw["discount"], known)}
    return raw


def store_customer_rows(db: Session, app_pk: int, rows: list[dict[str, Any]]) -> int:
    """Store customers (``repository.customer_values`` rows), keeping the coupons the mirror
    already expanded (lists, events and expanded subscriptions name it only by id)."""
    named = [str(r["customer_id"]) for r in rows if discount_coupon_id(r["raw"].get("discount"))]
    if named:
        previous = repository.customer_raws(db, app_pk, named)
        for row in rows:
            if row["customer_id"] in previous:
                row["raw"] = _carry_coupon(row["raw"], previous[row["customer_id"]])
    return repository.upsert_customers(db, rows)


def store_customer(db: Session, app_pk: int, raw: dict[str, Any], *, version: int) -> bool:
    return (
        store_customer_rows(db, app_pk, [repository.customer_values(app_pk, raw, version=version)])
        > 0
    )


def is_customer_discount(discount: dict[str, Any]) -> bool:
    """A discount on the customer itself (not a subscription's, item's or invoice's)."""
    return (
        bool(object_id(discount.get("customer")))
        and not discount.get("subscription")
        and not discount.get("subscription_item")
        and not discount.get("invoice")
    )


def apply_customer_discount(
    db: Session,
    app_pk: int,
    event_type: str,
    discount: dict[str, Any],
    *,
    version: int,
    coupons: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A ``customer.discount.*`` event on the mirrored customer: ``applied``, ``stale`` (the
    row is newer) or ``unknown_customer`` (not mirrored: nothing to change).

    ``coupons`` (already read, by id) expands the discount's coupon; else the row's own copy
    when it is the same coupon. A deleted discount is taken off only if it is the one the row
    shows (or the row shows none).
    """
    customer_id = object_id(discount.get("customer")) or ""
    row = repository.get_customer(db, app_pk, customer_id)
    if row is None:
        return "unknown_customer"
    if row.version > version:
        return "stale"
    current = row.raw.get("discount")
    if event_type == "customer.discount.deleted":
        gone = not isinstance(current, dict) or current.get("id") in (None, discount.get("id"))
        new: Any = None if gone else current
    else:
        new = discount
        coupon_id = discount_coupon_id(discount)
        if coupon_id and coupons and coupon_id in coupons:
            new = with_coupon(discount, coupons[coupon_id])
        elif coupon_id:
            new = _carry_coupon({"discount": discount}, row.raw)["discount"]
    raw = {**row.raw, "discount": new}
    repository.upsert_customers(db, [repository.customer_values(app_pk, raw, version=version)])
    return "applied"


def expand_customer_coupons(
    db: Session, app_pk: int, customer_ids: list[str], coupons: dict[str, dict[str, Any]]
) -> int:
    """Write the coupons read (by id) into the discounts of these customers that name them only
    by id; their version stays (nothing newer was learnt), ``synced_at`` moves (re-judged)."""
    rows = []
    for row in repository.get_customers(db, app_pk, customer_ids).values():
        coupon_id = discount_coupon_id(row.raw.get("discount"))
        if coupon_id and coupon_id in coupons:
            discount = with_coupon(row.raw["discount"], coupons[coupon_id])
            expanded = {**row.raw, "discount": discount}
            rows.append(repository.customer_values(app_pk, expanded, version=row.version))
    return repository.upsert_customers(db, rows)


def store_subscription(
    db: Session, app_pk: int, raw: dict[str, Any], *, version: int, source: str
) -> bool:
    """Store one subscription; False when the mirror already holds it as new or newer."""
    return store_subscriptions(db, app_pk, [raw], version=version, source=source) > 0


def store_live(db: Session, app_pk: int, raw: dict[str, Any]) -> bool:
    """Store what a live read just saw: it is the truth as of now."""
    existing = repository.get_subscription(db, app_pk, str(raw.get("id") or ""))
    version = max(int(utcnow().timestamp()), existing.version if existing else 0)
    return store_subscription(db, app_pk, raw, version=version, source="live")


def assemble(db: Session, row: MirrorSubscription) -> dict[str, Any]:
    """The row's subscription with its customer and products expanded, as a live read has it."""
    raw = copy.deepcopy(row.raw)
    customer = repository.get_customer(db, row.app_pk, row.customer_id)
    if customer is not None:
        raw["customer"] = customer.raw
    items = raw.get("items")
    data = items.get("data", []) if isinstance(items, dict) else []
    wanted: list[str] = []
    for item in data:
        for key in ("price", "plan"):
            price = item.get(key) if isinstance(item, dict) else None
            if isinstance(price, dict) and isinstance(price.get("product"), str):
                wanted.append(price["product"])
    products = repository.get_products(db, row.app_pk, sorted(set(wanted)))
    for item in data:
        for key in ("price", "plan"):
            price = item.get(key) if isinstance(item, dict) else None
            if isinstance(price, dict) and isinstance(price.get("product"), str):
                found = products.get(price["product"])
                if found is not None:
                    price["product"] = found.raw
    return raw


def is_fresh(
    row: MirrorSubscription, conn: BillingConnection | None, *, now: datetime | None = None
) -> bool:
    """Trust the row without asking Stripe: webhooks feed this app and were recently heard from.

    The row must have been stored after the webhook endpoint was set up (so no change
    can have slipped by unannounced), and the row or the app's event stream must be
    younger than ``STAYFLOW_MIRROR_MAX_AGE_SECONDS``.
    """
    if conn is None or conn.webhook_secret_encrypted is None or conn.webhook_configured_at is None:
        return False
    if row.synced_at < conn.webhook_configured_at:
        return False
    now = now or utcnow()
    heard = max(row.synced_at, conn.last_event_at or row.synced_at)
    return now - heard <= timedelta(seconds=billing_settings().mirror_max_age_seconds)


# --- webhooks ----------------------------------------------------------------------------


def receive_webhook(
    db: Session,
    encryptor: Encryptor,
    app_id: str,
    payload: bytes,
    signature_header: str | None,
) -> ReceivedEvent:
    """Verify and store an event once; its effect is applied by the ``mirror.apply_event`` job."""
    from stayflow.apps.repository import get_app_by_public_id

    app = get_app_by_public_id(db, app_id)
    if app is None:
        raise UnknownApp("no such app")
    conn = billing_repository.get_connection(db, app)
    secret = billing_service.webhook_secret(encryptor, conn)
    if secret is None or conn is None:
        raise InvalidWebhookSignature("this app has no Stripe webhook signing secret")
    check_signature_time(signature_header, now=time.time())
    try:
        event = verify_webhook(payload, signature_header, secret)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # Signed by the app's secret but not shaped like an event (e.g. a textual `created`).
        raise MalformedEvent(f"not a well-formed Stripe event: {type(exc).__name__}") from None
    check_event(event.raw, conn)
    inserted = insert_ignoring_conflicts(
        db,
        StripeEvent,
        {
            "app_pk": app.id,
            "event_id": event.id,
            "type": event.type[:100],
            "object_id": (object_id(event.object) or "")[:100] or None,
            "stripe_created": event.created,
            "payload": event.raw,
            "received_at": utcnow(),
        },
        on=["app_pk", "event_id"],
    )
    conn.last_event_at = utcnow()
    if inserted:
        stored = repository.get_event_by_stripe_id(db, app.id, event.id)
        assert stored is not None
        jobs.enqueue(
            db,
            "mirror.apply_event",
            {"event_pk": stored.id},
            app_pk=app.id,
            unique_key=f"mirror.apply_event:{stored.id}",
        )
    return ReceivedEvent(event_id=event.id, duplicate=not inserted)


def check_signature_time(signature_header: str | None, *, now: float) -> None:
    """Refuse a signature dated in the future beyond the tolerance (Stripe's SDK checks only
    the past), so a signature made ahead of time cannot be replayed until then."""
    for part in (signature_header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                stamp = int(value)
            except ValueError:
                raise InvalidWebhookSignature(
                    "bad Stripe-Signature: the timestamp is not a number"
                ) from None
            if stamp > now + WEBHOOK_TOLERANCE_SECONDS:
                raise InvalidWebhookSignature(
                    "bad Stripe-Signature: the timestamp is in the future beyond the tolerance"
                )


def check_event(raw: dict[str, Any], conn: BillingConnection) -> None:
    """A signed event must be well-formed and come from the connected account and mode."""
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH:
        raise MalformedEvent(f"id must be a string of 1 to {MAX_EVENT_ID_LENGTH} characters")
    if not event_id.isprintable():
        raise MalformedEvent("id must be printable")
    if not isinstance(raw.get("type"), str) or not 0 < len(raw["type"]) <= 100:
        raise MalformedEvent("type must be a string of 1 to 100 characters")
    created = raw.get("created")
    if type(created) is not int or not 0 < created <= MAX_EVENT_CREATED:
        raise MalformedEvent("created must be a whole number of seconds since 1970")
    livemode = raw.get("livemode")
    if livemode is not None and livemode is not bool(conn.livemode):
        mode = "live" if conn.livemode else "test"
        raise MalformedEvent(f"the event's livemode does not match the connected {mode} key")
    account = raw.get("account")
    if account is not None and account != conn.account_id:
        raise MalformedEvent("the event's account is not the connected Stripe account")


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    # Current API: invoice.parent.subscription_details.subscription; older: invoice.subscription.
    parent = invoice.get("parent")
    if isinstance(parent, dict):
        details = parent.get("subscription_details")
        if isinstance(details, dict):
            found = object_id(details.get("subscription"))
            if found:
                return found
    return object_id(invoice.get("subscription"))


def apply_event(db: Session, app_pk: int, event_pk: int) -> str:
    """Apply one stored event to the mirror; returns what happened (recorded on the event)."""
    event = repository.get_event(db, app_pk, event_pk)
    if event is None:
        return "missing"
    if event.handled_at is not None:
        return event.outcome or "done"
    data = event.payload.get("data") if isinstance(event.payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    outcome = "ignored"
    if isinstance(obj, dict) and obj.get("id"):
        if event.type in SUBSCRIPTION_EVENTS:
            applied = store_subscription(
                db, app_pk, obj, version=event.stripe_created, source="webhook"
            )
            outcome = "applied" if applied else "stale"
            row = repository.get_subscription(db, app_pk, str(obj["id"]))
            if applied and row is not None and _unexpanded_discounts(row.raw):
                # A discount the mirror has not seen: only its id came; read its coupon once.
                request_refresh(db, app_pk, str(obj["id"]), reason=f"discount:{event.event_id}")
                outcome = "applied_refresh"
            if not applied:
                if row is not None and row.version == event.stripe_created and row.raw != obj:
                    # Two changes in the same second arrived out of order: only Stripe knows
                    # which is last, so ask it once.
                    request_refresh(db, app_pk, str(obj["id"]), reason=f"tie:{event.event_id}")
                    outcome = "tie_refresh"
        elif event.type in CUSTOMER_EVENTS:
            applied = store_customer(db, app_pk, obj, version=event.stripe_created)
            outcome = "applied" if applied else "stale"
        elif event.type in CUSTOMER_DISCOUNT_EVENTS and is_customer_discount(obj):
            # A coupon named only by id is read by the next attribution sync (no Stripe call
            # here); a customer the mirror lacks is retrieved there if a watch needs it.
            outcome = apply_customer_discount(
                db, app_pk, event.type, obj, version=event.stripe_created
            )
        elif event.type in PRODUCT_EVENTS:
            applied = repository.upsert_product(db, app_pk, obj, version=event.stripe_created)
            outcome = "applied" if applied else "stale"
        elif event.type in INVOICE_EVENTS:
            subscription_id = _invoice_subscription(obj)
            if subscription_id:
                # The invoice changes the subscription's status (past_due -> active, ...)
                # without its own subscription event in every case: read it once.
                request_refresh(db, app_pk, subscription_id, reason=f"event:{event.event_id}")
                outcome = "refresh"
    event.handled_at = utcnow()
    event.outcome = outcome
    return outcome


def request_refresh(db: Session, app_pk: int, subscription_id: str, *, reason: str) -> None:
    jobs.enqueue(
        db,
        "mirror.refresh_subscription",
        {"subscription_id": subscription_id},
        app_pk=app_pk,
        unique_key=f"mirror.refresh:{app_pk}:{subscription_id}:{reason}"[:200],
    )


# --- backfill ------------------------------------------------------------------------------


def start_backfill(db: Session, app: App, *, restart: bool = False) -> MirrorBackfill:
    """Create or resume the app's backfill record (``restart`` begins again from the first page)."""
    state = repository.get_backfill(db, app.id)
    if state is None:
        state = MirrorBackfill(app_pk=app.id, status="running", pages=0, subscriptions=0)
        db.add(state)
        db.flush()
        return state
    if restart or state.status == "done":
        state.cursor = None
        state.pages = 0
        state.subscriptions = 0
        state.started_at = utcnow()
    state.status = "running"
    state.finished_at = None
    state.error = None
    return state


MAX_PRODUCT_PAGES = 1000


def _backfill_products(db: Session, app_pk: int, provider: BillingProvider, version: int) -> None:
    cursor: str | None = None
    for _ in range(MAX_PRODUCT_PAGES):
        products, has_more = provider.list_products(starting_after=cursor)
        repository.upsert_products(
            db,
            [
                repository.product_values(app_pk, p, version=version)
                for p in products
                if p.get("id")
            ],
        )
        if not has_more or not products:
            return
        cursor = str(products[-1]["id"])


def backfill_page(db: Session, app_pk: int, provider: BillingProvider) -> MirrorBackfill:
    """Store one page (100 subscriptions, status=all, expanded) after the saved cursor."""
    state = repository.get_backfill(db, app_pk)
    if state is None:
        raise NotFound("no backfill started for this app")
    if state.status == "done":
        return state
    # A page is as new as the moment its read began: a webhook stored meanwhile is newer.
    version = int(utcnow().timestamp())
    if state.pages == 0 and state.cursor is None:
        # Subscription lists cannot expand products (4 levels at most): copy them first.
        _backfill_products(db, app_pk, provider, version)
    page = provider.list_subscriptions(starting_after=state.cursor, limit=100)
    store_subscriptions(db, app_pk, page.raw, version=version, source="backfill")
    state.pages += 1
    state.subscriptions += len(page.raw)
    if page.last_id:
        state.cursor = page.last_id
    if not page.has_more:
        state.status = "done"
        state.finished_at = utcnow()
    return state
