"""Every query on the mirror; always by app. Upserts never move a row back in version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Table,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
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


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def subscription_states(
    db: Session, app_pk: int, subscription_ids: list[str]
) -> dict[str, tuple[int, str]]:
    """Per stored subscription id: its (version, status), read 500 ids a query."""
    found: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(sorted(set(subscription_ids))):
        for sub_id, version, status in db.execute(
            select(
                MirrorSubscription.subscription_id,
                MirrorSubscription.version,
                MirrorSubscription.status,
            ).where(
                MirrorSubscription.app_pk == app_pk,
                MirrorSubscription.subscription_id.in_(chunk),
            )
        ).all():
            found[sub_id] = (int(version), str(status))
    return found


def subscription_raws(
    db: Session, app_pk: int, subscription_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Per stored subscription id: its raw object, read 500 ids a query."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(subscription_ids))):
        for sub_id, raw in db.execute(
            select(MirrorSubscription.subscription_id, MirrorSubscription.raw).where(
                MirrorSubscription.app_pk == app_pk,
                MirrorSubscription.subscription_id.in_(chunk),
            )
        ).all():
            found[sub_id] = raw
    return found


def _moves_forward_to(stored: tuple[int, str], row: dict[str, Any]) -> bool:
    """The same checks as the UPDATE's WHERE, on what was read: newer (a live read wins a
    tie), and never out of a terminal status."""
    version, status = stored
    newer = version < row["version"] or (version == row["version"] and row["source"] == "live")
    return newer and (status not in TERMINAL_STATUSES or row["status"] in TERMINAL_STATUSES)


_SUBSCRIPTION_COLUMNS = (
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


def _subscription_update() -> Any:
    """``UPDATE ... WHERE`` the row is older (a live read wins a tie) and not terminal unless
    the new status is too; executed once for many rows (one compiled statement)."""
    t = cast(Table, MirrorSubscription.__table__)
    not_terminal = and_(*(t.c.status != literal(s) for s in TERMINAL_STATUSES))
    return (
        update(t)
        .where(
            t.c.app_pk == bindparam("k_app_pk"),
            t.c.subscription_id == bindparam("k_subscription_id"),
            or_(
                t.c.version < bindparam("k_version", type_=BigInteger),
                and_(
                    t.c.version == bindparam("k_version", type_=BigInteger),
                    bindparam("k_live", type_=Integer) == 1,
                ),
            ),
            or_(not_terminal, bindparam("k_to_terminal", type_=Integer) == 1),
        )
        .values({name: bindparam("v_" + name) for name in _SUBSCRIPTION_COLUMNS})
    )


def upsert_subscriptions(db: Session, rows: list[dict[str, Any]]) -> int:
    """Insert or move rows forward, set-based; returns how many were written.

    One query reads the stored (version, status) of every id (500 a query); the new ids go in
    one executemany ``INSERT ... ON CONFLICT DO NOTHING``; the rows that move forward (newer,
    and never out of a terminal status: Stripe never revives one) in one executemany
    ``UPDATE`` whose WHERE repeats those checks, so a row another writer moved meanwhile is
    never rolled back. Rows are of one app.
    """
    if not rows:
        return 0
    app_pk = rows[0]["app_pk"]
    assert all(row["app_pk"] == app_pk for row in rows), "one app per call"
    stored = subscription_states(db, app_pk, [row["subscription_id"] for row in rows])
    fresh = [row for row in rows if row["subscription_id"] not in stored]
    moving = [
        row
        for row in rows
        if row["subscription_id"] in stored
        and _moves_forward_to(stored[row["subscription_id"]], row)
    ]
    written = 0
    if fresh:
        t = MirrorSubscription.__table__
        inserted = set(
            db.execute(
                _insert(db, t)
                .on_conflict_do_nothing(index_elements=["app_pk", "subscription_id"])
                .returning(t.c.subscription_id),
                fresh,
            ).scalars()
        )
        written += len(inserted)
        # Inserted by another writer since the read: moved forward only if ours is newer.
        moving.extend(row for row in fresh if row["subscription_id"] not in inserted)
    if moving:
        params = [
            {
                "k_app_pk": row["app_pk"],
                "k_subscription_id": row["subscription_id"],
                "k_version": row["version"],
                "k_live": 1 if row["source"] == "live" else 0,
                "k_to_terminal": 1 if row["status"] in TERMINAL_STATUSES else 0,
                **{"v_" + name: row[name] for name in _SUBSCRIPTION_COLUMNS},
            }
            for row in moving
        ]
        written += db.execute(_subscription_update(), params).rowcount  # type: ignore[attr-defined]
    return written


def upsert_subscription(
    db: Session, app_pk: int, raw: dict[str, Any], *, version: int, source: str
) -> bool:
    """Insert or move the row forward; False when the stored row is as new or newer."""
    values = subscription_values(app_pk, raw, version=version, source=source)
    return upsert_subscriptions(db, [values]) > 0


def _upsert_simple(
    db: Session, model: Any, key: str, rows: list[dict[str, Any]], columns: tuple[str, ...]
) -> int:
    """Insert or move customers / products forward, set-based like ``upsert_subscriptions``.

    They have no "live" tie-breaker column: a same-second copy wins.
    """
    if not rows:
        return 0
    # One row per key (the newest).
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = latest.get(row[key])
        if kept is None or row["version"] >= kept["version"]:
            latest[row[key]] = row
    app_pk = rows[0]["app_pk"]
    assert all(row["app_pk"] == app_pk for row in rows), "one app per call"
    t = model.__table__
    stored: dict[str, int] = {}
    for chunk in _chunks(sorted(latest)):
        for found, version in db.execute(
            select(t.c[key], t.c.version).where(t.c.app_pk == app_pk, t.c[key].in_(chunk))
        ).all():
            stored[found] = int(version)
    fresh = [row for k, row in latest.items() if k not in stored]
    moving = [row for k, row in latest.items() if k in stored and stored[k] <= row["version"]]
    written = 0
    if fresh:
        inserted = set(
            db.execute(
                _insert(db, t)
                .on_conflict_do_nothing(index_elements=["app_pk", key])
                .returning(t.c[key]),
                fresh,
            ).scalars()
        )
        written += len(inserted)
        moving.extend(row for row in fresh if row[key] not in inserted)
    if moving:
        stmt = (
            update(t)
            .where(
                t.c.app_pk == bindparam("k_app_pk"),
                t.c[key] == bindparam("k_key"),
                t.c.version <= bindparam("k_version", type_=BigInteger),
            )
            .values({name: bindparam("v_" + name) for name in columns})
        )
        params = [
            {
                "k_app_pk": row["app_pk"],
                "k_key": row[key],
                "k_version": row["version"],
                **{"v_" + name: row[name] for name in columns},
            }
            for row in moving
        ]
        written += db.execute(stmt, params).rowcount  # type: ignore[attr-defined]
    return written


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


def customer_raws(db: Session, app_pk: int, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per stored customer id: its raw object, read 500 ids a query."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        for customer_id, raw in db.execute(
            select(MirrorCustomer.customer_id, MirrorCustomer.raw).where(
                MirrorCustomer.app_pk == app_pk, MirrorCustomer.customer_id.in_(chunk)
            )
        ).all():
            found[customer_id] = raw
    return found


def get_customers(db: Session, app_pk: int, customer_ids: list[str]) -> dict[str, MirrorCustomer]:
    found: dict[str, MirrorCustomer] = {}
    for chunk in _chunks(sorted(set(customer_ids))):
        for row in db.scalars(
            select(MirrorCustomer)
            .where(MirrorCustomer.app_pk == app_pk, MirrorCustomer.customer_id.in_(chunk))
            .execution_options(populate_existing=True)
        ).all():
            found[row.customer_id] = row
    return found


def customers_naming_coupons(
    db: Session, app_pk: int, since: datetime | None, limit: int
) -> dict[str, str]:
    """Customers stored after ``since`` (all when None) whose discount names its coupon only
    by id: customer id -> coupon id. The JSON test runs in the database on the rows the
    (app_pk, synced_at) index finds."""
    path: Any
    condition: Any
    if db.get_bind().dialect.name == "postgresql":
        # An untyped literal: PostgreSQL reads it as the text[] path the operators take.
        where: Any = literal_column("'{discount,source,coupon}'")
        path = MirrorCustomer.raw.op("#>>")(where)
        named = func.jsonb_typeof(MirrorCustomer.raw.op("#>")(where))
        condition = named == "string"
    else:
        path = func.json_extract(MirrorCustomer.raw, "$.discount.source.coupon")
        condition = func.json_type(MirrorCustomer.raw, "$.discount.source.coupon") == "text"
    query = select(MirrorCustomer.customer_id, path).where(MirrorCustomer.app_pk == app_pk)
    if since is not None:
        query = query.where(MirrorCustomer.synced_at > since)
    rows = db.execute(
        query.where(condition).order_by(MirrorCustomer.customer_id).limit(limit)
    ).all()
    return {customer_id: str(coupon) for customer_id, coupon in rows}


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
