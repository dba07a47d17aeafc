"""A subscription as flat, stable dotted fields (Brightback's source names).

The names stay the same whatever Stripe's API version moved: ``subscription.plan.*``
comes from the first item's price (``items.data[0].price``), the subscription's
period from its items' periods, ``subscription.discount.*`` from the first discount.
Times are Stripe's epoch seconds (a mapping of type date/datetime turns them into ISO).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from stayflow.billing.provider import Price, Subscription

# The documented names, present in every listing (null when a subscription lacks them).
STABLE_FIELDS = (
    "subscription.id",
    "subscription.status",
    "subscription.currency",
    "subscription.created",
    "subscription.start_date",
    "subscription.current_period_start",
    "subscription.current_period_end",
    "subscription.trial_start",
    "subscription.trial_end",
    "subscription.cancel_at_period_end",
    "subscription.cancel_at",
    "subscription.canceled_at",
    "subscription.ended_at",
    "subscription.paused",
    "subscription.livemode",
    "subscription.quantity",
    "subscription.items.count",
    "subscription.plan.id",
    "subscription.plan.interval",
    "subscription.plan.interval_count",
    "subscription.plan.amount",
    "subscription.plan.amount_decimal",
    "subscription.plan.currency",
    "subscription.plan.billing_scheme",
    "subscription.plan.nickname",
    "subscription.plan.product.id",
    "subscription.plan.product.name",
    "subscription.customer.id",
    "subscription.customer.created",
    "subscription.customer.email",
    "subscription.customer.name",
    "subscription.discount.id",
    "subscription.discount.coupon.id",
    "subscription.discount.coupon.name",
    "subscription.discount.coupon.percent_off",
    "subscription.discount.coupon.amount_off",
    "subscription.discount.coupon.currency",
    "subscription.discount.coupon.duration",
    "subscription.discount.coupon.duration_in_months",
    "subscription.discount.promotion_code",
)
MAX_ITEMS = 10


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _decimal_text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _price_fields(prefix: str, price: Price) -> dict[str, Any]:
    return {
        f"{prefix}.id": price.id or None,
        f"{prefix}.interval": price.interval,
        f"{prefix}.interval_count": price.interval_count,
        f"{prefix}.amount": price.unit_amount,
        f"{prefix}.amount_decimal": _decimal_text(price.unit_amount_decimal),
        f"{prefix}.currency": price.currency or None,
        f"{prefix}.billing_scheme": price.billing_scheme,
        f"{prefix}.nickname": price.nickname,
        f"{prefix}.product.id": price.product_id,
        f"{prefix}.product.name": price.product.name if price.product else None,
    }


def flatten_subscription(sub: Subscription, *, keep_nulls: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(STABLE_FIELDS)
    out.update(
        {
            "subscription.id": sub.id,
            "subscription.status": sub.status,
            "subscription.currency": sub.currency,
            "subscription.created": _epoch(sub.created),
            "subscription.start_date": _epoch(sub.start_date),
            "subscription.current_period_start": _epoch(sub.current_period_start),
            "subscription.current_period_end": _epoch(sub.current_period_end),
            "subscription.trial_start": _epoch(sub.trial_start),
            "subscription.trial_end": _epoch(sub.trial_end),
            "subscription.cancel_at_period_end": sub.cancel_at_period_end,
            "subscription.cancel_at": _epoch(sub.cancel_at),
            "subscription.canceled_at": _epoch(sub.canceled_at),
            "subscription.ended_at": _epoch(sub.ended_at),
            "subscription.paused": sub.paused,
            "subscription.livemode": sub.livemode,
            "subscription.items.count": len(sub.items),
            "subscription.customer.id": sub.customer_id or None,
        }
    )
    if sub.items:
        first = sub.items[0]
        out["subscription.quantity"] = first.quantity
        out.update(_price_fields("subscription.plan", first.price))
    for index, item in enumerate(sub.items[:MAX_ITEMS]):
        prefix = f"subscription.items.{index}"
        out[f"{prefix}.id"] = item.id or None
        out[f"{prefix}.quantity"] = item.quantity
        out[f"{prefix}.current_period_start"] = _epoch(item.current_period_start)
        out[f"{prefix}.current_period_end"] = _epoch(item.current_period_end)
        out.update(_price_fields(f"{prefix}.price", item.price))
    if sub.customer is not None:
        out["subscription.customer.created"] = _epoch(sub.customer.created)
        out["subscription.customer.email"] = sub.customer.email
        out["subscription.customer.name"] = sub.customer.name
        for key, value in sorted(sub.customer.metadata.items()):
            out[f"subscription.customer.metadata.{key}"] = value
    if sub.discounts:
        discount = sub.discounts[0]
        out["subscription.discount.id"] = discount.id
        out["subscription.discount.promotion_code"] = discount.promotion_code_id
        if discount.coupon is not None:
            coupon = discount.coupon
            out["subscription.discount.coupon.id"] = coupon.id
            out["subscription.discount.coupon.name"] = coupon.name
            out["subscription.discount.coupon.percent_off"] = _number(coupon.percent_off)
            out["subscription.discount.coupon.amount_off"] = coupon.amount_off
            out["subscription.discount.coupon.currency"] = coupon.currency
            out["subscription.discount.coupon.duration"] = coupon.duration
            out["subscription.discount.coupon.duration_in_months"] = coupon.duration_in_months
    for key, value in sorted(sub.metadata.items()):
        out[f"subscription.metadata.{key}"] = value
    if keep_nulls:
        return out
    return {k: v for k, v in out.items() if v is not None}


def flatten_mapping(value: Any, prefix: str = "", *, depth: int = 0) -> dict[str, Any]:
    """A nested dict (the snippet's ``custom`` and ``account``) as dotted leaves."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and depth < 6:
        for key, inner in value.items():
            out.update(
                flatten_mapping(inner, f"{prefix}.{key}" if prefix else str(key), depth=depth + 1)
            )
    elif prefix:
        out[prefix] = value
    return out
