"""What an accepted offer does to a subscription, decided once and frozen as a plan.

Pure functions over our own records and Stripe's JSON: no I/O. A plan is JSON (it is
stored on the action row) so that every retry sends identical parameters under the same
Idempotency-Key, and ``applied`` can tell from a fresh read whether it already happened.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from stayflow.billing.provider import Subscription, SubscriptionChange
from stayflow.errors import StayflowError

# A renewal may give away at most the offered length plus this (months differ in length).
RENEWAL_TOLERANCE = timedelta(days=3)
# A shortened pause ends this long before the renewal it must not cover.
RENEWAL_MARGIN = timedelta(hours=1)
# Stripe allows trial_end at most two years out.
MAX_TRIAL = timedelta(days=730)
FEEDBACK_VALUES = frozenset(
    {
        "customer_service",
        "low_quality",
        "missing_features",
        "other",
        "switched_service",
        "too_complex",
        "too_expensive",
        "unused",
    }
)
MAX_COMMENT = 5000
ACTIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid", "paused"})


class OfferNotApplicable(StayflowError):
    """The offer cannot be applied to this subscription as configured (never retried)."""

    status_code = 409
    error_type = "offer_not_applicable"


# --- time arithmetic --------------------------------------------------------------------


def add_interval(start: datetime, count: int, interval: str) -> datetime:
    """``start`` moved ``count`` days / weeks / months / years (months clamp to the last day)."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    months = count * 12 if interval == "year" else count
    if interval not in ("month", "year"):
        raise ValueError(f"unknown interval {interval!r}")
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


# --- pause / extension over a renewal ------------------------------------------------------


def _billing_cycle(sub: Subscription) -> tuple[datetime | None, str, int]:
    """The next renewal and the interval of the item that renews first."""
    items = [i for i in sub.items if i.current_period_end is not None]
    if not items:
        return None, "month", 1
    first = min(items, key=lambda i: i.current_period_end or datetime.max.replace(tzinfo=UTC))
    return (
        first.current_period_end,
        first.price.interval or "month",
        first.price.interval_count or 1,
    )


def fit_pause(
    sub: Subscription, base: datetime, duration: int, interval: str, over_renewal: str
) -> datetime:
    """When a pause from ``base`` should resume, or OfferNotApplicable.

    Every renewal inside the pause has its invoice voided (or marked uncollectible): it gives
    away one whole billing period. That is fine while the periods given away add up to no
    more than the offer says (a monthly plan paused for two months: two renewals, two months),
    not when one renewal is worth more (an annual plan paused over its renewal: a free year).
    ``over_renewal="shorten"`` then resumes before the first renewal that would give too much.
    """
    resumes_at = add_interval(base, duration, interval)
    offered = resumes_at - base + RENEWAL_TOLERANCE
    renewal, cycle, cycle_count = _billing_cycle(sub)
    given = timedelta(0)
    steps = 0
    while renewal is not None and renewal < resumes_at and steps < 1000:
        following = add_interval(renewal, cycle_count, cycle)
        if given + (following - renewal) > offered:
            if over_renewal != "shorten":
                raise OfferNotApplicable(
                    f"a {duration}-{interval} pause would cover the renewal on "
                    f"{renewal.date().isoformat()} and give away a whole {cycle_count}-{cycle} "
                    "period; this offer is configured to refuse that"
                )
            shortened = renewal - RENEWAL_MARGIN
            if shortened <= base + RENEWAL_MARGIN:
                raise OfferNotApplicable(
                    "the pause would end before it starts once shortened to the next renewal"
                )
            return shortened
        given += following - renewal
        renewal = following
        steps += 1
    return resumes_at


def offer_fits(
    offer: dict[str, Any], sub: Subscription, now: datetime, *, price_currency: str | None = None
) -> bool:
    """Whether the page should show this offer to this subscriber (same rules as applying)."""
    try:
        kind = offer.get("type")
        if kind in ("pause", "extension"):
            fit_pause(
                sub,
                now,
                int(offer["duration"]),
                str(offer.get("interval", "month")),
                str(offer.get("over_renewal", "refuse")),
            )
        elif kind == "trial_extension":
            return sub.status == "trialing"
        elif kind == "plan_change" and price_currency is not None and sub.currency:
            return price_currency.lower() == sub.currency.lower()
    except OfferNotApplicable:
        return False
    return True


# --- reading Stripe's JSON --------------------------------------------------------------------


def discount_coupons(raw: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """(discount id, coupon id) of each discount on a subscription, expanded or not."""
    found: list[tuple[str | None, str | None]] = []
    for d in raw.get("discounts") or []:
        if isinstance(d, str):
            found.append((d, None))
            continue
        if not isinstance(d, dict):
            continue
        source = d.get("source") if isinstance(d.get("source"), dict) else None
        coupon = (source or {}).get("coupon") or d.get("coupon")
        coupon_id = coupon.get("id") if isinstance(coupon, dict) else coupon
        found.append((d.get("id"), coupon_id if isinstance(coupon_id, str) else None))
    return found


def item_prices(raw: dict[str, Any]) -> dict[str, str]:
    """Subscription item id -> price id."""
    items = (raw.get("items") or {}).get("data") or []
    found: dict[str, str] = {}
    for item in items:
        price = item.get("price")
        price_id = price.get("id") if isinstance(price, dict) else price
        if item.get("id") and isinstance(price_id, str):
            found[str(item["id"])] = price_id
    return found


def state_of(raw: dict[str, Any]) -> dict[str, Any]:
    """What we record on the action after it ran: the subscription as Stripe now has it."""
    pause = raw.get("pause_collection")
    return {
        "status": raw.get("status"),
        "pause_collection": (
            {"behavior": pause.get("behavior"), "resumes_at": pause.get("resumes_at")}
            if isinstance(pause, dict)
            else None
        ),
        "discounts": [c for _, c in discount_coupons(raw)],
        "prices": sorted(item_prices(raw).values()),
        "trial_end": raw.get("trial_end"),
        "cancel_at_period_end": bool(raw.get("cancel_at_period_end")),
        "cancel_at": raw.get("cancel_at"),
        "canceled_at": raw.get("canceled_at"),
    }


# --- offers -----------------------------------------------------------------------------------


def plan_offer(
    offer: dict[str, Any], sub: Subscription, raw: dict[str, Any], base: datetime
) -> dict[str, Any]:
    """The change an offer makes to this subscription, as JSON; OfferNotApplicable if none."""
    kind = offer.get("type")
    if sub.status in ("canceled", "incomplete_expired"):
        raise OfferNotApplicable(f"the subscription is {sub.status}")
    if kind == "discount":
        # A promotion code's coupon is known only once Stripe has been asked (the action
        # service fills "coupon" in before the plan is frozen).
        promo = offer.get("promotion_code")
        coupon = None if promo else str(offer["coupon"])
        keep = offer.get("existing_discount", "replace") == "keep"
        kept = [
            {"discount": did}
            for did, cid in discount_coupons(raw)
            if keep and did and (coupon is None or cid != coupon)
        ]
        new = {"promotion_code": str(promo)} if promo else {"coupon": coupon}
        plan = {"type": kind, "coupon": coupon, "discounts": [*kept, new]}
        if promo:
            plan["promotion_code"] = str(promo)
        return plan
    if kind in ("pause", "extension"):
        resumes_at = fit_pause(
            sub,
            base,
            int(offer["duration"]),
            str(offer.get("interval", "month")),
            str(offer.get("over_renewal", "refuse")),
        )
        behavior = "void" if kind == "pause" else "mark_uncollectible"
        return {"type": kind, "behavior": behavior, "resumes_at": epoch(resumes_at)}
    if kind == "plan_change":
        return {
            "type": kind,
            "price": str(offer["price"]),
            "proration_behavior": str(offer.get("proration_behavior", "create_prorations")),
        }
    if kind == "trial_extension":
        if sub.status != "trialing" or sub.trial_end is None:
            raise OfferNotApplicable("a trial extension needs a trialing subscription")
        target = sub.trial_end + timedelta(days=int(offer["days"]))
        if target - base > MAX_TRIAL:
            raise OfferNotApplicable("Stripe allows a trial to end at most two years out")
        return {"type": kind, "trial_end": epoch(target)}
    raise OfferNotApplicable(f"offer type {kind!r} changes nothing in billing")


def choose_item(sub: Subscription, new_product: str | None) -> str:
    """The item a plan change swaps: the one of the new price's product, else the first."""
    if not sub.items:
        raise OfferNotApplicable("the subscription has no items")
    for item in sub.items:
        if new_product and item.price.product_id == new_product:
            return item.id
    return sub.items[0].id


def _discount_objects(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in raw.get("discounts") or [] if isinstance(d, dict)]


def _new_discount(plan: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any] | None:
    """The (expanded) discount the plan added, found by its promotion code or coupon."""
    for found in _discount_objects(raw):
        if plan.get("promotion_code"):
            if found.get("promotion_code") == plan["promotion_code"]:
                return found
            continue
        if any(
            did == found.get("id") and cid == plan.get("coupon")
            for did, cid in discount_coupons({"discounts": [found]})
        ):
            return found
    return None


def offer_applied(plan: dict[str, Any], raw: dict[str, Any]) -> bool:
    """Whether a fresh read shows the plan done (then nothing is sent again)."""
    kind = plan["type"]
    if kind == "discount" and plan.get("promotion_code"):
        wanted = [d for d in plan["discounts"] if "discount" in d]
        ids = {did for did, _ in discount_coupons(raw)}
        return _new_discount(plan, raw) is not None and all(d["discount"] in ids for d in wanted)
    if kind == "discount":
        coupons = [c for _, c in discount_coupons(raw)]
        wanted = [d for d in plan["discounts"] if "discount" in d]
        ids = {did for did, _ in discount_coupons(raw)}
        return plan["coupon"] in coupons and all(d["discount"] in ids for d in wanted)
    if kind in ("pause", "extension"):
        pause = raw.get("pause_collection")
        return (
            isinstance(pause, dict)
            and pause.get("behavior") == plan["behavior"]
            and pause.get("resumes_at") == plan["resumes_at"]
        )
    if kind == "plan_change":
        return bool(item_prices(raw).get(str(plan.get("item_id"))) == plan["price"])
    if kind == "trial_extension":
        return bool(raw.get("trial_end") == plan["trial_end"])
    return False


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def offer_summary(plan: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """What the offer did, from Stripe's answer, for the words the subscriber reads."""
    kind = plan["type"]
    if kind == "discount":
        found = _new_discount(plan, raw) or {}
        source = found.get("source") if isinstance(found.get("source"), dict) else {}
        coupon = (source or {}).get("coupon") or found.get("coupon")
        coupon = coupon if isinstance(coupon, dict) else {}
        percent = coupon.get("percent_off")
        first: Any = next(iter((raw.get("items") or {}).get("data") or []), {})
        first_price: Any = first.get("price") if isinstance(first, dict) else None
        recurring: Any = first_price.get("recurring") if isinstance(first_price, dict) else None
        recurring = recurring if isinstance(recurring, dict) else {}
        return {
            "type": kind,
            "interval": recurring.get("interval"),
            "interval_count": _int(recurring.get("interval_count")) or 1,
            "percent_off": percent if isinstance(percent, int | float) else None,
            "amount_off": _int(coupon.get("amount_off")),
            "currency": coupon.get("currency"),
            "duration": coupon.get("duration"),
            "duration_in_months": _int(coupon.get("duration_in_months")),
            "end": _int(found.get("end")),
        }
    if kind in ("pause", "extension"):
        pause = raw.get("pause_collection")
        resumes = pause.get("resumes_at") if isinstance(pause, dict) else None
        return {"type": kind, "resumes_at": _int(resumes) or plan["resumes_at"]}
    if kind == "plan_change":
        items = (raw.get("items") or {}).get("data") or []
        price: dict[str, Any] = {}
        for item in items:
            candidate = item.get("price") if isinstance(item, dict) else None
            if isinstance(candidate, dict) and candidate.get("id") == plan["price"]:
                price = candidate
        recurring = price.get("recurring") if isinstance(price.get("recurring"), dict) else {}
        return {
            "type": kind,
            "price": plan["price"],
            "nickname": price.get("nickname"),
            "unit_amount": _int(price.get("unit_amount")),
            "currency": price.get("currency"),
            "interval": (recurring or {}).get("interval"),
            "interval_count": _int((recurring or {}).get("interval_count")),
        }
    if kind == "trial_extension":
        return {"type": kind, "trial_end": _int(raw.get("trial_end")) or plan["trial_end"]}
    return {"type": kind}


def period_end_of(raw: dict[str, Any]) -> int | None:
    """The earliest item period end (current API), or the subscription's own (older ones)."""
    ends = [
        _int(i.get("current_period_end"))
        for i in (raw.get("items") or {}).get("data") or []
        if isinstance(i, dict)
    ]
    found = [e for e in ends if e is not None]
    return min(found) if found else _int(raw.get("current_period_end"))


def cancel_summary(plan: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """When the cancel takes effect, from Stripe's answer."""
    if plan["at_period_end"]:
        effective = _int(raw.get("cancel_at")) or period_end_of(raw)
    else:
        effective = _int(raw.get("ended_at")) or _int(raw.get("canceled_at"))
    return {
        "type": "cancel",
        "at_period_end": bool(plan["at_period_end"]),
        "effective_at": effective,
        "status": raw.get("status"),
    }


def offer_change(plan: dict[str, Any]) -> SubscriptionChange:
    kind = plan["type"]
    if kind == "discount":
        return SubscriptionChange(discounts=list(plan["discounts"]))
    if kind in ("pause", "extension"):
        return SubscriptionChange(
            pause_collection=(plan["behavior"], from_epoch(int(plan["resumes_at"])))
        )
    if kind == "plan_change":
        return SubscriptionChange(
            swap_price=(plan["item_id"], plan["price"], plan["proration_behavior"])
        )
    if kind == "trial_extension":
        return SubscriptionChange(trial_end=from_epoch(int(plan["trial_end"])))
    raise OfferNotApplicable(f"offer type {kind!r} changes nothing in billing")


# --- cancels ----------------------------------------------------------------------------------


def cancellation_details(feedback: str | None, comment: str | None) -> dict[str, str] | None:
    details: dict[str, str] = {}
    if feedback in FEEDBACK_VALUES:
        details["feedback"] = str(feedback)
    if comment:
        details["comment"] = comment[:MAX_COMMENT]
    return details or None


def subscription_from_fields(fields: Mapping[str, Any]) -> Subscription | None:
    """The little of a subscription the page's offer filter needs, from enriched fields."""
    from stayflow.billing.provider import Price, SubscriptionItem

    status = fields.get("subscription.status")
    period_end = fields.get("subscription.current_period_end")
    if not isinstance(status, str) or not isinstance(period_end, int | float):
        return None
    interval = fields.get("subscription.plan.interval")
    count = fields.get("subscription.plan.interval_count")
    trial_end = fields.get("subscription.trial_end")
    price = Price(
        id=str(fields.get("subscription.plan.id") or ""),
        currency=str(fields.get("subscription.currency") or ""),
        unit_amount=None,
        unit_amount_decimal=None,
        interval=interval if isinstance(interval, str) else "month",
        interval_count=count if isinstance(count, int) else 1,
        billing_scheme=None,
        nickname=None,
        product_id=None,
    )
    item = SubscriptionItem(
        id="",
        quantity=None,
        price=price,
        current_period_start=None,
        current_period_end=from_epoch(int(period_end)),
    )
    return Subscription(
        id=str(fields.get("subscription.id") or ""),
        status=status,
        customer_id="",
        customer=None,
        currency=str(fields.get("subscription.currency") or "") or None,
        items=[item],
        discounts=[],
        created=None,
        start_date=None,
        trial_start=None,
        trial_end=from_epoch(int(trial_end)) if isinstance(trial_end, int | float) else None,
        cancel_at_period_end=False,
        cancel_at=None,
        canceled_at=None,
        ended_at=None,
        paused=False,
        livemode=False,
    )


def offer_shown(offer: dict[str, Any], fields: Mapping[str, Any], now: datetime) -> bool:
    """Whether the page shows this offer to the subscriber these enriched fields describe.

    A pause or extension that would be refused over a renewal is not shown, nor a trial
    extension to a subscription not trialing. Without enriched fields nothing is hidden (the
    action itself still refuses what does not fit).
    """
    if offer.get("type") not in ("pause", "extension", "trial_extension"):
        return True
    sub = subscription_from_fields(fields)
    return True if sub is None else offer_fits(offer, sub, now)
