"""Every query on the mirror; always by app. Upserts never move a row back in version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from stayflow.billing.stripe.convert import epoch_to_utc, object_id
from stayflow.db import utcnow
from stayflow.mirror.models import (
    MirrorBackfill,
    MirrorCustomer,
    MirrorProduct,
    MirrorSubscription,
    StripeEvent,
)

# Stripe never brings a subscription back from these.
TERMINAL_STATUSES = ("canceled", "incomplete_expired")


def _insert(db: Session, model: Any) -> Any:
    dialect = db.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _moves_forward(table: Any, excluded: Any) -> Any:
    """The ON CONFLICT condition: newer data only; a live read at the same second wins a tie."""
    return or_(
        table.version < excluded.version,
        and_(table.version == excluded.version, excluded.source == "live"),
    )


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


def subscription_values(
    app_pk: int, raw: dict[str, Any], *, version: int, source: str
) -> dict[str, Any]:
    return {
        "app_pk": app_pk,
        "subscription_id": str(raw["id"]),
        "customer_id": object_id(raw.get("customer")) or "",
        "status": str(raw.get("status") or ""),
        "cancel_at_period_end": bool(raw.get("cancel_at_period_end")),
        "current_period_end": _period_end(raw),
        "currency": raw.get("currency"),
        "livemode": bool(raw.get("livemode")),
        "raw": raw,
        "version": version,
        "source": source,
        "synced_at": utcnow(),
    }


def upsert_subscriptions(db: Session, rows: list[dict[str, Any]]) -> int:
    """Insert or move rows forward in one statement; returns how many were written.

    ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` on both backends: a row only moves
    to newer data, and never out of a terminal status (Stripe never revives one).
    """
    if not rows:
        return 0
    stmt = _insert(db, MirrorSubscription).values(rows)
    excluded = stmt.excluded
    table = MirrorSubscription
    condition = and_(
        _moves_forward(table, excluded),
        or_(table.status.not_in(TERMINAL_STATUSES), excluded.status.in_(TERMINAL_STATUSES)),
    )
    updated = {
        name: getattr(excluded, name)
        for name in (
            "customer_id",
            "status",
            "cancel_at_period_end",
            "current_period_end",
            "currency",
            "livemode",
            "raw",
            "version",
            "source",
            "synced_at",
        )
    }
    # RETURNING counts what was written on both backends (rowcount is -1 for a multi-row
    # INSERT on psycopg).
    written = db.execute(
        stmt.on_conflict_do_update(
            index_elements=["app_pk", "subscription_id"], set_=updated, where=condition
        )
        .returning(MirrorSubscription.id)
        .execution_options(synchronize_session=False)
    ).all()
    return len(written)


def upsert_subscription(
    db: Session, app_pk: int, raw: dict[str, Any], *, version: int, source: str
) -> bool:
    """Insert or move the row forward; False when the stored row is as new or newer."""
    values = subscription_values(app_pk, raw, version=version, source=source)
    return upsert_subscriptions(db, [values]) > 0


def _upsert_simple(
    db: Session, model: Any, key: str, rows: list[dict[str, Any]], columns: tuple[str, ...]
) -> int:
    if not rows:
        return 0
    # One row per key per statement (PostgreSQL refuses to update a row twice in one).
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = latest.get(row[key])
        if kept is None or row["version"] >= kept["version"]:
            latest[row[key]] = row
    stmt = _insert(db, model).values(list(latest.values()))
    excluded = stmt.excluded
    # Customers and products have no "live" tie-breaker column: a same-second copy wins.
    condition = model.version <= excluded.version
    written = db.execute(
        stmt.on_conflict_do_update(
            index_elements=["app_pk", key],
            set_={name: getattr(excluded, name) for name in columns},
            where=condition,
        )
        .returning(model.id)
        .execution_options(synchronize_session=False)
    ).all()
    return len(written)


def customer_values(app_pk: int, raw: dict[str, Any], *, version: int) -> dict[str, Any]:
    return {
        "app_pk": app_pk,
        "customer_id": str(raw["id"]),
        "email": (str(raw["email"])[:320] if raw.get("email") else None),
        "raw": raw,
        "version": version,
        "synced_at": utcnow(),
    }


def product_values(app_pk: int, raw: dict[str, Any], *, version: int) -> dict[str, Any]:
    name = raw.get("name")
    return {
        "app_pk": app_pk,
        "product_id": str(raw["id"]),
        "name": str(name)[:500] if name else None,
        "raw": raw,
        "version": version,
        "synced_at": utcnow(),
    }


def upsert_customers(db: Session, rows: list[dict[str, Any]]) -> int:
    return _upsert_simple(
        db, MirrorCustomer, "customer_id", rows, ("email", "raw", "version", "synced_at")
    )


def upsert_products(db: Session, rows: list[dict[str, Any]]) -> int:
    return _upsert_simple(
        db, MirrorProduct, "product_id", rows, ("name", "raw", "version", "synced_at")
    )


def upsert_customer(db: Session, app_pk: int, raw: dict[str, Any], *, version: int) -> bool:
    return upsert_customers(db, [customer_values(app_pk, raw, version=version)]) > 0


def upsert_product(db: Session, app_pk: int, raw: dict[str, Any], *, version: int) -> bool:
    return upsert_products(db, [product_values(app_pk, raw, version=version)]) > 0


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


def list_subscriptions(db: Session, app_pk: int, *, limit: int) -> Sequence[MirrorSubscription]:
    """The app's mirrored subscriptions, most recently synced first."""
    return db.scalars(
        select(MirrorSubscription)
        .where(MirrorSubscription.app_pk == app_pk)
        .order_by(MirrorSubscription.synced_at.desc(), MirrorSubscription.id.desc())
        .limit(limit)
    ).all()
