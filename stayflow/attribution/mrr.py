"""Monthly recurring revenue of one subscription, from Stripe's JSON (a mirror row's ``raw``).

Pure functions, no database, no clock: the caller says at which moment (``at``) it asks.

The rules (docs/attribution.md has a worked example of each):

- per item: unit amount x quantity, normalized to a month: ``year`` / 12, ``month`` x 1,
  ``week`` x 52 / 12, ``day`` x 365 / 12, then / ``interval_count`` (a quarter is a month
  price with ``interval_count`` 3); metered and one-time prices are left out, as is tax;
- less the discounts that apply at ``at``: the subscription's own, else the customer's; a
  discount applies from its ``start`` until its ``end`` (``repeating``) or for as long as Stripe
  keeps it on the subscription (``once`` until its invoice, ``forever`` always); percent off the
  remaining amount, or ``amount_off`` per invoice normalized to a month like the price;
- a subscription trialing, paused (``status`` paused or ``pause_collection`` set) or ended is 0;
- exact fractions throughout, rounded half-up once, at the end, to integer minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

# Whole months per interval unit, as a fraction (a day is 365/12 months' worth of days...).
MONTHLY_FACTOR: dict[str, Fraction] = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}
# Statuses whose MRR is 0 whatever the items say.
ZERO_STATUSES = frozenset({"trialing", "paused", "canceled", "incomplete", "incomplete_expired"})


@dataclass(frozen=True)
class Mrr:
    """An MRR in integer minor units of ``currency`` (None when Stripe did not say)."""

    amount: int
    currency: str | None


def round_half_up(value: Fraction) -> int:
    """Half-up on the magnitude (2.5 -> 3, -2.5 -> -3); MRR is never negative in practice."""
    sign = -1 if value < 0 else 1
    return sign * int((abs(value) + Fraction(1, 2)) // 1)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fraction(value: Any) -> Fraction | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None


def per_month(interval: str | None, interval_count: int | None) -> Fraction | None:
    """How many times a month this billing interval comes round; None for an unknown one."""
    factor = MONTHLY_FACTOR.get(interval or "")
    if factor is None:
        return None
    count = interval_count if interval_count and interval_count > 0 else 1
    return factor / count


def _price(item: dict[str, Any]) -> dict[str, Any] | None:
    for key in ("price", "plan"):
        found = item.get(key)
        if isinstance(found, dict):
            return found
    return None


def _recurring(price: dict[str, Any]) -> tuple[str | None, int | None, str | None]:
    """(interval, interval_count, usage_type), from a Price or a legacy Plan."""
    recurring = price.get("recurring")
    if isinstance(recurring, dict):
        return (
            recurring.get("interval"),
            _int(recurring.get("interval_count")),
            recurring.get("usage_type"),
        )
    return price.get("interval"), _int(price.get("interval_count")), price.get("usage_type")


def item_monthly(item: dict[str, Any]) -> Fraction:
    """One item's monthly amount before discounts (0 for metered, one-time or unknown)."""
    price = _price(item)
    if price is None or price.get("type") == "one_time":
        return Fraction(0)
    interval, count, usage_type = _recurring(price)
    factor = per_month(interval, count)
    if factor is None or usage_type == "metered":
        return Fraction(0)
    unit = _fraction(price.get("unit_amount_decimal"))
    if unit is None:
        unit = _fraction(price.get("unit_amount", price.get("amount")))
    if unit is None:  # tiered prices have no unit amount: left out (usage-like)
        return Fraction(0)
    quantity = _int(item.get("quantity"))
    return unit * (1 if quantity is None else quantity) * factor


def _items(raw: dict[str, Any]) -> list[dict[str, Any]]:
    items = raw.get("items")
    data = items.get("data", []) if isinstance(items, dict) else []
    return [i for i in data if isinstance(i, dict)]


def billing_factor(raw: dict[str, Any]) -> Fraction:
    """Invoices a month (the first item's interval): turns a per-invoice amount_off monthly."""
    for item in _items(raw):
        price = _price(item)
        if price is not None:
            interval, count, _ = _recurring(price)
            factor = per_month(interval, count)
            if factor is not None:
                return factor
    return Fraction(1)


def coupon_of(discount: Any) -> dict[str, Any] | None:
    """The coupon of a discount object (current API: ``source.coupon``; older: ``coupon``)."""
    if not isinstance(discount, dict):
        return None
    source = discount.get("source")
    coupon = source.get("coupon") if isinstance(source, dict) else discount.get("coupon")
    return coupon if isinstance(coupon, dict) else None


def discount_applies(discount: dict[str, Any], at: int) -> bool:
    """In force at ``at`` (epoch seconds): started, and not past a repeating coupon's end."""
    start = _int(discount.get("start"))
    end = _int(discount.get("end"))
    if start is not None and at < start:
        return False
    return end is None or at < end


def discounts_in_force(
    raw: dict[str, Any], customer: dict[str, Any] | None, at: int
) -> list[dict[str, Any]]:
    """The discounts that apply: the subscription's own, or else the customer's.

    Stripe applies a customer's discount to a subscription only when the subscription has
    no discount of its own.
    """
    own = [d for d in raw.get("discounts") or [] if isinstance(d, dict)]
    if not own and isinstance(raw.get("discount"), dict):
        own = [raw["discount"]]
    if own:
        return [d for d in own if discount_applies(d, at)]
    found = customer.get("discount") if isinstance(customer, dict) else None
    if isinstance(found, dict) and discount_applies(found, at):
        return [found]
    return []


def is_zero(raw: dict[str, Any], at: int) -> bool:
    """Trialing, paused or ended at ``at``: no recurring revenue."""
    status = str(raw.get("status") or "")
    if status in ZERO_STATUSES:
        return True
    trial_end = _int(raw.get("trial_end"))
    if trial_end is not None and at < trial_end:
        return True
    pause = raw.get("pause_collection")
    if isinstance(pause, dict):
        resumes = _int(pause.get("resumes_at"))
        if resumes is None or at < resumes:
            return True
    return False


def monthly_exact(raw: dict[str, Any], customer: dict[str, Any] | None, at: int) -> Fraction:
    """The MRR as an exact fraction of minor units (discounts applied, not yet rounded)."""
    if is_zero(raw, at):
        return Fraction(0)
    gross = sum((item_monthly(i) for i in _items(raw)), Fraction(0))
    currency = str(raw.get("currency") or "").lower()
    factor = billing_factor(raw)
    remaining = gross
    for discount in discounts_in_force(raw, customer, at):
        coupon = coupon_of(discount)
        if coupon is None or remaining <= 0:
            continue
        percent = _fraction(coupon.get("percent_off"))
        amount_off = _int(coupon.get("amount_off"))
        if percent is not None:
            remaining -= remaining * percent / 100
        elif amount_off is not None:
            coupon_currency = str(coupon.get("currency") or "").lower()
            if coupon_currency and currency and coupon_currency != currency:
                continue  # Stripe refuses such a coupon; never convert silently
            remaining -= min(remaining, amount_off * factor)
    return max(remaining, Fraction(0))


def mrr(raw: dict[str, Any], *, at: int, customer: dict[str, Any] | None = None) -> Mrr:
    """The subscription's MRR at ``at`` (epoch seconds), rounded half-up once."""
    currency = raw.get("currency")
    return Mrr(
        amount=round_half_up(monthly_exact(raw, customer, at)),
        currency=str(currency).lower() if currency else None,
    )
