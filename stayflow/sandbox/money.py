"""Money in minor units: exact arithmetic, Stripe's rounding and Stripe's currency display.

Every amount is an ``int`` of the currency's minor unit; fractions (a prorated share, a percent
off) are ``Fraction``s and become integers only through :func:`round_half_up`, once per line,
as Stripe rounds a prorated amount.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "cny": "CN¥",
    "krw": "₩",
    "inr": "₹",
    "ils": "₪",
    "vnd": "₫",
    "cad": "CA$",
    "aud": "A$",
    "nzd": "NZ$",
    "hkd": "HK$",
    "mxn": "MX$",
    "brl": "R$",
    "twd": "NT$",
    "xaf": "FCFA",
    "xof": "F\u202fCFA",
}


def exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's display (JPY 0, USD 2, KWD 3)."""
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


def round_half_up(value: Fraction) -> int:
    """Nearest integer, halves away from zero (Stripe's rounding of a prorated amount)."""
    if value < 0:
        return -round_half_up(-value)
    whole, rest = divmod(value.numerator, value.denominator)
    return whole + (1 if 2 * rest >= value.denominator else 0)


def percent(value: Any) -> Fraction:
    """A coupon's ``percent_off`` (sent as text, may carry decimals) as an exact fraction."""
    return Fraction(str(value)) / 100


def format_amount(amount: int, currency: str) -> str:
    """``2000, "usd"`` -> ``$20.00``; ``2000, "jpy"`` -> ``¥2,000``; ``1500, "sek"`` ->
    ``SEK 15.00`` (en-US display, as on Stripe's English invoices)."""
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    text = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    symbol = SYMBOLS.get(currency.lower())
    if symbol is None:
        return f"{sign}{currency.upper()} {text}"
    return f"{sign}{symbol}{text}"
