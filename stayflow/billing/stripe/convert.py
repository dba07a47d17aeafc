"""Stripe's JSON (current API shape) into stayflow's billing records.

Works on plain dicts (``StripeObject.to_dict()``, a webhook payload or a mirror row),
so the mirror can rebuild a record without asking Stripe again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from stayflow.billing.provider import (
    Coupon,
    Customer,
    Discount,
    Invoice,
    Price,
    Product,
    Subscription,
    SubscriptionItem,
)


def epoch_to_utc(value: Any) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def object_id(value: Any) -> str | None:
    """The id of an expandable field, whether it came expanded (a dict) or not (a string)."""
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found else None
    if isinstance(value, str) and value:
        return value
    return None


def product_from(value: Any) -> Product | None:
    if not isinstance(value, dict) or not value.get("id"):
        return None
    return Product(
        id=str(value["id"]), name=value.get("name"), metadata=_str_map(value.get("metadata"))
    )


def price_from(value: dict[str, Any]) -> Price:
    recurring = value.get("recurring") if isinstance(value.get("recurring"), dict) else {}
    assert isinstance(recurring, dict)
    product = value.get("product")
    return Price(
        id=str(value.get("id") or ""),
        currency=str(value.get("currency") or "").lower(),
        unit_amount=_int(value.get("unit_amount", value.get("amount"))),
        unit_amount_decimal=_decimal(value.get("unit_amount_decimal", value.get("amount_decimal"))),
        interval=recurring.get("interval") or value.get("interval"),
        interval_count=_int(recurring.get("interval_count", value.get("interval_count"))),
        billing_scheme=value.get("billing_scheme"),
        nickname=value.get("nickname"),
        product_id=object_id(product),
        product=product_from(product),
    )


def customer_from(value: Any) -> Customer | None:
    if not isinstance(value, dict) or not value.get("id") or value.get("deleted"):
        return None
    return Customer(
        id=str(value["id"]),
        email=value.get("email"),
        name=value.get("name"),
        created=epoch_to_utc(value.get("created")),
        metadata=_str_map(value.get("metadata")),
    )


def coupon_from(value: Any) -> Coupon | None:
    if isinstance(value, str) and value:
        return Coupon(id=value)
    if not isinstance(value, dict) or not value.get("id"):
        return None
    return Coupon(
        id=str(value["id"]),
        name=value.get("name"),
        percent_off=_decimal(value.get("percent_off")),
        amount_off=_int(value.get("amount_off")),
        currency=value.get("currency"),
        duration=value.get("duration"),
        duration_in_months=_int(value.get("duration_in_months")),
    )


def discount_from(value: Any) -> Discount | None:
    if isinstance(value, str) and value:
        # Not expanded: only the discount's id is known.
        return Discount(id=value, coupon=None)
    if not isinstance(value, dict):
        return None
    source = value.get("source") if isinstance(value.get("source"), dict) else None
    # Current API: discount.source.coupon; before 2025-03-31: discount.coupon.
    coupon = coupon_from(source.get("coupon") if source else value.get("coupon"))
    return Discount(
        id=value.get("id"),
        coupon=coupon,
        promotion_code_id=object_id(value.get("promotion_code")),
    )


def _item_from(value: dict[str, Any]) -> SubscriptionItem | None:
    price = value.get("price") or value.get("plan")
    if not isinstance(price, dict):
        return None
    return SubscriptionItem(
        id=str(value.get("id") or ""),
        quantity=_int(value.get("quantity")),
        price=price_from(price),
        current_period_start=epoch_to_utc(value.get("current_period_start")),
        current_period_end=epoch_to_utc(value.get("current_period_end")),
    )


def subscription_from(value: dict[str, Any]) -> Subscription:
    items_obj = value.get("items")
    raw_items = items_obj.get("data", []) if isinstance(items_obj, dict) else []
    items = [item for item in (_item_from(i) for i in raw_items if isinstance(i, dict)) if item]
    # Periods that older payloads still carry at the top level fill items that lack them.
    top_start = epoch_to_utc(value.get("current_period_start"))
    top_end = epoch_to_utc(value.get("current_period_end"))
    if top_start or top_end:
        items = [
            SubscriptionItem(
                id=i.id,
                quantity=i.quantity,
                price=i.price,
                current_period_start=i.current_period_start or top_start,
                current_period_end=i.current_period_end or top_end,
            )
            for i in items
        ]
    raw_discounts = value.get("discounts") or []
    if not raw_discounts and value.get("discount"):
        raw_discounts = [value["discount"]]
    discounts = [d for d in (discount_from(x) for x in raw_discounts) if d]
    customer = value.get("customer")
    return Subscription(
        id=str(value.get("id") or ""),
        status=str(value.get("status") or ""),
        customer_id=object_id(customer) or "",
        customer=customer_from(customer),
        currency=(value.get("currency") or None),
        items=items,
        discounts=discounts,
        created=epoch_to_utc(value.get("created")),
        start_date=epoch_to_utc(value.get("start_date")),
        trial_start=epoch_to_utc(value.get("trial_start")),
        trial_end=epoch_to_utc(value.get("trial_end")),
        cancel_at_period_end=bool(value.get("cancel_at_period_end")),
        cancel_at=epoch_to_utc(value.get("cancel_at")),
        canceled_at=epoch_to_utc(value.get("canceled_at")),
        ended_at=epoch_to_utc(value.get("ended_at")),
        paused=bool(value.get("pause_collection")),
        livemode=bool(value.get("livemode")),
        metadata=_str_map(value.get("metadata")),
    )


def invoice_subscription_id(value: dict[str, Any]) -> str | None:
    """Current API: ``parent.subscription_details.subscription``; older: ``subscription``."""
    parent = value.get("parent")
    if isinstance(parent, dict):
        details = parent.get("subscription_details")
        if isinstance(details, dict):
            found = object_id(details.get("subscription"))
            if found:
                return found
    return object_id(value.get("subscription"))


def invoice_from(value: dict[str, Any]) -> Invoice:
    transitions = value.get("status_transitions")
    paid_at = transitions.get("paid_at") if isinstance(transitions, dict) else None
    return Invoice(
        id=str(value.get("id") or ""),
        subscription_id=invoice_subscription_id(value),
        customer_id=object_id(value.get("customer")),
        status=str(value.get("status") or ""),
        currency=(str(value["currency"]).lower() if value.get("currency") else None),
        amount_due=_int(value.get("amount_due")) or 0,
        amount_paid=_int(value.get("amount_paid")) or 0,
        created=_int(value.get("created")) or 0,
        paid_at=_int(paid_at),
    )
