"""Billing period arithmetic, as Stripe does it: month ends clamp (Jan 31 -> Feb 28 -> Mar 31),
and every boundary is computed from the anchor so periods never drift."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

DAY = 86_400


def boundary(anchor: int, interval: str, count: int, k: int) -> int:
    """The k-th period boundary after ``anchor`` (k = 0 is the anchor itself)."""
    if interval == "day":
        return anchor + k * count * DAY
    if interval == "week":
        return anchor + k * count * 7 * DAY
    months = k * count * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(anchor, UTC)
    total = start.month - 1 + months
    year = start.year + total // 12
    month = total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def add_months(ts: int, months: int) -> int:
    return boundary(ts, "month", 1, months)
