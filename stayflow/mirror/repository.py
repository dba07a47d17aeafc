"""Every query on the mirror; always by app. Upserts never move a row back in version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, false, or_, select, true, update
from sqlalchemy.orm import Session

from stayflow.billing.stripe.convert import epoch_to_utc, object_id
from stayflow.db import insert_ignoring_conflicts, utcnow
from stayflow.mirror.models import (
    MirrorBackfill,
    MirrorCustomer,
    MirrorProduct,
    MirrorSubscription,
    StripeEvent,
)

# Stripe never brings a subscription back from these.
TERMINAL_STATUSES = ("canceled", "incomplete_expired")


def _newer(column: Any, version: int, *, live: bool) -> Any:
    # A live read at the same second wins a tie: it is the truth as of now.
    return or_(column < version, and_(column == version, true() if live else false()))


def _period_end(raw: dict[str, Any]) -> Any:
    items = raw.get("items")
    data = items.get("data", []) if isinstance(items, dict) else []
    ends: list[int] = [
        i["current_period_end"]
        for i in data
        if isinstance(i, dict) and isinstance(i.get("current_period_end"), int)
    ]
    if not ends and isinstance(raw.get("current_period_end"), int):
        ends = [raw["current_period_end"]]
    return epoch_to_utc(min(ends)) if ends else None


def upsert_subscription(
    db: Session, app_pk: int, raw: dict[str, Any], *, version: int, source: str
) -> bool:
    """Insert or move the row forward; False when the stored row is as new or newer."""
    status = str(raw.get("status") or "")
    values: dict[str, Any] = {
        "app_pk": app_pk,
        "subscription_id": str(raw["id"]),
        "customer_id": object_id(raw.get("customer")) or "",
        "status": status,
        "cancel_at_period_end": bool(raw.get("cancel_at_period_end")),
        "current_period_end": _period_end(raw),
        "currency": raw.get("currency"),
        "livemode": bool(raw.get("livemode")),
        "raw": raw,
        "version": version,
        "source": source,
        "synced_at": utcnow(),
    }
    if insert_ignoring_conflicts(db, MirrorSubscription, values, on=["app_pk", "subscription_id"]):
        return True
    condition = _newer(MirrorSubscription.version, version, live=source == "live")
    if status not in TERMINAL_STATUSES:
        condition = and_(condition, MirrorSubscription.status.not_in(TERMINAL_STATUSES))
    result = db.execute(
        update(MirrorSubscription)
        .where(
            MirrorSubscription.app_pk == app_pk,
            MirrorSubscription.subscription_id == values["subscription_id"],
            condition,
        )
        .values({k: v for k, v in values.items() if k not in ("app_pk", "subscription_id")})
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def upsert_customer(db: Session, app_pk: int, raw: dict[str, Any], *, version: int) -> bool:
    values: dict[str, Any] = {
        "app_pk": app_pk,
        "customer_id": str(raw["id"]),
        "email": (str(raw["email"])[:320] if raw.get("email") else None),
        "raw": raw,
        "version": version,
        "synced_at": utcnow(),
    }
    if insert_ignoring_conflicts(db, MirrorCustomer, values, on=["app_pk", "customer_id"]):
        return True
    result = db.execute(
        update(MirrorCustomer)
        .where(
            MirrorCustomer.app_pk == app_pk,
            MirrorCustomer.customer_id == values["customer_id"],
            _newer(MirrorCustomer.version, version, live=True),
        )
        .values(email=values["email"], raw=raw, version=version, synced_at=values["synced_at"])
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def upsert_product(db: Session, app_pk: int, raw: dict[str, Any], *, version: int) -> bool:
    name = raw.get("name")
    values: dict[str, Any] = {
        "app_pk": app_pk,
        "product_id": str(raw["id"]),
        "name": str(name)[:500] if name else None,
        "raw": raw,
        "version": version,
        "synced_at": utcnow(),
    }
    if insert_ignoring_conflicts(db, MirrorProduct, values, on=["app_pk", "product_id"]):
        return True
    result = db.execute(
        update(MirrorProduct)
        .where(
            MirrorProduct.app_pk == app_pk,
            MirrorProduct.product_id == values["product_id"],
            _newer(MirrorProduct.version, version, live=True),
        )
        .values(name=values["name"], raw=raw, version=version, synced_at=values["synced_at"])
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def get_subscription(db: Session, app_pk: int, subscription_id: str) -> MirrorSubscription | None:
    return db.scalar(
        select(MirrorSubscription)
        .where(
            MirrorSubscription.app_pk == app_pk,
            MirrorSubscription.subscription_id == subscription_id,
        )
        .execution_options(populate_existing=True)
    )


def get_customer(db: Session, app_pk: int, customer_id: str) -> MirrorCustomer | None:
    return db.scalar(
        select(MirrorCustomer)
        .where(MirrorCustomer.app_pk == app_pk, MirrorCustomer.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )


def get_products(db: Session, app_pk: int, product_ids: list[str]) -> dict[str, MirrorProduct]:
    if not product_ids:
        return {}
    rows = db.scalars(
        select(MirrorProduct)
        .where(MirrorProduct.app_pk == app_pk, MirrorProduct.product_id.in_(product_ids))
        .execution_options(populate_existing=True)
    ).all()
    return {row.product_id: row for row in rows}


def get_event(db: Session, app_pk: int, event_pk: int) -> StripeEvent | None:
    return db.scalar(
        select(StripeEvent).where(StripeEvent.app_pk == app_pk, StripeEvent.id == event_pk)
    )


def get_event_by_stripe_id(db: Session, app_pk: int, event_id: str) -> StripeEvent | None:
    return db.scalar(
        select(StripeEvent).where(StripeEvent.app_pk == app_pk, StripeEvent.event_id == event_id)
    )


def get_backfill(db: Session, app_pk: int) -> MirrorBackfill | None:
    return db.scalar(
        select(MirrorBackfill)
        .where(MirrorBackfill.app_pk == app_pk)
        .execution_options(populate_existing=True)
    )
