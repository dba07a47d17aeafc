"""Subscriptions: create, read, list, update (discounts, pause, plan change, trial, cancel at
period end) and cancel, plus what the clock does to them (renewals, trial ends, resumes)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from stayflow.sandbox import invoices
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import StripeError, invalid, missing, missing_param
from stayflow.sandbox.invoices import Line
from stayflow.sandbox.params import Emptyable, Enum, ListOf, Params, Required, parse_ts_list_filter
from stayflow.sandbox.periods import DAY, add_months, boundary
from stayflow.sandbox.resources import (
    EXPAND,
    LIST,
    coupon_valid,
    diff,
    list_page,
    merge_metadata,
    render_plan,
    ts_match,
)
from stayflow.sandbox.store import Obj

ENDED = ("canceled", "incomplete_expired")
BILLABLE = ("active", "past_due", "unpaid")
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
MAX_TRIAL = 730 * DAY

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


# -- rendering -----------------------------------------------------------------------------------


def render_item(em: Emulator, item: Obj) -> Obj:
    price = em.t["prices"].objects.get(item["_price"]) or em.state.retired_prices[item["_price"]]
    out = {k: v for k, v in item.items() if k[0] != "_"}
    out["price"] = {k: v for k, v in price.items() if k[0] != "_"}
    out["plan"] = render_plan(em, price)
    return out


def render_subscription(em: Emulator, sub: Obj) -> Obj:
    out = {k: v for k, v in sub.items() if k[0] != "_"}
    data = [render_item(em, item) for item in sub["_items"]]
    out["items"] = {
        "object": "list",
        "data": data,
        "has_more": False,
        "total_count": len(data),
        "url": f"/v1/subscription_items?subscription={sub['id']}",
    }
    return out


Emulator.renderers["subscriptions"] = render_subscription


# -- helpers -----------------------------------------------------------------------------------


def _price(em: Emulator, spec: Obj, param: str) -> Obj:
    if "price" in spec and "plan" in spec:
        raise invalid("You may only specify one of these parameters: plan, price.", param=param)
    if "price_data" in spec:
        data = spec["price_data"]
        product = em.t["products"].get(data["product"], f"{param}[price_data][product]")
        from stayflow.sandbox.resources import _new_price

        return _new_price(
            em,
            price_id=None,
            currency=data["currency"],
            unit_amount=data.get("unit_amount", 0),
            product_id=product["id"],
            recurring=data["recurring"],
            nickname=None,
            metadata={},
            active=False,
        )
    price_id = spec.get("price") or spec.get("plan")
    if price_id is None:
        raise missing_param(f"{param}[price]")
    price = em.t["prices"].find(price_id)
    if price is None:
        raise missing("price" if "price" in spec else "plan", price_id, f"{param}[price]")
    if price["recurring"] is None:
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            "with `type=recurring`.",
            param=f"{param}[price]",
        )
    if not price["active"]:
        raise invalid(
            "The price specified is inactive. This field only accepts active prices.",
            param=f"{param}[price]",
        )
    return price


def _check_same_cycle(prices: list[Obj]) -> None:
    first = prices[0]
    for price in prices[1:]:
        if price["currency"] != first["currency"] or (
            price["recurring"]["interval"],
            price["recurring"]["interval_count"],
        ) != (first["recurring"]["interval"], first["recurring"]["interval_count"]):
            raise invalid(
                "Currency and interval fields must match across all plans on this subscription. "
                "Found mismatch in interval field.",
                param="items",
            )
    ids = [p["id"] for p in prices]
    if len(set(ids)) != len(ids):
        raise invalid(
            "Cannot add multiple subscription items with the same plan: " + ids[0], param="items"
        )


def _cycle(price: Obj) -> tuple[str, int]:
    return price["recurring"]["interval"], price["recurring"]["interval_count"]


def _item_price(em: Emulator, item: Obj) -> Obj:
    found = em.t["prices"].objects.get(item["_price"])
    return found if found is not None else em.state.retired_prices[item["_price"]]


def _product_name(em: Emulator, price: Obj) -> str:
    product = em.t["products"].find(price["product"])
    return str(product["name"] if product else price["product"])


def _fmt(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %Y")


def set_status(em: Emulator, sub: Obj, status: str) -> None:
    sub["status"] = status
    em.t["subscriptions"].index("status", status, sub["id"])


def _next_due(em: Emulator, sub: Obj) -> int | None:
    status = sub["status"]
    if status in ENDED:
        return None
    times: list[int] = []
    if status == "incomplete":
        times.append(sub["created"] + em.settings.incomplete_expires_after)
    if status == "trialing" and sub["trial_end"] is not None:
        times.append(sub["trial_end"])
    if status in BILLABLE:
        times.append(sub["_items"][0]["current_period_end"])
    if sub["cancel_at"] is not None:
        times.append(sub["cancel_at"])
    pause = sub["pause_collection"]
    if pause is not None and pause["resumes_at"] is not None:
        times.append(pause["resumes_at"])
    return min(times) if times else None


def reschedule(em: Emulator, sub: Obj) -> None:
    em.schedule(sub["id"], _next_due(em, sub))


def _set_period(sub: Obj, start: int, end: int) -> None:
    sub["_items"] = [
        {**item, "current_period_start": start, "current_period_end": end} for item in sub["_items"]
    ]


def _period(sub: Obj) -> tuple[int, int]:
    item = sub["_items"][0]
    return item["current_period_start"], item["current_period_end"]


def _discounts(em: Emulator, sub: Obj) -> list[Obj]:
    table = em.t["discounts"]
    return [d for d in (table.find(i) for i in sub["discounts"]) if d is not None]


def _new_discount(em: Emulator, ctx: Ctx, sub: Obj, spec: Obj, param: str) -> Obj:
    keys = [k for k in ("coupon", "promotion_code", "discount") if k in spec]
    if len(keys) != 1:
        raise invalid(
            "You must pass exactly one of coupon, promotion_code or discount.", param=param
        )
    now = em.now()
    if "discount" in spec:
        discount = em.t["discounts"].get(spec["discount"], f"{param}[discount]")
        if discount["customer"] != sub["customer"]:
            raise invalid("This discount belongs to another customer.", param=f"{param}[discount]")
        return discount
    promo_id: str | None = None
    if "promotion_code" in spec:
        promo = em.t["promotion_codes"].get(spec["promotion_code"], f"{param}[promotion_code]")
        if (
            not promo["active"]
            or (promo["expires_at"] is not None and now > promo["expires_at"])
            or (
                promo["max_redemptions"] is not None
                and promo["times_redeemed"] >= promo["max_redemptions"]
            )
        ):
            raise invalid(
                f"This promotion code cannot be redeemed: {promo['code']}",
                param=f"{param}[promotion_code]",
            )
        if promo["customer"] is not None and promo["customer"] != sub["customer"]:
            raise invalid(
                "This promotion code cannot be redeemed by this customer.",
                param=f"{param}[promotion_code]",
            )
        promo["times_redeemed"] += 1
        promo_id = promo["id"]
        coupon = em.t["coupons"].get(promo["promotion"]["coupon"])
    else:
        coupon = em.t["coupons"].get(spec["coupon"], f"{param}[coupon]")
    if not coupon_valid(em, coupon):
        raise invalid(f"Coupon expired: {coupon['id']}", param=f"{param}[coupon]")
    if coupon["amount_off"] is not None and coupon["currency"] != sub["currency"]:
        raise invalid(
            f"This coupon's currency ({coupon['currency']}) does not match the subscription's "
            f"({sub['currency']}).",
            param=f"{param}[coupon]",
        )
    coupon["times_redeemed"] += 1
    end = None
    if coupon["duration"] == "repeating":
        end = add_months(now, coupon["duration_in_months"])
    created: Obj = {
        "id": em.new_id("di"),
        "object": "discount",
        "checkout_session": None,
        "customer": sub["customer"],
        "customer_account": None,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": promo_id,
        "source": {"coupon": coupon["id"], "type": "coupon"},
        "start": now,
        "subscription": sub["id"],
        "subscription_item": None,
    }
    em.insert("discounts", created)
    em.emit(ctx, "customer.discount.created", em.render("discounts", created))
    return created


def _set_discounts(em: Emulator, ctx: Ctx, sub: Obj, specs: Any) -> None:
    """``discounts``: a filled list replaces the subscription's discounts, ``""`` clears."""
    new: list[Obj] = []
    if specs != "":
        for i, spec in enumerate(specs):
            new.append(_new_discount(em, ctx, sub, spec, f"discounts[{i}]"))
    keep = {d["id"] for d in new}
    for old in _discounts(em, sub):
        if old["id"] not in keep:
            em.emit(ctx, "customer.discount.deleted", em.render("discounts", old))
    sub["discounts"] = [d["id"] for d in new]


def _expire_discounts(em: Emulator, ctx: Ctx, sub: Obj, at: int) -> None:
    live = []
    for d in _discounts(em, sub):
        if d["end"] is not None and d["end"] <= at:
            em.emit(ctx, "customer.discount.deleted", em.render("discounts", d))
        else:
            live.append(d["id"])
    if live != sub["discounts"]:
        sub["discounts"] = live


def _consume_once_discounts(em: Emulator, ctx: Ctx, sub: Obj, invoice: Obj) -> None:
    """A ``duration=once`` coupon covers one invoice, then its discount is removed."""
    used = set(invoice["discounts"])
    live = []
    for d in _discounts(em, sub):
        coupon = em.t["coupons"].find(d["source"]["coupon"])
        if d["id"] in used and coupon is not None and coupon["duration"] == "once":
            em.emit(ctx, "customer.discount.deleted", em.render("discounts", d))
        else:
            live.append(d["id"])
    if live != sub["discounts"]:
        sub["discounts"] = live


def _take_pending(em: Emulator, sub: Obj) -> list[Line]:
    lines = [Line.from_dict(x) for x in sub["_pending"]]
    sub["_pending"] = []
    customer = em.t["customers"].find(sub["customer"])
    if customer is not None and customer["_pending_items"]:
        lines.extend(Line.from_dict(x) for x in customer["_pending_items"])
        customer["_pending_items"] = []
    return lines


def _full_lines(em: Emulator, sub: Obj, start: int, end: int, trial: bool = False) -> list[Line]:
    lines = []
    for item in sub["_items"]:
        price = _item_price(em, item)
        qty = item["quantity"]
        name = _product_name(em, price)
        lines.append(
            Line(
                amount=0 if trial else price["unit_amount"] * qty,
                description=(
                    f"Trial period for {name}"
                    if trial
                    else f"{qty} x {name} "
                    f"(at ${price['unit_amount'] / 100:.2f} / {price['recurring']['interval']})"
                ),
                period_start=start,
                period_end=end,
                price_id=price["id"],
                quantity=qty,
                subscription_item=item["id"],
            )
        )
    return lines


def _bill(
    em: Emulator,
    ctx: Ctx,
    sub: Obj,
    lines: list[Line],
    reason: str,
    start: int,
    end: int,
) -> tuple[Obj, str]:
    """Create, finalize and collect an invoice (honouring pause_collection); set latest."""
    invoice = invoices.create_invoice(
        em,
        ctx,
        sub,
        lines,
        billing_reason=reason,
        period_start=start,
        period_end=end,
        discounts=_discounts(em, sub),
    )
    sub["latest_invoice"] = invoice["id"]
    _consume_once_discounts(em, ctx, sub, invoice)
    pause = sub["pause_collection"]
    if pause is not None and reason == "subscription_cycle":
        behavior = pause["behavior"]
        if behavior == "keep_as_draft":
            return invoice, "draft"
        invoices.finalize(em, ctx, invoice)
        if behavior == "void":
            invoices.void(em, ctx, invoice)
            return invoice, "void"
        invoices.mark_uncollectible(em, ctx, invoice)
        return invoice, "uncollectible"
    if sub["_payment_behavior"] == "default_incomplete" and sub["status"] == "incomplete":
        invoices.finalize(em, ctx, invoice)
        return invoice, "open"
    return invoice, invoices.collect(em, ctx, invoice, sub)


def _after_payment(em: Emulator, sub: Obj, outcome: str) -> None:
    if outcome == "failed" and sub["status"] in ("active", "trialing"):
        set_status(em, sub, "past_due")
    elif outcome in ("paid", "open") and sub["status"] in ("past_due", "unpaid", "trialing"):
        set_status(em, sub, "active")


def invoice_paid(em: Emulator, ctx: Ctx, sub: Obj, invoice: Obj) -> None:
    """An invoice was paid later (``POST /v1/invoices/{id}/pay``)."""
    if sub["latest_invoice"] != invoice["id"] or sub["status"] not in (
        "incomplete",
        "past_due",
        "unpaid",
    ):
        return
    before = em.render("subscriptions", sub)
    set_status(em, sub, "active")
    _emit_updated(em, ctx, sub, before)
    reschedule(em, sub)


def _emit_updated(em: Emulator, ctx: Ctx, sub: Obj, before: Obj) -> None:
    after = em.render("subscriptions", sub)
    changed = diff(before, after)
    if changed:
        em.emit(ctx, "customer.subscription.updated", after, changed)


def _check_trial_end(em: Emulator, value: int, param: str = "trial_end") -> None:
    now = em.now()
    if value <= now:
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.", param=param
        )
    if value > now + MAX_TRIAL:
        raise invalid(
            "Invalid timestamp: can be no more than two years in the future.", param=param
        )


def _check_payment_method(em: Emulator, customer: Obj, pm_id: str) -> str:
    pm = em.t["payment_methods"].find(pm_id)
    if pm is None:
        raise missing("PaymentMethod", pm_id, "default_payment_method")
    if pm["customer"] != customer["id"]:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            param="default_payment_method",
        )
    return str(pm["id"])


def _cancellation(details: Obj | None, current: Obj, reason: str | None) -> Obj:
    out = {"comment": current.get("comment"), "feedback": current.get("feedback"), "reason": reason}
    for key in ("comment", "feedback"):
        if details is not None and key in details:
            out[key] = details[key] or None
    return out


# -- create / read / list ------------------------------------------------------------------------


def create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    customer = em.t["customers"].get(p["customer"], "customer")
    if not p["items"]:
        raise missing_param("items")
    prices = [_price(em, spec, f"items[{i}]") for i, spec in enumerate(p["items"])]
    _check_same_cycle(prices)
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
        _check_trial_end(em, p["trial_end"])
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
        pm_id = _check_payment_method(em, customer, pm_id)
    behavior = p.get("payment_behavior", "allow_incomplete")
    sub_id = em.new_id("sub")
    interval, count = _cycle(prices[0])
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
                "billing_thresholds": None,
                "created": now,
                "current_period_end": period_end,
                "current_period_start": now,
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
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": method,
        "created": now,
        "currency": currency,
        "customer": customer["id"],
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
        "test_clock": None,
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
        _set_discounts(em, ctx, sub, p["discounts"])
    if p.get("cancel_at_period_end"):
        sub["cancel_at_period_end"] = True
        sub["cancel_at"] = period_end
        sub["canceled_at"] = now
        sub["cancellation_details"] = _cancellation(None, {}, "cancellation_requested")
    elif p.get("cancel_at"):
        _set_cancel_at(em, sub, p["cancel_at"])
    lines = _full_lines(em, sub, now, period_end, trial=trial_end is not None)
    invoice = invoices.create_invoice(
        em,
        ctx,
        sub,
        lines,
        billing_reason="subscription_create",
        period_start=now,
        period_end=now,
        discounts=_discounts(em, sub),
    )
    sub["latest_invoice"] = invoice["id"]
    _consume_once_discounts(em, ctx, sub, invoice)
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
        sub["default_payment_method"] = _check_payment_method(em, customer, pm) if pm else None
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
        sub["cancellation_details"] = _cancellation(
            p["cancellation_details"],
            sub["cancellation_details"],
            sub["cancellation_details"]["reason"],
        )
    if "pause_collection" in p:
        _set_pause(em, sub, p["pause_collection"])
    if "discounts" in p:
        _set_discounts(em, ctx, sub, p["discounts"])
    if "trial_end" in p:
        _set_trial_end(em, ctx, sub, p["trial_end"])
    proration = p.get("proration_behavior", "create_prorations")
    if "items" in p:
        _update_items(em, ctx, sub, p["items"], proration, p.get("proration_date"))
    elif p.get("billing_cycle_anchor") == "now":
        _reset_cycle(em, ctx, sub, proration, now)
    elif proration == "always_invoice" and sub["_pending"]:
        _invoice_pending(em, ctx, sub)
    if "cancel_at_period_end" in p:
        if p["cancel_at_period_end"]:
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = _period(sub)[1]
            sub["canceled_at"] = now
            sub["cancellation_details"] = _cancellation(
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
            sub["cancellation_details"] = _cancellation(
                p.get("cancellation_details"),
                sub["cancellation_details"],
                "cancellation_requested",
            )
    _emit_updated(em, ctx, sub, before)
    reschedule(em, sub)
    return em.render("subscriptions", sub)


def _clear_cancel(sub: Obj, details: Obj | None) -> None:
    sub["cancel_at_period_end"] = False
    sub["cancel_at"] = None
    sub["canceled_at"] = None
    sub["cancellation_details"] = _cancellation(details, {}, None)


def _set_cancel_at(em: Emulator, sub: Obj, when: int) -> None:
    if when <= em.now():
        raise invalid("cancel_at must be in the future.", param="cancel_at")
    sub["cancel_at"] = when
    sub["cancel_at_period_end"] = when == _period(sub)[1]
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


def _set_trial_end(em: Emulator, ctx: Ctx, sub: Obj, value: Any) -> None:
    now = em.now()
    if value == "now":
        if sub["status"] != "trialing":
            return
        sub["trial_end"] = now
        _end_trial(em, ctx, sub, now, reason="subscription_update")
        return
    _check_trial_end(em, value)
    if sub["status"] != "trialing":
        sub["trial_start"] = now
        set_status(em, sub, "trialing")
        start = now
    else:
        start = _period(sub)[0]
    sub["trial_end"] = value
    sub["billing_cycle_anchor"] = value
    sub["_anchor"] = value
    sub["_k"] = 0
    _set_period(sub, start, value)


def _prorate_lines(
    em: Emulator, sub: Obj, changes: list[tuple[Obj, Obj | None, int, Obj | None, int]], at: int
) -> list[Line]:
    """Credit unused time of the old price, charge the rest of the period at the new one."""
    start, end = _period(sub)
    if sub["status"] == "trialing" or not start <= at < end:
        return []
    fraction = (end - at) / (end - start)
    lines: list[Line] = []
    for item, old_price, old_qty, new_price, new_qty in changes:
        if old_price is not None and old_qty:
            amount = round(old_price["unit_amount"] * old_qty * fraction)
            lines.append(
                Line(
                    amount=-amount,
                    description=f"Unused time on {old_qty} x {_product_name(em, old_price)} "
                    f"after {_fmt(at)}",
                    period_start=at,
                    period_end=end,
                    price_id=old_price["id"],
                    quantity=old_qty,
                    proration=True,
                    subscription_item=item["id"],
                )
            )
        if new_price is not None and new_qty:
            amount = round(new_price["unit_amount"] * new_qty * fraction)
            lines.append(
                Line(
                    amount=amount,
                    description=f"Remaining time on {new_qty} x {_product_name(em, new_price)} "
                    f"after {_fmt(at)}",
                    period_start=at,
                    period_end=end,
                    price_id=new_price["id"],
                    quantity=new_qty,
                    proration=True,
                    subscription_item=item["id"],
                )
            )
    return lines


def _update_items(
    em: Emulator,
    ctx: Ctx,
    sub: Obj,
    specs: list[Obj],
    proration: str,
    proration_date: int | None,
) -> None:
    now = em.now()
    at = proration_date if proration_date is not None else now
    start, end = _period(sub)
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
            old_price = _item_price(em, item)
            old_qty = item["quantity"]
            if spec.get("deleted"):
                changes.append((item, old_price, old_qty, None, 0))
                del items[item["id"]]
                order.remove(item["id"])
                continue
            new_price = (
                _price(em, spec, param)
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
            new_price = _price(em, spec, param)
            item = {
                "id": em.new_id("si"),
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": now,
                "current_period_end": end,
                "current_period_start": start,
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
    old_cycle = _cycle(_item_price(em, sub["_items"][0]))
    sub["_items"] = [items[i] for i in order]
    prices = [_item_price(em, item) for item in sub["_items"]]
    _check_same_cycle(prices)
    if prices[0]["currency"] != sub["currency"]:
        raise invalid("You cannot change the currency of a subscription.", param="items")
    if _cycle(prices[0]) != old_cycle and sub["status"] != "trialing":
        # A different interval starts a new billing period now and bills it at once.
        credit = (
            []
            if proration == "none"
            else _prorate_lines(em, sub, [(c[0], c[1], c[2], None, 0) for c in changes], at)
        )
        sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in credit)]
        _reset_cycle(em, ctx, sub, "none", now)
        return
    if proration == "none" or not changes:
        return
    lines = _prorate_lines(em, sub, changes, at)
    sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in lines)]
    if proration == "always_invoice" and sub["_pending"]:
        _invoice_pending(em, ctx, sub)


def _invoice_pending(em: Emulator, ctx: Ctx, sub: Obj) -> None:
    lines = _take_pending(em, sub)
    if not lines:
        return
    now = em.now()
    _, outcome = _bill(em, ctx, sub, lines, "subscription_update", now, now)
    _after_payment(em, sub, outcome)


def _reset_cycle(em: Emulator, ctx: Ctx, sub: Obj, proration: str, now: int) -> None:
    """``billing_cycle_anchor=now`` (or an interval change): new period from now, billed now."""
    if sub["status"] == "trialing":
        sub["trial_end"] = now
    pending = (
        []
        if proration == "none"
        else _prorate_lines(
            em,
            sub,
            [(i, _item_price(em, i), i["quantity"], None, 0) for i in sub["_items"]],
            now,
        )
    )
    interval, count = _cycle(_item_price(em, sub["_items"][0]))
    end = boundary(now, interval, count, 1)
    sub["_anchor"] = now
    sub["_k"] = 0
    sub["billing_cycle_anchor"] = now
    _set_period(sub, now, end)
    lines = [*_full_lines(em, sub, now, end), *pending, *_take_pending(em, sub)]
    if sub["status"] == "trialing":
        set_status(em, sub, "active")
    _, outcome = _bill(em, ctx, sub, lines, "subscription_update", now, now)
    _after_payment(em, sub, outcome)


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


def cancel_now(
    em: Emulator,
    ctx: Ctx,
    sub: Obj,
    *,
    prorate: bool,
    invoice_now: bool,
    details: Obj | None = None,
    reason: str = "cancellation_requested",
    at: int | None = None,
) -> None:
    now = em.now() if at is None else at
    credit: list[Line] = []
    if prorate and sub["status"] in BILLABLE:
        credit = _prorate_lines(
            em,
            sub,
            [(i, _item_price(em, i), i["quantity"], None, 0) for i in sub["_items"]],
            now,
        )
    if sub["status"] == "incomplete" and sub["latest_invoice"]:
        invoice = em.t["invoices"].find(sub["latest_invoice"])
        if invoice is not None and invoice["status"] == "open":
            invoices.void(em, ctx, invoice)
    sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in credit)]
    if invoice_now and sub["_pending"]:
        lines = _take_pending(em, sub)
        _bill(em, ctx, sub, lines, "subscription_cycle", now, now)
    elif sub["_pending"]:
        # Uninvoiced items stay with the customer, for their next invoice.
        customer = em.t["customers"].find(sub["customer"])
        if customer is not None:
            customer["_pending_items"] = [*customer["_pending_items"], *sub["_pending"]]
        sub["_pending"] = []
    set_status(em, sub, "canceled")
    if sub["canceled_at"] is None or at is None:
        sub["canceled_at"] = now
    sub["ended_at"] = now
    sub["cancellation_details"] = _cancellation(details, sub["cancellation_details"], reason)
    em.schedule(sub["id"], None)
    em.emit(ctx, "customer.subscription.deleted", em.render("subscriptions", sub))


# -- the clock -----------------------------------------------------------------------------------


def on_due(em: Emulator, ctx: Ctx, sub_id: str, when: int) -> None:
    sub = em.t["subscriptions"].find(sub_id)
    if sub is None or sub["status"] in ENDED:
        return
    before = em.render("subscriptions", sub)
    if sub["status"] == "incomplete":
        if when >= sub["created"] + em.settings.incomplete_expires_after:
            invoice = em.t["invoices"].find(sub["latest_invoice"] or "")
            if invoice is not None and invoice["status"] == "open":
                invoices.void(em, ctx, invoice)
            set_status(em, sub, "incomplete_expired")
            sub["ended_at"] = when
            _emit_updated(em, ctx, sub, before)
            return
    pause = sub["pause_collection"]
    if pause is not None and pause["resumes_at"] is not None and pause["resumes_at"] <= when:
        sub["pause_collection"] = None
    if sub["cancel_at"] is not None and sub["cancel_at"] <= when:
        cancel_now(
            em, ctx, sub, prorate=False, invoice_now=False, at=sub["cancel_at"], details=None
        )
        return
    if sub["status"] == "trialing" and sub["trial_end"] is not None and sub["trial_end"] <= when:
        _end_trial(em, ctx, sub, sub["trial_end"], reason="subscription_cycle")
    elif sub["status"] in BILLABLE and _period(sub)[1] <= when:
        _renew(em, ctx, sub)
    if sub["status"] not in ENDED:
        _emit_updated(em, ctx, sub, before)
        reschedule(em, sub)


def _end_trial(em: Emulator, ctx: Ctx, sub: Obj, at: int, reason: str) -> None:
    customer = em.t["customers"].get(sub["customer"])
    no_pm = invoices.payment_would_fail(em, sub, customer) == "no_payment_method"
    behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    interval, count = _cycle(_item_price(em, sub["_items"][0]))
    sub["_anchor"] = at
    sub["_k"] = 0
    sub["billing_cycle_anchor"] = at
    end = boundary(at, interval, count, 1)
    if (
        no_pm
        and sub["collection_method"] == "charge_automatically"
        and behavior != "create_invoice"
    ):
        if behavior == "cancel":
            cancel_now(
                em,
                ctx,
                sub,
                prorate=False,
                invoice_now=False,
                at=at,
                reason="cancellation_requested",
            )
            return
        set_status(em, sub, "paused")
        _set_period(sub, at, end)
        em.emit(ctx, "customer.subscription.paused", em.render("subscriptions", sub))
        return
    _set_period(sub, at, end)
    set_status(em, sub, "active")
    lines = [*_full_lines(em, sub, at, end), *_take_pending(em, sub)]
    _, outcome = _bill(em, ctx, sub, lines, reason, at, at)
    _after_payment(em, sub, outcome)


def _renew(em: Emulator, ctx: Ctx, sub: Obj) -> None:
    interval, count = _cycle(_item_price(em, sub["_items"][0]))
    old_start, old_end = _period(sub)
    sub["_k"] += 1
    start = old_end
    end = boundary(sub["_anchor"], interval, count, sub["_k"] + 1)
    _set_period(sub, start, end)
    _expire_discounts(em, ctx, sub, start)
    lines = [*_full_lines(em, sub, start, end), *_take_pending(em, sub)]
    # The invoice's period is the one just ended (Stripe bills usage in arrears, seats ahead).
    _, outcome = _bill(em, ctx, sub, lines, "subscription_cycle", old_start, old_end)
    _after_payment(em, sub, outcome)


def render_discount(em: Emulator, discount: Obj) -> Obj:
    return dict(discount)


__all__ = ["CANCEL", "CREATE", "LIST_PARAMS", "UPDATE", "StripeError"]
