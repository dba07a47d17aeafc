"""Every field-mapping type, with good and bad values (bad ones raise, the caller counts them)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stayflow.enrichment.models import FieldMapping
from stayflow.enrichment.service import apply_mappings
from stayflow.enrichment.types import ConversionFailed, convert, currency_exponent

GOOD = [
    ("text", "month", "month"),
    ("text", 12, "12"),
    ("text", True, "true"),
    ("integer", 12, 12),
    ("integer", "12", 12),
    ("integer", "12.0", 12),
    ("integer", 3.0, 3),
    ("decimal", "999.50", "999.5"),
    ("decimal", 12, "12"),
    ("decimal", 0.1, "0.1"),
    ("decimal", "1E+3", "1000"),
    ("boolean", True, True),
    ("boolean", "false", False),
    ("boolean", "Yes", True),
    ("boolean", 0, False),
    ("date", 1_767_225_600, "2026-01-01"),
    ("date", "2026-02-28", "2026-02-28"),
    ("date", "2026-02-28T23:30:00-02:00", "2026-03-01"),
    ("datetime", 1_767_225_600, "2026-01-01T00:00:00Z"),
    ("datetime", "1767225600", "2026-01-01T00:00:00Z"),
    ("datetime", "2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00Z"),
    ("email", "Ada@Example.COM", "Ada@example.com"),
    ("url", "https://example.com/a?b=1", "https://example.com/a?b=1"),
    ("url", "http://127.0.0.1:8000/", "http://127.0.0.1:8000/"),
]

BAD = [
    ("text", {"a": 1}),
    ("text", "x" * 2001),
    ("integer", "12.5"),
    ("integer", "twelve"),
    ("integer", True),
    ("integer", "1_000"),
    ("integer", float("nan")),
    ("decimal", "abc"),
    ("decimal", "Infinity"),
    ("decimal", [1]),
    ("boolean", "maybe"),
    ("boolean", 2),
    ("date", "2026-02-30"),
    ("date", "yesterday"),
    ("date", -5),
    ("datetime", "not a time"),
    ("datetime", 10**15),
    ("email", "not-an-email"),
    ("email", "a@b"),
    ("email", "a b@example.com"),
    ("email", 42),
    ("url", "javascript:alert(1)"),
    ("url", "ftp://example.com/"),
    ("url", "https://"),
    ("url", "https://exa mple.com/"),
    ("money", "12x"),
]


@pytest.mark.parametrize(("type_", "value", "expected"), GOOD)
def test_good_values_convert(type_, value, expected):
    assert convert(value, type_) == expected


@pytest.mark.parametrize(("type_", "value"), BAD)
def test_bad_values_fail(type_, value):
    with pytest.raises(ConversionFailed):
        convert(value, type_, currency="usd")


@pytest.mark.parametrize(
    ("amount", "currency", "exponent", "value"),
    [
        (999, "usd", 2, "9.99"),
        ("999", "USD", 2, "9.99"),
        (1000, "jpy", 0, "1000"),
        (1000, "krw", 0, "1000"),
        (12345, "kwd", 3, "12.345"),
        ("999.5", "eur", 2, "10.00"),  # fractional minor units round half-even: 999.5 -> 1000
        (-500, "gbp", 2, "-5.00"),
    ],
)
def test_money_keeps_minor_units_with_the_currency_exponent(amount, currency, exponent, value):
    money = convert(amount, "money", currency=currency)
    assert money["currency"] == currency.lower()
    assert money["exponent"] == exponent
    assert money["value"] == value
    assert isinstance(money["amount"], int)
    assert Decimal(money["value"]) == Decimal(money["amount"]).scaleb(-exponent)


def test_money_without_a_currency_fails():
    with pytest.raises(ConversionFailed):
        convert(999, "money", currency=None)
    with pytest.raises(ConversionFailed):
        convert(999, "money", currency="dollars")


def test_currency_exponents_follow_stripe():
    assert currency_exponent("JPY") == 0
    assert currency_exponent("usd") == 2
    assert currency_exponent("bhd") == 3


def test_apply_mappings_counts_failures_and_leaves_them_missing():
    mappings = [
        FieldMapping(field="interval", source="subscription.plan.interval", type="text"),
        FieldMapping(field="seats", source="custom.seats", type="integer"),
        FieldMapping(field="price", source="subscription.plan.amount", type="money"),
        FieldMapping(field="renews", source="subscription.current_period_end", type="date"),
        FieldMapping(field="contact", source="custom.contact", type="email"),
        FieldMapping(field="absent", source="subscription.metadata.nope", type="text"),
        FieldMapping(
            field="price_eur",
            source="subscription.plan.amount",
            type="money",
            currency_source="custom.currency",
        ),
    ]
    sources = {
        "subscription.plan.interval": "year",
        "subscription.plan.amount": 12000,
        "subscription.plan.currency": "jpy",
        "subscription.current_period_end": 1_767_225_600,
        "custom.seats": "three",
        "custom.contact": "not an email",
        "custom.currency": "eur",
    }
    out = apply_mappings(mappings, sources)
    assert out.values == {
        "interval": "year",
        "price": {"amount": 12000, "currency": "jpy", "exponent": 0, "value": "12000"},
        "renews": "2026-01-01",
        "price_eur": {"amount": 12000, "currency": "eur", "exponent": 2, "value": "120.00"},
    }
    assert sorted(out.failed) == ["contact", "seats"]
    assert out.missing == ["absent"]
