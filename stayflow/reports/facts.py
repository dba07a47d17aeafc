"""What one session counts for: its fact (pure functions, no database).

A fact is derived from the cancel session, its attribution watch (if any) and the app's
counting rules; its contribution to the rollups is a few 0/1 counters and amounts per
dimension. Both are plain dicts so the service can diff an old fact against a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stayflow.cancel_sessions.events import mrr_of
from stayflow.reports.models import COUNTERS, DEFAULT_DEDUP_DAYS

# Dimensions a rollup row is kept for ("all" is the total, its value "").
DIMENSIONS = (
    "all",
    "reason",
    "plan",
    "interval",
    "account_age",
    "audience",
    "experience",
    "variant",
)
# Facts' columns that filters and breakdowns read (dimension -> column).
DIMENSION_COLUMNS = {
    "reason": "reason_id",
    "plan": "plan",
    "interval": "interval",
    "account_age": "account_age",
    "audience": "audience_id",
    "experience": "experience_id",
}
# Filters the rollups carry (one at a time, besides the dates and the currency), and the
# facts' column each reads ("offer" reads the shown offers, "variant" experiment/variant).
FILTERS = ("experience", "offer", "reason", "audience", "variant", "plan")
FILTER_COLUMNS = {
    "experience": "experience_id",
    "reason": "reason_id",
    "audience": "audience_id",
    "plan": "plan",
}
ACCOUNT_AGES = ("<1m", "1-3m", "3-12m", "1-2y", "2y+")
_OUTCOME_COUNTER = {
    "saved": "saves",
    "deflected": "deflects",
    "redirected": "deflects",
    "canceled": "cancels",
    "abandoned": "abandoned",
}
_STATUS_COUNTER = {"validated": "validated", "lapsed": "lapsed", "reactivated": "reactivations"}


@dataclass(frozen=True)
class Rules:
    """An app's counting rules (``ReportSettings``), as the fact functions need them."""

    dedup_days: int = DEFAULT_DEDUP_DAYS
    blocked_domains: frozenset[str] = frozenset()
    test_accounts: frozenset[str] = frozenset()


@dataclass
class SessionRow:
    """The columns of a cancel session a fact is made from."""

    id: int
    session_id: str
    subscription_id: str
    created_at: datetime
    outcome: str | None
    reason_id: str | None
    offer_accepted_id: str | None
    offers_shown: Sequence[str]
    experience_id: str | None
    experiment_id: str | None
    variant_id: str | None
    flow: Mapping[str, Any]
    enriched_fields: Mapping[str, Any]
    request_fields: Mapping[str, Any]


@dataclass
class WatchRow:
    status: str
    currency: str | None
    mrr_kept: int
    mrr_lost: int
    cash_collected: int


@dataclass
class FactInput:
    session: SessionRow
    watch: WatchRow | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def variant_key(experiment_id: str, variant_id: str) -> str:
    return f"{experiment_id}/{variant_id}"


def email_of(s: SessionRow) -> str:
    for value in (
        s.enriched_fields.get("subscription.customer.email"),
        s.request_fields.get("email"),
    ):
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    return ""


def is_excluded(s: SessionRow, rules: Rules) -> bool:
    email = email_of(s)
    domain = email.rsplit("@", 1)[1] if email else ""
    if domain and domain in rules.blocked_domains:
        return True
    customer = s.enriched_fields.get("subscription.customer.id")
    ids = {s.subscription_id, str(customer) if customer else "", email} - {""}
    return bool(ids & rules.test_accounts)


def _text(*values: Any) -> str:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()[:255]
    return ""


def account_age(s: SessionRow) -> str:
    created = s.enriched_fields.get("subscription.customer.created") or s.enriched_fields.get(
        "subscription.created"
    )
    if not isinstance(created, int | float) or isinstance(created, bool):
        return ""
    days = (s.created_at - datetime.fromtimestamp(created, UTC)).days
    if days < 30:
        return "<1m"
    if days < 90:
        return "1-3m"
    if days < 365:
        return "3-12m"
    if days < 730:
        return "1-2y"
    return "2y+"


def interval_of(s: SessionRow) -> str:
    interval = s.enriched_fields.get("subscription.plan.interval")
    if not isinstance(interval, str) or not interval:
        return ""
    count = s.enriched_fields.get("subscription.plan.interval_count")
    return f"{count} {interval}" if isinstance(count, int) and count > 1 else interval


def currency_of(s: SessionRow, watch: WatchRow | None) -> str:
    if watch is not None and watch.currency:
        return watch.currency.lower()
    found = mrr_of(s.enriched_fields)
    if found is not None:
        return found.currency.lower()
    return _text(s.enriched_fields.get("subscription.currency")).lower()[:10]


def fact_of(item: FactInput, *, counted: bool, rules: Rules) -> dict[str, Any]:
    """The fact row (without ids) of one session."""
    s, w = item.session, item.watch
    experience = s.flow.get("experience") if isinstance(s.flow, Mapping) else None
    audience = experience.get("audience") if isinstance(experience, Mapping) else None
    return {
        "session_id": s.session_id,
        "subscription_id": s.subscription_id,
        "created_at": s.created_at,
        "day": s.created_at.astimezone(UTC).date(),
        "currency": currency_of(s, w),
        "outcome": s.outcome or "",
        "reason_id": s.reason_id or "",
        "offer_id": (s.offer_accepted_id or "") if s.outcome == "saved" else "",
        "offers_shown": "," + "".join(f"{o}," for o in s.offers_shown),
        "experience_id": s.experience_id or "",
        "experiment_id": s.experiment_id or "",
        "variant_id": s.variant_id or "",
        "audience_id": audience if isinstance(audience, str) else "",
        "plan": _text(
            s.enriched_fields.get("subscription.plan.product.name"),
            s.enriched_fields.get("subscription.plan.nickname"),
            s.enriched_fields.get("subscription.plan.id"),
        ),
        "interval": interval_of(s),
        "account_age": account_age(s),
        "status": w.status if w is not None else "",
        "mrr_kept": w.mrr_kept if w is not None else 0,
        "mrr_lost": w.mrr_lost if w is not None else 0,
        "cash": w.cash_collected if w is not None else 0,
        "excluded": is_excluded(s, rules),
        "counted": counted,
    }


def counted_flags(created: Sequence[datetime], dedup_days: int) -> list[bool]:
    """For one subscriber's sessions: False where a later one opened within the window.

    A subscriber who opens the flow again counts once, with the latest outcome.
    """
    window = timedelta(days=dedup_days)
    order = sorted(range(len(created)), key=lambda i: created[i])
    flags = [True] * len(created)
    for pos, index in enumerate(order[:-1]):
        nxt = order[pos + 1]
        if dedup_days > 0 and created[nxt] - created[index] <= window:
            flags[index] = False
    return flags


def shown_offers(fact: Mapping[str, Any]) -> list[str]:
    return [o for o in str(fact["offers_shown"]).split(",") if o]


def filters_of(fact: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (filter, value) pairs a fact matches, ``("", "")`` (no filter) first.

    One per filter the rollups carry (``FILTERS``); an offer filter matches each offer the
    session was shown. Empty values are left out: no filter asks for them.
    """
    out: dict[tuple[str, str], None] = {("", ""): None}
    for name in FILTERS:
        if name == "offer":
            for offer in shown_offers(fact):
                out[("offer", offer)] = None
        elif name == "variant":
            if fact["experiment_id"]:
                key = variant_key(str(fact["experiment_id"]), str(fact["variant_id"]))
                out[("variant", key)] = None
        elif fact[FILTER_COLUMNS[name]]:
            out[(name, str(fact[FILTER_COLUMNS[name]]))] = None
    return list(out)


RollupKey = tuple[str, str, str, str]  # filter, filter value, dimension, value
OfferKey = tuple[str, str, str]  # filter, filter value, offer


def contributions(
    fact: Mapping[str, Any],
) -> tuple[dict[RollupKey, dict[str, int]], dict[OfferKey, dict[str, int]]]:
    """What a fact adds: counters per (filter, filter value, dimension, value), and per
    (filter, filter value, shown offer).

    Keys leave out the app, day and currency (the fact's own). Nothing for a fact that is
    excluded or not counted.
    """
    if fact["excluded"] or not fact["counted"]:
        return {}, {}
    counters = dict.fromkeys(COUNTERS, 0)
    counters["sessions"] = 1
    outcome_counter = _OUTCOME_COUNTER.get(str(fact["outcome"]))
    if outcome_counter:
        counters[outcome_counter] = 1
    status_counter = _STATUS_COUNTER.get(str(fact["status"]))
    if status_counter:
        counters[status_counter] = 1
    kept = int(fact["mrr_kept"])
    counters["mrr_kept"] = kept
    counters["mrr_kept_sq"] = kept * kept
    counters["mrr_lost"] = int(fact["mrr_lost"])
    counters["cash"] = int(fact["cash"])
    values: list[tuple[str, str]] = [("all", "")]
    for dimension, column in DIMENSION_COLUMNS.items():
        values.append((dimension, str(fact[column])))
    if fact["experiment_id"]:
        values.append(("variant", variant_key(str(fact["experiment_id"]), str(fact["variant_id"]))))
    offer_counters: dict[str, dict[str, int]] = {}
    accepted = str(fact["offer_id"])
    for offer in shown_offers(fact):
        took = offer == accepted
        offer_counters[offer] = {"shown": 1, "accepted": int(took), "mrr_kept": kept if took else 0}
    if accepted and accepted not in offer_counters:
        offer_counters[accepted] = {"shown": 0, "accepted": 1, "mrr_kept": kept}
    rows: dict[RollupKey, dict[str, int]] = {}
    offers: dict[OfferKey, dict[str, int]] = {}
    for name, wanted in filters_of(fact):
        for dimension, value in values:
            rows[(name, wanted, dimension, value)] = counters
        for offer, c in offer_counters.items():
            offers[(name, wanted, offer)] = c
    return rows, offers


def merge_into(
    total: dict[Any, dict[str, int]], key: Any, counters: Mapping[str, int], sign: int
) -> None:
    row = total.setdefault(key, {})
    for name, value in counters.items():
        row[name] = row.get(name, 0) + sign * value


def deltas(
    old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
) -> tuple[dict[tuple[Any, ...], dict[str, int]], dict[tuple[Any, ...], dict[str, int]]]:
    """Rollup and offer-rollup changes from replacing the ``old`` facts with the ``new``."""
    rollup: dict[tuple[Any, ...], dict[str, int]] = {}
    offer: dict[tuple[Any, ...], dict[str, int]] = {}
    for sign, facts in ((-1, old), (1, new)):
        for fact in facts:
            rows, offers = contributions(fact)
            at = (fact["day"], fact["currency"])
            for rollup_key, counters in rows.items():
                merge_into(rollup, at + rollup_key, counters, sign)
            for offer_key, counters in offers.items():
                merge_into(offer, at + offer_key, counters, sign)
    return (
        {k: v for k, v in rollup.items() if any(v.values())},
        {k: v for k, v in offer.items() if any(v.values())},
    )
