"""Subscriptions: create, read, list, update (discounts, pause, plan change, trial, cancel at
period end) and cancel. What the clock does to them is in ``lifecycle``."""

from __future__ import annotations

import copy
from typing import Any

from stayflow.sandbox import invoices
from stayflow.sandbox.common import EXPAND, LIST, list_page, merge_metadata, ts_match
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import StripeError, invalid, missing, missing_param
from stayflow.sandbox.lifecycle import end_trial
from stayflow.sandbox.params import Emptyable, Enum, ListOf, Params, Required, parse_ts_list_filter
from stayflow.sandbox.periods import DAY, boundary
from stayflow.sandbox.store import Obj
from stayflow.sandbox.subscription_billing import (
    ENDED,
    after_payment,
    bill,
    cancel_now,
    cancellation,
    check_payment_method,
    check_same_cycle,
    check_trial_end,
    consume_once_discounts,
    current_period,
    cycle_of,
    effective_discounts,
    emit_updated,
    full_lines,
    item_price,
    prorate_lines,
    reschedule,
    resolve_price,
    set_discounts,
    set_period,
    set_status,
    take_pending,
    warn_trial_end,
)

STATUSES = Enum.of(
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
FEEDBACK = Enum.of(
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
PRORATION = Enum.of("always_invoice", "create_prorations", "none")

DISCOUNT_SPEC = ListOf({"coupon": "str", "promotion_code": "str", "discount": "str"})
ITEM_CREATE = {
    "price": "str",
    "plan": "str",
    "quantity": "int",
    "metadata": "metadata",
    "price_data": {
        "currency": Required("str"),
        "product": Required("str"),
        "unit_amount": "int",
        "recurring": Required(
            {"interval": Required(Enum.of("day", "week", "month", "year")), "interval_count": "int"}
        ),
    },
}
ITEM_UPDATE = {
    **ITEM_CREATE,
    "id": "str",
    "deleted": "bool",
    "clear_usage": "bool",
    "metadata": Emptyable("metadata"),
}
CANCELLATION = {"comment": Emptyable("str"), "feedback": Emptyable(FEEDBACK)}
COMMON: dict[str, Any] = {
    "metadata": Emptyable("metadata"),
    "description": Emptyable("str"),
    "default_payment_method": Emptyable("str"),
    "collection_method": Enum.of("charge_automatically", "send_invoice"),
    "days_until_due": "int",
    "cancel_at_period_end": "bool",
    "cancel_at": Emptyable("int"),
    "discounts": Emptyable(DISCOUNT_SPEC),
    "off_session": "bool",
    "payment_behavior": Enum.of("allow_incomplete", "default_incomplete", "error_if_incomplete"),
    "proration_behavior": PRORATION,
    "trial_end": "ts_now",
    "trial_settings": {
        "end_behavior": Required(
            {"missing_payment_method": Required(Enum.of("cancel", "create_invoice", "pause"))}
        )
    },
    **EXPAND,
}
CREATE: dict[str, Any] = {
    **COMMON,
    "customer": Required("str"),
    "items": Required(ListOf(ITEM_CREATE, 20)),
    "trial_period_days": "int",
    "trial_from_plan": "bool",
    "currency": "str",
    "backdate_start_date": "int",
}
UPDATE: dict[str, Any] = {
    **COMMON,
    "items": ListOf(ITEM_UPDATE, 20),
    "pause_collection": Emptyable(
        {
            "behavior": Required(Enum.of("keep_as_draft", "mark_uncollectible", "void")),
            "resumes_at": "int",
        }
    ),
    "cancellation_details": CANCELLATION,
    "proration_date": "int",
    "billing_cycle_anchor": Enum.of("now", "unchanged"),
    "trial_from_plan": "bool",
}
CANCEL: dict[str, Any] = {
    "invoice_now": "bool",
    "prorate": "bool",
    "cancellation_details": CANCELLATION,
    **EXPAND,
}
LIST_PARAMS: dict[str, Any] = {
    **LIST,
    "customer": "str",
    "price": "str",
    "plan": "str",
    "status": STATUSES,
    "collection_method": Enum.of("charge_automatically", "send_invoice"),
    "created": "any",
}


# -- create / read / list ------------------------------------------------------------------------


def create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    customer = em.t["customers"].get(p["customer"], "customer")
    if not p["items"]:
        raise missing_param("items")
    prices = [resolve_price(em, spec, f"items[{i}]") for i, spec in enumerate(p["items"])]
    check_same_cycle(prices)
    currency = prices[0]["currency"]
    if customer["currency"] not in (None, currency):
        raise invalid(
            f"You cannot combine currencies on a single customer. This customer has had a "
            f"subscription or payment in {customer['currency']}, but you are trying to pay "
            f"in {currency}.",
            param="items",
        )
    now = em.now()
    method = p.get("collection_method", "charge_automatically")
    if method == "send_invoice" and "days_until_due" not in p:
        raise invalid(
            "You must specify `days_until_due` when `collection_method` is `send_invoice`.",
            param="days_until_due",
        )
    trial_end = None
    if "trial_end" in p and p["trial_end"] != "now":
        check_trial_end(em, p["trial_end"])
        trial_end = p["trial_end"]
    elif "trial_period_days" in p and p.get("trial_end") != "now":
        days = p["trial_period_days"]
        if days > 730:
            raise invalid("trial_period_days may be at most 730.", param="trial_period_days")
        trial_end = now + days * DAY if days > 0 else None
    elif p.get("trial_from_plan") and prices[0]["recurring"]["trial_period_days"]:
        trial_end = now + prices[0]["recurring"]["trial_period_days"] * DAY
    pm_id = p.get("default_payment_method") or None
    if pm_id is not None:
        pm_id = check_payment_method(em, customer, pm_id)
    behavior = p.get("payment_behavior", "allow_incomplete")
    sub_id = em.new_id("sub")
    interval, count = cycle_of(prices[0])
    anchor = trial_end if trial_end is not None else now
    period_end = trial_end if trial_end is not None else boundary(now, interval, count, 1)
    items = []
    for spec, price in zip(p["items"], prices, strict=True):
        quantity = spec.get("quantity", 1)
        if quantity < 0:
            raise invalid("This value must be greater than or equal to 0.", param="quantity")
        items.append(
            {
                "id": em.new_id("si"),
                "object": "subscription_item",
                "billed_until": None,
                "billing_thresholds": None,
                "created": now,
                "current_period_end": period_end,
                "current_period_start": now,
                "current_trial": None,
                "discounts": [],
                "metadata": spec.get("metadata", {}),
                "quantity": quantity,
                "subscription": sub_id,
                "tax_rates": [],
                "_price": price["id"],
            }
        )
    missing_pm = (
        (p.get("trial_settings") or {})
        .get("end_behavior", {})
        .get("missing_payment_method", "create_invoice")
    )
    sub: Obj = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": method,
        "created": now,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": p.get("days_until_due"),
        "default_payment_method": pm_id,
        "default_source": None,
        "default_tax_rates": [],
        "description": p.get("description") or None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": merge_metadata({}, p.get("metadata", {})),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "trialing" if trial_end is not None else "incomplete",
        "status_details": None,
        "test_clock": customer["test_clock"],
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": missing_pm}},
        "trial_start": now if trial_end is not None else None,
        "_items": items,
        "_pending": [],
        "_anchor": anchor,
        "_k": 0,
        "_payment_behavior": behavior,
    }
    needs_payment = trial_end is None and method == "charge_automatically"
    if needs_payment and behavior == "error_if_incomplete":
        total = sum(
            pr["unit_amount"] * it["quantity"] for pr, it in zip(prices, items, strict=True)
        )
        decline = invoices.payment_would_fail(em, sub, customer) if total > 0 else None
        if decline is not None and not p.get("discounts"):
            raise invoices.card_error(decline)
    try:
        return _create(em, ctx, p, sub, customer, prices, period_end, trial_end)
    except StripeError:
        em.t["subscriptions"].delete(sub_id)
        raise


def _create(
    em: Emulator,
    ctx: Ctx,
    p: Params,
    sub: Obj,
    customer: Obj,
    prices: list[Obj],
    period_end: int,
    trial_end: int | None,
) -> Obj:
    now = sub["created"]
    sub_id = sub["id"]
    currency = sub["currency"]
    behavior = sub["_payment_behavior"]
    em.insert("subscriptions", sub)
    table = em.t["subscriptions"]
    table.index("customer", customer["id"], sub_id)
    for price in prices:
        table.index("price", price["id"], sub_id)
    table.index("status", sub["status"], sub_id)
    if "discounts" in p:
        set_discounts(em, ctx, sub, p["discounts"])
    if p.get("cancel_at_period_end"):
        sub["cancel_at_period_end"] = True
        sub["cancel_at"] = period_end
        sub["canceled_at"] = now
        sub["cancellation_details"] = cancellation(None, {}, "cancellation_requested")
    elif p.get("cancel_at"):
        _set_cancel_at(em, sub, p["cancel_at"])
    lines = full_lines(em, sub, now, period_end, trial=trial_end is not None)
    invoice = invoices.create_invoice(
        em,
        ctx,
        sub,
        lines,
        billing_reason="subscription_create",
        period_start=now,
        period_end=now,
        discounts=effective_discounts(em, sub),
    )
    sub["latest_invoice"] = invoice["id"]
    consume_once_discounts(em, ctx, sub, invoice)
    if behavior == "default_incomplete" and invoice["amount_due"] > 0:
        invoices.finalize(em, ctx, invoice)
        outcome = "open_incomplete"
    else:
        outcome = invoices.collect(em, ctx, invoice, sub)
    if sub["status"] == "incomplete" and outcome in ("paid", "open"):
        set_status(em, sub, "active")
    customer["currency"] = currency
    em.emit(ctx, "customer.subscription.created", em.render("subscriptions", sub))
    reschedule(em, sub)
    return em.render("subscriptions", sub)


def retrieve(em: Emulator, ctx: Ctx, p: Params, sub_id: str) -> Obj:
    return em.render("subscriptions", em.t["subscriptions"].get(sub_id))


def list_subscriptions(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    status = p.get("status")
    customer = p.get("customer")
    price = p.get("price") or p.get("plan")
    method = p.get("collection_method")
    created = parse_ts_list_filter(p["created"], "created") if "created" in p else None
    if status is None:
        statuses: frozenset[str] | None = frozenset(
            ("active", "incomplete", "past_due", "paused", "trialing", "unpaid")
        )
    elif status == "all":
        statuses = None
    elif status == "ended":
        statuses = frozenset(ENDED)
    else:
        statuses = frozenset((status,))

    def pred(s: Obj) -> bool:
        return (
            (statuses is None or s["status"] in statuses)
            and (customer is None or s["customer"] == customer)
            and (price is None or any(i["_price"] == price for i in s["_items"]))
            and (method is None or s["collection_method"] == method)
            and (created is None or ts_match(s["created"], created))
        )

    if customer:
        index, key = "customer", customer
    elif price:
        index, key = "price", price
    elif status not in (None, "all", "ended"):
        index, key = "status", status
    else:
        index, key = None, None
    return list_page(em, "subscriptions", "/v1/subscriptions", p, pred, index=index, key=key)


# -- update ------------------------------------------------------------------------------------

_CANCELED_MAY_UPDATE = {"metadata", "cancellation_details", "expand"}


def update(em: Emulator, ctx: Ctx, p: Params, sub_id: str) -> Obj:
    sub = em.t["subscriptions"].get(sub_id)
    snapshot = copy.deepcopy(sub)
    try:
        return _update(em, ctx, p, sub)
    except StripeError:
        # A refused update changes nothing (its events are dropped with the request).
        sub.clear()
        sub.update(snapshot)
        raise


def _update(em: Emulator, ctx: Ctx, p: Params, sub: Obj) -> Obj:
    if sub["status"] in ENDED and set(p) - _CANCELED_MAY_UPDATE:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    before = em.render("subscriptions", sub)
    now = em.now()
    customer = em.t["customers"].get(sub["customer"])
    if "metadata" in p:
        sub["metadata"] = merge_metadata(sub["metadata"], p["metadata"])
    if "description" in p:
        sub["description"] = p["description"] or None
    if "default_payment_method" in p:
        pm = p["default_payment_method"]
        sub["default_payment_method"] = check_payment_method(em, customer, pm) if pm else None
    if "collection_method" in p:
        if (
            p["collection_method"] == "send_invoice"
            and "days_until_due" not in p
            and sub["days_until_due"] is None
        ):
            raise invalid(
                "You must specify `days_until_due` when `collection_method` is `send_invoice`.",
                param="days_until_due",
            )
        sub["collection_method"] = p["collection_method"]
    if "days_until_due" in p:
        sub["days_until_due"] = p["days_until_due"]
    if "payment_behavior" in p:
        sub["_payment_behavior"] = p["payment_behavior"]
    if "trial_settings" in p:
        sub["trial_settings"] = {
            "end_behavior": {
                "missing_payment_method": p["trial_settings"]["end_behavior"][
                    "missing_payment_method"
                ]
            }
        }
    if "cancellation_details" in p:
        sub["cancellation_details"] = cancellation(
            p["cancellation_details"],
            sub["cancellation_details"],
            sub["cancellation_details"]["reason"],
        )
    if "pause_collection" in p:
        _set_pause(em, sub, p["pause_collection"])
    discounts_before = effective_discounts(em, sub)
    if "discounts" in p:
        set_discounts(em, ctx, sub, p["discounts"])
    proration = p.get("proration_behavior", "create_prorations")
    if "trial_end" in p:
        _set_trial_end(em, ctx, sub, p["trial_end"], proration)
    if "items" in p:
        _update_items(
            em, ctx, sub, p["items"], proration, p.get("proration_date"), discounts_before
        )
    elif p.get("billing_cycle_anchor") == "now":
        _reset_cycle(em, ctx, sub, proration, now)
    elif proration == "always_invoice" and sub["_pending"]:
        _invoice_pending(em, ctx, sub)
    if "cancel_at_period_end" in p:
        if p["cancel_at_period_end"]:
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = current_period(sub)[1]
            sub["canceled_at"] = now
            sub["cancellation_details"] = cancellation(
                p.get("cancellation_details"),
                sub["cancellation_details"],
                "cancellation_requested",
            )
        elif sub["cancel_at_period_end"] or sub["cancel_at"] is not None:
            _clear_cancel(sub, p.get("cancellation_details"))
    if "cancel_at" in p:
        if p["cancel_at"] == "":
            _clear_cancel(sub, p.get("cancellation_details"))
        else:
            _set_cancel_at(em, sub, p["cancel_at"])
            sub["cancellation_details"] = cancellation(
                p.get("cancellation_details"),
                sub["cancellation_details"],
                "cancellation_requested",
            )
    emit_updated(em, ctx, sub, before)
    reschedule(em, sub)
    return em.render("subscriptions", sub)


def _clear_cancel(sub: Obj, details: Obj | None) -> None:
    sub["cancel_at_period_end"] = False
    sub["cancel_at"] = None
    sub["canceled_at"] = None
    sub["cancellation_details"] = cancellation(details, {}, None)


def _set_cancel_at(em: Emulator, sub: Obj, when: int) -> None:
    if when <= em.now():
        raise invalid("cancel_at must be in the future.", param="cancel_at")
    sub["cancel_at"] = when
    sub["cancel_at_period_end"] = when == current_period(sub)[1]
    sub["canceled_at"] = em.now()


def _set_pause(em: Emulator, sub: Obj, value: Any) -> None:
    if value == "":
        sub["pause_collection"] = None
        return
    resumes_at = value.get("resumes_at")
    if resumes_at is not None and resumes_at <= em.now():
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.",
            param="pause_collection[resumes_at]",
        )
    if sub["status"] not in ("active", "trialing", "past_due", "unpaid"):
        raise invalid(
            f"You cannot pause collection on a subscription with status {sub['status']}.",
            param="pause_collection",
        )
    sub["pause_collection"] = {"behavior": value["behavior"], "resumes_at": resumes_at}


def _set_trial_end(em: Emulator, ctx: Ctx, sub: Obj, value: Any, proration: str) -> None:
    now = em.now()
    if value == "now":
        if sub["status"] != "trialing":
            return
        sub["trial_end"] = now
        warn_trial_end(em, ctx, sub)
        end_trial(em, ctx, sub, now, reason="subscription_update")
        return
    check_trial_end(em, value)
    if sub["status"] != "trialing":
        # Stripe: putting a paid subscription into a trial prorates like any change of what is
        # billed: the unused paid time of the current period is credited (unless
        # proration_behavior=none); always_invoice invoices the credit now.
        credit = (
            []
            if proration == "none"
            else prorate_lines(
                em,
                sub,
                [(i, item_price(em, i), i["quantity"], None, 0) for i in sub["_items"]],
                now,
            )
        )
        sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in credit)]
        sub["trial_start"] = now
        set_status(em, sub, "trialing")
        start = now
        if proration == "always_invoice" and credit:
            set_period(sub, now, value)
            bill(em, ctx, sub, take_pending(em, sub), "subscription_update", now, now)
    else:
        start = current_period(sub)[0]
    sub["trial_end"] = value
    sub["billing_cycle_anchor"] = value
    sub["_anchor"] = value
    sub["_k"] = 0
    set_period(sub, start, value)


def _update_items(
    em: Emulator,
    ctx: Ctx,
    sub: Obj,
    specs: list[Obj],
    proration: str,
    proration_date: int | None,
    discounts_before: list[Obj],
) -> None:
    now = em.now()
    at = proration_date if proration_date is not None else now
    start, end = current_period(sub)
    if proration_date is not None and not start <= proration_date <= end:
        raise invalid(
            "proration_date must be within the subscription's current period.",
            param="proration_date",
        )
    items = {item["id"]: item for item in sub["_items"]}
    order = [item["id"] for item in sub["_items"]]
    changes: list[tuple[Obj, Obj | None, int, Obj | None, int]] = []
    table = em.t["subscriptions"]
    for i, spec in enumerate(specs):
        param = f"items[{i}]"
        if "id" in spec:
            item = items.get(spec["id"])
            if item is None:
                raise missing("subscription_item", spec["id"], f"{param}[id]")
            old_price = item_price(em, item)
            old_qty = item["quantity"]
            if spec.get("deleted"):
                changes.append((item, old_price, old_qty, None, 0))
                del items[item["id"]]
                order.remove(item["id"])
                continue
            new_price = (
                resolve_price(em, spec, param)
                if {"price", "plan", "price_data"} & spec.keys()
                else old_price
            )
            new_qty = spec.get("quantity", old_qty)
            updated = {**item, "_price": new_price["id"], "quantity": new_qty}
            if "metadata" in spec:
                updated["metadata"] = merge_metadata(item["metadata"], spec["metadata"])
            items[item["id"]] = updated
            if (new_price["id"], new_qty) != (old_price["id"], old_qty):
                changes.append((updated, old_price, old_qty, new_price, new_qty))
            table.index("price", new_price["id"], sub["id"])
        else:
            new_price = resolve_price(em, spec, param)
            item = {
                "id": em.new_id("si"),
                "object": "subscription_item",
                "billed_until": None,
                "billing_thresholds": None,
                "created": now,
                "current_period_end": end,
                "current_period_start": start,
                "current_trial": None,
                "discounts": [],
                "metadata": spec.get("metadata", {}) or {},
                "quantity": spec.get("quantity", 1),
                "subscription": sub["id"],
                "tax_rates": [],
                "_price": new_price["id"],
            }
            items[item["id"]] = item
            order.append(item["id"])
            changes.append((item, None, 0, new_price, item["quantity"]))
            table.index("price", new_price["id"], sub["id"])
    if not order:
        raise invalid(
            "A subscription must have at least one active plan. To cancel a subscription, "
            "please use the cancel API endpoint on /v1/subscriptions.",
            param="items",
        )
    old_cycle = cycle_of(item_price(em, sub["_items"][0]))
    sub["_items"] = [items[i] for i in order]
    prices = [item_price(em, item) for item in sub["_items"]]
    check_same_cycle(prices)
    if prices[0]["currency"] != sub["currency"]:
        raise invalid("You cannot change the currency of a subscription.", param="items")
    if cycle_of(prices[0]) != old_cycle and sub["status"] != "trialing":
        # A different interval starts a new billing period now and bills it at once.
        credit = (
            []
            if proration == "none"
            else prorate_lines(
                em, sub, [(c[0], c[1], c[2], None, 0) for c in changes], at, discounts_before
            )
        )
        sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in credit)]
        _reset_cycle(em, ctx, sub, "none", now)
        return
    if proration == "none" or not changes:
        return
    lines = prorate_lines(em, sub, changes, at, discounts_before)
    sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in lines)]
    if proration == "always_invoice" and sub["_pending"]:
        _invoice_pending(em, ctx, sub)


def _invoice_pending(em: Emulator, ctx: Ctx, sub: Obj) -> None:
    lines = take_pending(em, sub)
    if not lines:
        return
    now = em.now()
    _, outcome = bill(em, ctx, sub, lines, "subscription_update", now, now)
    after_payment(em, sub, outcome)


def _reset_cycle(em: Emulator, ctx: Ctx, sub: Obj, proration: str, now: int) -> None:
    """``billing_cycle_anchor=now`` (or an interval change): new period from now, billed now."""
    if sub["status"] == "trialing":
        sub["trial_end"] = now
    pending = (
        []
        if proration == "none"
        else prorate_lines(
            em,
            sub,
            [(i, item_price(em, i), i["quantity"], None, 0) for i in sub["_items"]],
            now,
        )
    )
    interval, count = cycle_of(item_price(em, sub["_items"][0]))
    end = boundary(now, interval, count, 1)
    sub["_anchor"] = now
    sub["_k"] = 0
    sub["billing_cycle_anchor"] = now
    set_period(sub, now, end)
    lines = [*full_lines(em, sub, now, end), *pending, *take_pending(em, sub)]
    if sub["status"] == "trialing":
        set_status(em, sub, "active")
    _, outcome = bill(em, ctx, sub, lines, "subscription_update", now, now)
    after_payment(em, sub, outcome)


RESUME: dict[str, Any] = {
    "billing_cycle_anchor": Enum.of("now", "unchanged"),
    "proration_behavior": PRORATION,
    "proration_date": "int",
    **EXPAND,
}


def resume(em: Emulator, ctx: Ctx, p: Params, sub_id: str) -> Obj:
    """``POST /v1/subscriptions/{id}/resume``: a ``paused`` subscription (a trial that ended
    without a payment method) starts billing again; if the payment fails it stays paused."""
    sub = em.t["subscriptions"].get(sub_id)
    if sub["status"] != "paused":
        raise invalid(
            f"Only a paused subscription can be resumed; this one is {sub['status']}.",
            param="id",
        )
    before = em.render("subscriptions", sub)
    now = em.now()
    start, end = current_period(sub)
    if p.get("billing_cycle_anchor", "now") == "now" or end <= now:
        interval, count = cycle_of(item_price(em, sub["_items"][0]))
        start, end = now, boundary(now, interval, count, 1)
        sub["_anchor"], sub["_k"], sub["billing_cycle_anchor"] = now, 0, now
        set_period(sub, start, end)
    lines = [*full_lines(em, sub, start, end), *take_pending(em, sub)]
    _, outcome = bill(em, ctx, sub, lines, "subscription_cycle", now, now)
    if outcome != "failed":
        set_status(em, sub, "active")
        em.emit(ctx, "customer.subscription.resumed", em.render("subscriptions", sub))
    emit_updated(em, ctx, sub, before)
    reschedule(em, sub)
    return em.render("subscriptions", sub)


def delete_discount(em: Emulator, ctx: Ctx, p: Params, sub_id: str) -> Obj:
    """``DELETE /v1/subscriptions/{id}/discount``: removes the subscription's discounts and
    answers the (first) removed one with ``deleted: true``, as Stripe answers a Discount."""
    sub = em.t["subscriptions"].get(sub_id)
    live = [d for d in (em.t["discounts"].find(i) for i in sub["discounts"]) if d is not None]
    if not live:
        raise missing("discount", sub_id)
    before = em.render("subscriptions", sub)
    for discount in live:
        em.emit(ctx, "customer.discount.deleted", em.render("discounts", discount))
    sub["discounts"] = []
    emit_updated(em, ctx, sub, before)
    return {**em.render("discounts", live[0]), "deleted": True}


# -- cancel ------------------------------------------------------------------------------------


def cancel(em: Emulator, ctx: Ctx, p: Params, sub_id: str) -> Obj:
    sub = em.t["subscriptions"].get(sub_id)
    if sub["status"] in ENDED:
        # Stripe treats a canceled subscription as gone for this call.
        raise missing("subscription", sub_id)
    cancel_now(
        em,
        ctx,
        sub,
        prorate=p.get("prorate", False),
        invoice_now=p.get("invoice_now", False),
        details=p.get("cancellation_details"),
    )
    return em.render("subscriptions", sub)


__all__ = ["CANCEL", "CREATE", "LIST_PARAMS", "RESUME", "UPDATE"]
