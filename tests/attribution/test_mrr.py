"""The MRR rules on Stripe's JSON shapes (the issue's examples first)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from stayflow.attribution.mrr import mrr, per_month, round_half_up

NOW = 1_800_000_000
DAY = 86_400


def item(
    amount: int, interval: str = "month", count: int = 1, quantity: int = 1, **price: Any
) -> dict[str, Any]:
    return {
        "id": f"si_{amount}_{interval}",
        "quantity": quantity,
        "price": {
            "id": f"price_{amount}",
            "unit_amount": amount,
            "unit_amount_decimal": str(amount),
            "recurring": {
                "interval": interval,
                "interval_count": count,
                "usage_type": price.pop("usage_type", "licensed"),
            },
            "type": "recurring",
            **price,
        },
    }


def sub(
    *items: dict[str, Any], currency: str = "usd", status: str = "active", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "status": status,
        "currency": currency,
        "items": {"data": list(items)},
        "discounts": [],
        **extra,
    }


def discount(
    duration: str = "forever", start: int = NOW - DAY, end: int | None = None, **coupon: Any
) -> dict[str, Any]:
    return {
        "id": "di_1",
        "start": start,
        "end": end,
        "source": {"type": "coupon", "coupon": {"id": "co_1", "duration": duration, **coupon}},
    }


def test_issue_example_yearly_9900_usd() -> None:
    plain = sub(item(9900, "year"))
    assert mrr(plain, at=NOW).amount == 825  # what a cancel of it loses
    kept = sub(item(9900, "year"), discounts=[discount(percent_off=20)])
    assert mrr(kept, at=NOW).amount == 660
    assert mrr(kept, at=NOW).currency == "usd"


def test_issue_example_jpy_monthly_980() -> None:
    found = mrr(sub(item(980), currency="jpy"), at=NOW)
    assert (found.amount, found.currency) == (980, "jpy")


@pytest.mark.parametrize(
    ("interval", "count", "expected"),
    [
        ("month", 1, Fraction(1)),
        ("month", 3, Fraction(1, 3)),  # a quarter
        ("year", 1, Fraction(1, 12)),
        ("week", 1, Fraction(52, 12)),
        ("week", 2, Fraction(26, 12)),
        ("day", 1, Fraction(365, 12)),
        ("decade", 1, None),
    ],
)
def test_per_month(interval: str, count: int, expected: Fraction | None) -> None:
    assert per_month(interval, count) == expected


def test_normalizations() -> None:
    assert mrr(sub(item(3000, "month", 3)), at=NOW).amount == 1000
    assert mrr(sub(item(100, "week")), at=NOW).amount == 433  # 433.33
    assert mrr(sub(item(100, "day")), at=NOW).amount == 3042  # 3041.67
    assert mrr(sub(item(1000, "year", 2)), at=NOW).amount == 42  # 41.67


def test_two_items_with_quantities() -> None:
    raw = sub(item(2000, quantity=2), item(500, quantity=3))
    assert mrr(raw, at=NOW).amount == 5500


def test_metered_and_one_time_left_out() -> None:
    metered = item(7, usage_type="metered")
    one_time = {"id": "si_x", "quantity": 1, "price": {"unit_amount": 5000, "type": "one_time"}}
    assert mrr(sub(item(1000), metered, one_time), at=NOW).amount == 1000


def test_rounded_once_at_the_end() -> None:
    # Three items of 1/12 of 10 each: 0.83 each (0 or 1 if rounded per item), 2.5 -> 3 once.
    raw = sub(item(10, "year"), item(10, "year"), item(10, "year"))
    assert mrr(raw, at=NOW).amount == 3
    assert round_half_up(Fraction(5, 2)) == 3
    assert round_half_up(Fraction(3, 2)) == 2
    assert round_half_up(Fraction(249, 100)) == 2


def test_unit_amount_decimal_wins() -> None:
    raw = sub(item(1, unit_amount_decimal="0.5", quantity=3))
    assert mrr(raw, at=NOW).amount == 2  # 1.5 -> 2


def test_trial_paused_and_ended_are_zero() -> None:
    assert mrr(sub(item(1000), status="trialing", trial_end=NOW + DAY), at=NOW).amount == 0
    assert mrr(sub(item(1000), status="paused"), at=NOW).amount == 0
    assert mrr(sub(item(1000), status="canceled"), at=NOW).amount == 0
    paused = sub(item(1000), pause_collection={"behavior": "void", "resumes_at": NOW + DAY})
    assert mrr(paused, at=NOW).amount == 0
    assert mrr(paused, at=NOW + DAY).amount == 1000  # resumed
    assert mrr(sub(item(1000), status="past_due"), at=NOW).amount == 1000


def test_repeating_discount_counts_only_until_its_end() -> None:
    raw = sub(
        item(2000),
        discounts=[discount("repeating", end=NOW + 10 * DAY, percent_off=25, duration_in_months=3)],
    )
    assert mrr(raw, at=NOW).amount == 1500
    assert mrr(raw, at=NOW + 10 * DAY).amount == 2000
    assert mrr(raw, at=NOW - 2 * DAY).amount == 2000  # before it started


def test_once_discount_counts_while_on_the_subscription() -> None:
    raw = sub(item(2000), discounts=[discount("once", percent_off=50)])
    assert mrr(raw, at=NOW).amount == 1000


def test_amount_off_is_per_invoice_normalized_like_the_price() -> None:
    yearly = sub(item(12000, "year"), discounts=[discount(amount_off=1200, currency="usd")])
    assert mrr(yearly, at=NOW).amount == 900  # 1000 - 100
    capped = sub(item(500), discounts=[discount(amount_off=900, currency="usd")])
    assert mrr(capped, at=NOW).amount == 0
    other_currency = sub(item(500), discounts=[discount(amount_off=100, currency="eur")])
    assert mrr(other_currency, at=NOW).amount == 500


def test_discounts_apply_in_order_on_what_remains() -> None:
    raw = sub(
        item(10000),
        discounts=[
            discount(percent_off=50),
            discount(amount_off=1000, currency="usd"),
            discount(percent_off=10),
        ],
    )
    assert mrr(raw, at=NOW).amount == 3600  # (10000 * 0.5 - 1000) * 0.9


def test_customer_discount_applies_when_the_subscription_has_none() -> None:
    customer = {"id": "cus_1", "discount": discount(percent_off=10)}
    assert mrr(sub(item(2000)), at=NOW, customer=customer).amount == 1800
    own = sub(item(2000), discounts=[discount(percent_off=50)])
    assert mrr(own, at=NOW, customer=customer).amount == 1000


def test_legacy_plan_shape() -> None:
    raw = {
        "status": "active",
        "currency": "eur",
        "items": {
            "data": [
                {"quantity": 2, "plan": {"amount": 1200, "interval": "year", "interval_count": 1}}
            ]
        },
    }
    assert mrr(raw, at=NOW).amount == 200
