"""Audience rules: every operator, combinations, missing fields, dates; and validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from stayflow.flows.rules import Rule, evaluate

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FIELDS = {
    "email": "Ada@Example.com",
    "custom": {"seats": 3, "last_login": "2026-11-01", "tags": ["beta", "vip"], "ratio": "2.5"},
    "account": {"internal_id": "42"},
    "subscription.plan.interval": "year",  # enriched fields arrive flat, dotted
    "subscription.current_period_end": 1_798_761_600,  # 2027-01-01, epoch seconds
}
RULE = TypeAdapter(Rule)


def check(rule: dict) -> bool:
    return evaluate(RULE.validate_python(rule), FIELDS, NOW)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"field": "subscription.plan.interval", "op": "equals", "value": "year"}, True),
        ({"field": "subscription.plan.interval", "op": "equals", "value": "month"}, False),
        ({"field": "email", "op": "equals", "value": "ada@example.com"}, True),
        ({"field": "custom.seats", "op": "equals", "value": "3"}, True),
        ({"field": "account.internal_id", "op": "equals", "value": 42}, True),
        ({"field": "custom.seats", "op": "not_equals", "value": 4}, True),
        ({"field": "custom.missing", "op": "not_equals", "value": 4}, True),
        ({"field": "custom.seats", "op": "in", "value": [1, 2, 3]}, True),
        ({"field": "custom.seats", "op": "in", "value": [1, 2]}, False),
        ({"field": "email", "op": "contains", "value": "example.com"}, True),
        ({"field": "custom.tags", "op": "contains", "value": "vip"}, True),
        ({"field": "custom.tags", "op": "contains", "value": "gold"}, False),
        ({"field": "custom.seats", "op": "greater", "value": 2}, True),
        ({"field": "custom.seats", "op": "greater", "value": 3}, False),
        ({"field": "custom.ratio", "op": "less", "value": 3}, True),
        ({"field": "custom.seats", "op": "between", "value": [3, 10]}, True),
        ({"field": "custom.seats", "op": "between", "value": [4, 10]}, False),
        ({"field": "email", "op": "greater", "value": 1}, False),
        ({"field": "custom.seats", "op": "exists"}, True),
        ({"field": "custom.nope", "op": "exists"}, False),
        ({"field": "custom.nope", "op": "exists", "value": False}, True),
        ({"field": "custom.last_login", "op": "before", "value": "2026-11-02"}, True),
        ({"field": "custom.last_login", "op": "after", "value": "2026-11-02"}, False),
        ({"field": "custom.last_login", "op": "before", "value": "now-14d"}, True),
        ({"field": "custom.last_login", "op": "after", "value": "now-30d"}, True),
        (
            {
                "field": "subscription.current_period_end",
                "op": "after",
                "value": "2026-12-31T23:00:00Z",
            },
            True,
        ),
        ({"field": "subscription.current_period_end", "op": "before", "value": "now+7d"}, False),
        (
            {"field": "custom.last_login", "op": "between", "value": ["2026-10-01", "2026-11-30"]},
            True,
        ),
        ({"field": "custom.nope", "op": "equals", "value": "x"}, False),
        ({"field": "custom.nope", "op": "before", "value": "2026-01-01"}, False),
        ({"field": "email", "op": "before", "value": "2026-01-01"}, False),
    ],
)
def test_operators(rule, expected):
    assert check(rule) is expected


def test_all_any_not_nest():
    rule = {
        "all": [
            {"field": "subscription.plan.interval", "op": "equals", "value": "year"},
            {
                "any": [
                    {"field": "custom.seats", "op": "greater", "value": 10},
                    {"not": {"field": "custom.tags", "op": "contains", "value": "gold"}},
                ]
            },
        ]
    }
    assert check(rule) is True
    rule["all"][1]["any"][1] = {"not": {"field": "custom.tags", "op": "contains", "value": "vip"}}
    assert check(rule) is False


@pytest.mark.parametrize(
    "rule",
    [
        {"field": "x", "op": "nope", "value": 1},
        {"field": "x", "op": "in", "value": "abc"},
        {"field": "x", "op": "between", "value": [1]},
        {"field": "x", "op": "between", "value": ["a", "b"]},
        {"field": "x", "op": "before", "value": "yesterday-ish"},
        {"field": "x", "op": "greater", "value": "lots"},
        {"field": "x", "op": "equals"},
        {"field": "x y", "op": "exists"},
        {"all": []},
        {"field": "x", "op": "exists", "extra": 1},
    ],
)
def test_invalid_rules_are_refused(rule):
    with pytest.raises(ValidationError):
        RULE.validate_python(rule)


def test_too_deep_nesting_is_refused():
    from stayflow.flows.schemas import FlowsDocument

    rule: dict = {"field": "a", "op": "exists"}
    for _ in range(12):
        rule = {"not": rule}
    with pytest.raises(ValidationError, match="nest"):
        FlowsDocument.model_validate({"audiences": [{"id": "deep", "rule": rule}]})
