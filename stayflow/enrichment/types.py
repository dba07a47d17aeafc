"""The data types a field mapping converts a source value into.

A value that does not convert raises ``ConversionFailed``; the caller leaves the field
missing and counts it, so a bad value never becomes an error for the subscriber.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

FieldType = Literal[
    "text", "integer", "decimal", "boolean", "date", "datetime", "email", "url", "money"
]
FIELD_TYPES: tuple[str, ...] = (
    "text",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "email",
    "url",
    "money",
)
MAX_TEXT = 2000
# Stripe's zero-decimal and three-decimal currencies; every other currency has two.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_CURRENCY = re.compile(r"^[a-z]{3}$")
_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}
# Epoch seconds between 1970 and 9999: a larger number is not a Stripe time.
_MAX_EPOCH = 253_402_300_799


class ConversionFailed(ValueError):
    pass


def currency_exponent(currency: str) -> int:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ConversionFailed("not a number")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConversionFailed("not a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        # Decimal() would take "1_000"; a data value with underscores is not a number.
        text = value.strip().replace("_", "x")
        try:
            found = Decimal(text)
        except InvalidOperation:
            raise ConversionFailed("not a number") from None
        if not found.is_finite():
            raise ConversionFailed("not a finite number")
        return found
    raise ConversionFailed("not a number")


def to_text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        raise ConversionFailed("not a scalar")
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if len(text) > MAX_TEXT:
        raise ConversionFailed(f"longer than {MAX_TEXT} characters")
    return text


def to_integer(value: Any) -> int:
    number = _to_decimal(value)
    if number != number.to_integral_value():
        raise ConversionFailed("not a whole number")
    if abs(number) >= 2**63:
        raise ConversionFailed("out of range")
    return int(number)


def to_decimal(value: Any) -> str:
    """An exact decimal, kept as a string so no float ever rounds it."""
    number = _to_decimal(value)
    if abs(number.adjusted()) > 30:
        raise ConversionFailed("out of range")
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ConversionFailed("not a boolean")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, bool) or value is None:
        raise ConversionFailed("not a time")
    if isinstance(value, int | float | Decimal) or (
        isinstance(value, str) and re.fullmatch(r"\s*\d{1,12}\s*", value)
    ):
        seconds = int(Decimal(str(value).strip()))
        if not 0 <= seconds <= _MAX_EPOCH:
            raise ConversionFailed("epoch seconds out of range")
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ConversionFailed("not an ISO 8601 date or time") from None
        if parsed.tzinfo is None:
            # A date or a time without a zone is read as UTC.
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise ConversionFailed("not a time")


def to_date(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ConversionFailed("not a calendar date") from None
    return _to_datetime(value).date().isoformat()


def to_datetime(value: Any) -> str:
    return _to_datetime(value).isoformat().replace("+00:00", "Z")


def to_email(value: Any) -> str:
    if not isinstance(value, str):
        raise ConversionFailed("not an email address")
    text = value.strip()
    if len(text) > 254 or not _EMAIL.match(text):
        raise ConversionFailed("not an email address")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def to_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ConversionFailed("not a URL")
    text = value.strip()
    if len(text) > 2048 or any(c.isspace() or ord(c) < 32 for c in text):
        raise ConversionFailed("not a URL")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConversionFailed("not an http(s) URL")
    return text


def to_money(value: Any, currency: Any) -> dict[str, Any]:
    """Minor units + currency, with the currency's exponent (JPY has none, so 1000 is ¥1000)."""
    if isinstance(value, dict):
        currency = value.get("currency", currency)
        value = value.get("amount")
    if not isinstance(currency, str) or not _CURRENCY.match(currency.strip().lower()):
        raise ConversionFailed("no currency (a three-letter ISO code) for the amount")
    code = currency.strip().lower()
    amount = _to_decimal(value)
    if amount != amount.to_integral_value():
        # Stripe's *_decimal amounts are minor units that may carry a fraction.
        amount = amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    if abs(amount) >= 2**63:
        raise ConversionFailed("out of range")
    minor = int(amount)
    exponent = currency_exponent(code)
    major = Decimal(minor).scaleb(-exponent)
    return {
        "amount": minor,
        "currency": code,
        "exponent": exponent,
        "value": format(major, "f"),
    }


def convert(value: Any, field_type: str, *, currency: Any = None) -> Any:
    if value is None:
        raise ConversionFailed("missing")
    if field_type == "text":
        return to_text(value)
    if field_type == "integer":
        return to_integer(value)
    if field_type == "decimal":
        return to_decimal(value)
    if field_type == "boolean":
        return to_boolean(value)
    if field_type == "date":
        return to_date(value)
    if field_type == "datetime":
        return to_datetime(value)
    if field_type == "email":
        return to_email(value)
    if field_type == "url":
        return to_url(value)
    if field_type == "money":
        return to_money(value, currency)
    raise ConversionFailed(f"unknown type {field_type!r}")
