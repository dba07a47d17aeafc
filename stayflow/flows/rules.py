"""Audience rules over a session's fields.

A rule is a condition ``{field, op, value}`` or a combination ``{all: [...]}``,
``{any: [...]}``, ``{not: rule}``, nested freely. ``field`` is a dotted path
into the session's fields: the fields from Stripe (``subscription.plan.interval``,
``customer.email``, mapped fields), the fields the business signed
(``signed.custom.seats``) and, only when the app opts in to unsigned targeting, the
snippet's request fields (``email``, ``custom.seats``), which the subscriber can change
(see ``cancel_sessions.trust``). A missing field never matches, except with
``not_equals``, ``exists: false`` and ``not``.

Dates (``before``, ``after``, and ``greater``/``less``/``between`` when both
sides are dates) take ISO dates or times, epoch seconds, or ``now``,
``now-30d``, ``now+12h`` (units m, h, d, w).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Op = Literal[
    "equals",
    "not_equals",
    "in",
    "contains",
    "greater",
    "less",
    "between",
    "exists",
    "before",
    "after",
]
MAX_DEPTH = 8
_RELATIVE = re.compile(r"^now\s*(?:([+-])\s*(\d{1,6})\s*([mhdw]))?$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MISSING = object()


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$"
    )
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        op, value = self.op, self.value
        if op == "exists":
            if value is not None and not isinstance(value, bool):
                raise ValueError("exists takes true, false or no value")
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise ValueError("in takes a non-empty list")
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("between takes a list of two bounds, [low, high]")
            if _ordered(value[0]) is None or _ordered(value[1]) is None:
                raise ValueError("between's bounds must be numbers or dates")
        elif op in ("greater", "less"):
            if _ordered(value) is None:
                raise ValueError(f"{op} takes a number or a date")
        elif op in ("before", "after"):
            if _as_datetime(value) is None:
                raise ValueError(f"{op} takes a date (2026-01-31), a time, or now-30d")
        elif value is None or isinstance(value, dict):
            raise ValueError(f"{op} takes a value")
        return self


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: list[Rule] = Field(min_length=1, max_length=50)


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    any: list[Rule] = Field(min_length=1, max_length=50)


class Not(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    not_: Rule = Field(alias="not")


Rule = Condition | AllOf | AnyOf | Not
AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def lookup(fields: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; flat dotted keys win over nested dicts. _MISSING if absent."""
    if path in fields:
        return fields[path]
    current: Any = fields
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _as_datetime(value: Any, now: datetime | None = None) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)  # epoch seconds, as Stripe sends
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        base = now or datetime.now(UTC)
        sign, amount, unit = match.groups()
        if amount is None:
            return base
        delta = timedelta(**{_UNITS[unit]: int(amount)})
        return base + delta if sign == "+" else base - delta
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ordered(value: Any, now: datetime | None = None) -> Decimal | datetime | None:
    number = _number(value)
    if number is not None:
        return number
    return _as_datetime(value, now)


def _compare(left: Any, right: Any, now: datetime) -> int | None:
    """-1/0/1 when both sides are numbers or both dates; None when they do not compare."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    da, db = _as_datetime(left, now), _as_datetime(right, now)
    if da is not None and db is not None:
        return (da > db) - (da < db)
    return None


def _equal(left: Any, right: Any) -> bool:
    if left == right and type(left) is type(right):
        return True
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if isinstance(left, str) and isinstance(right, str):
        return left.strip().casefold() == right.strip().casefold()
    if isinstance(left, bool) or isinstance(right, bool):
        return str(left).lower() == str(right).lower()
    return bool(left == right)


def _condition(cond: Condition, fields: Mapping[str, Any], now: datetime) -> bool:
    value = lookup(fields, cond.field)
    op = cond.op
    if op == "exists":
        present = value is not _MISSING and value is not None
        return present if cond.value is None or cond.value else not present
    if value is _MISSING or value is None:
        return op == "not_equals"
    if op == "equals":
        return _equal(value, cond.value)
    if op == "not_equals":
        return not _equal(value, cond.value)
    if op == "in":
        return any(_equal(value, option) for option in cond.value)
    if op == "contains":
        if isinstance(value, str):
            return str(cond.value).casefold() in value.casefold()
        if isinstance(value, list):
            return any(_equal(item, cond.value) for item in value)
        if isinstance(value, Mapping):
            return str(cond.value) in value
        return False
    if op == "greater":
        return _compare(value, cond.value, now) == 1
    if op == "less":
        return _compare(value, cond.value, now) == -1
    if op == "between":
        low, high = cond.value
        above = _compare(value, low, now)
        below = _compare(value, high, now)
        return above is not None and below is not None and above >= 0 and below <= 0
    moment, bound = _as_datetime(value, now), _as_datetime(cond.value, now)
    if moment is None or bound is None:
        return False
    return moment < bound if op == "before" else moment > bound


def evaluate(
    rule: Rule, fields: Mapping[str, Any], now: datetime | None = None, depth: int = 0
) -> bool:
    """Does ``rule`` match ``fields``?"""
    if depth > MAX_DEPTH:
        raise ValueError(f"rules nest at most {MAX_DEPTH} levels deep")
    now = now or datetime.now(UTC)
    if isinstance(rule, Condition):
        return _condition(rule, fields, now)
    if isinstance(rule, AllOf):
        return all(evaluate(r, fields, now, depth + 1) for r in rule.all)
    if isinstance(rule, AnyOf):
        return any(evaluate(r, fields, now, depth + 1) for r in rule.any)
    return not evaluate(rule.not_, fields, now, depth + 1)


def fields_read(rule: Rule) -> list[str]:
    """Every field path the rule reads, in order, once each."""
    if isinstance(rule, Condition):
        return [rule.field]
    children = rule.all if isinstance(rule, AllOf) else rule.any if isinstance(rule, AnyOf) else []
    if isinstance(rule, Not):
        children = [rule.not_]
    found: list[str] = []
    for child in children:
        found += [path for path in fields_read(child) if path not in found]
    return found


def rule_depth(rule: Rule) -> int:
    if isinstance(rule, AllOf):
        return 1 + max(rule_depth(r) for r in rule.all)
    if isinstance(rule, AnyOf):
        return 1 + max(rule_depth(r) for r in rule.any)
    if isinstance(rule, Not):
        return 1 + rule_depth(rule.not_)
    return 0
