"""What subscriptions share: rendering, discounts, invoice lines and prorations, payment
outcomes, and cancelling now (used by the API and by the clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from stayflow.sandbox import invoices
from stayflow.sandbox.catalog import coupon_valid, new_price, render_plan
from stayflow.sandbox.common import diff
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import invalid, missing, missing_param
from stayflow.sandbox.invoices import Line, coupon_of
from stayflow.sandbox.money import format_amount, percent, round_half_up
from stayflow.sandbox.periods import DAY, add_months
from stayflow.sandbox.store import Obj

ENDED = ("canceled", "incomplete_expired")
BILLABLE = ("active", "past_due", "unpaid")
MAX_TRIAL = 730 * DAY
TRIAL_WARNING = 3 * DAY  # customer.subscription.trial_will_end comes three days ahead


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


def resolve_price(em: Emulator, spec: Obj, param: str) -> Obj:
    if "price" in spec and "plan" in spec:
        raise invalid("You may only specify one of these parameters: plan, price.", param=param)
    if "price_data" in spec:
        data = spec["price_data"]
        product = em.t["products"].get(data["product"], f"{param}[price_data][product]")
        return new_price(
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


def check_same_cycle(prices: list[Obj]) -> None:
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


def cycle_of(price: Obj) -> tuple[str, int]:
    return price["recurring"]["interval"], price["recurring"]["interval_count"]


def item_price(em: Emulator, item: Obj) -> Obj:
    found = em.t["prices"].objects.get(item["_price"])
    return found if found is not None else em.state.retired_prices[item["_price"]]


def product_name(em: Emulator, price: Obj) -> str:
    product = em.t["products"].find(price["product"])
    return str(product["name"] if product else price["product"])


def fmt_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %Y")


def set_status(em: Emulator, sub: Obj, status: str) -> None:
    sub["status"] = status
    em.t["subscriptions"].index("status", status, sub["id"])


def next_due(em: Emulator, sub: Obj) -> int | None:
    status = sub["status"]
    if status in ENDED:
        return None
    times: list[int] = []
    if status == "incomplete":
        times.append(sub["created"] + em.settings.incomplete_expires_after)
    if status == "trialing" and sub["trial_end"] is not None:
        times.append(sub["trial_end"])
        if sub.get("_trial_warned") != sub["trial_end"]:
            times.append(sub["trial_end"] - TRIAL_WARNING)
    if status in BILLABLE:
        times.append(sub["_items"][0]["current_period_end"])
    if sub["cancel_at"] is not None:
        times.append(sub["cancel_at"])
    pause = sub["pause_collection"]
    if pause is not None and pause["resumes_at"] is not None:
        times.append(pause["resumes_at"])
    return min(times) if times else None


def warn_trial_end(em: Emulator, ctx: Ctx, sub: Obj) -> None:
    """``customer.subscription.trial_will_end``, once per trial end."""
    if sub["status"] == "trialing" and sub.get("_trial_warned") != sub["trial_end"]:
        sub["_trial_warned"] = sub["trial_end"]
        em.emit(ctx, "customer.subscription.trial_will_end", em.render("subscriptions", sub))


def reschedule(em: Emulator, sub: Obj) -> None:
    em.schedule(sub["id"], next_due(em, sub))


def set_period(sub: Obj, start: int, end: int) -> None:
    sub["_items"] = [
        {**item, "current_period_start": start, "current_period_end": end} for item in sub["_items"]
    ]


def current_period(sub: Obj) -> tuple[int, int]:
    item = sub["_items"][0]
    return item["current_period_start"], item["current_period_end"]


def live_discounts(em: Emulator, sub: Obj) -> list[Obj]:
    table = em.t["discounts"]
    return [d for d in (table.find(i) for i in sub["discounts"]) if d is not None]


def customer_discount(em: Emulator, customer_id: str) -> Obj | None:
    customer = em.t["customers"].find(customer_id)
    if customer is None or customer["discount"] is None:
        return None
    found = em.t["discounts"].find(customer["discount"]["id"])
    if found is None or (found["end"] is not None and found["end"] <= em.now()):
        return None
    return found


def effective_discounts(em: Emulator, sub: Obj) -> list[Obj]:
    """What the subscription's invoices are discounted by: its own discounts, else the
    customer's (Stripe: a customer-level discount applies to the customer's subscriptions
    that have none of their own)."""
    own = live_discounts(em, sub)
    if own:
        return own
    found = customer_discount(em, sub["customer"])
    return [found] if found is not None else []


def net_amount(em: Emulator, discounts: list[Obj], amount: int, subtotal: int) -> Fraction:
    """``amount`` (one item's price x quantity for a full period) after ``discounts``: a
    percent coupon takes its share, an ``amount_off`` one its part in proportion to the item's
    share of ``subtotal`` (what the period's invoice would bill in all)."""
    value = Fraction(amount)
    for discount in discounts:
        coupon = coupon_of(em, discount)
        if coupon is None:
            continue
        if coupon["percent_off"] is not None:
            value -= value * percent(coupon["percent_off"])
        elif subtotal > 0:
            value -= min(value, Fraction(coupon["amount_off"] * amount, subtotal))
    return max(value, Fraction(0))


def new_discount(em: Emulator, ctx: Ctx, sub: Obj, spec: Obj, param: str) -> Obj:
    return make_discount(
        em,
        ctx,
        spec,
        param,
        customer_id=sub["customer"],
        currency=sub["currency"],
        subscription_id=sub["id"],
    )


def make_discount(
    em: Emulator,
    ctx: Ctx,
    spec: Obj,
    param: str,
    *,
    customer_id: str,
    currency: str | None,
    subscription_id: str | None,
    announce: bool = True,
) -> Obj:
    """A discount from ``{coupon}`` / ``{promotion_code}`` / ``{discount}`` (``param`` names the
    spec in errors); for a subscription, or for the customer when ``subscription_id`` is None.
    ``announce=False``: the caller emits the event (a switch is ``customer.discount.updated``)."""
    keys = [k for k in ("coupon", "promotion_code", "discount") if k in spec]
    if len(keys) != 1:
        raise invalid(
            "You must pass exactly one of coupon, promotion_code or discount.", param=param
        )

    def named(key: str) -> str:
        return f"{param}[{key}]" if param else key

    now = em.now()
    if "discount" in spec:
        discount = em.t["discounts"].get(spec["discount"], named("discount"))
        if discount["customer"] != customer_id:
            raise invalid("This discount belongs to another customer.", param=named("discount"))
        return discount
    promo_id: str | None = None
    if "promotion_code" in spec:
        promo = em.t["promotion_codes"].get(spec["promotion_code"], named("promotion_code"))
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
                param=named("promotion_code"),
            )
        if promo["customer"] is not None and promo["customer"] != customer_id:
            raise invalid(
                "This promotion code cannot be redeemed by this customer.",
                param=named("promotion_code"),
            )
        promo["times_redeemed"] += 1
        promo_id = promo["id"]
        coupon = em.t["coupons"].get(promo["promotion"]["coupon"], named("promotion_code"))
    else:
        coupon = em.t["coupons"].get(spec["coupon"], named("coupon"))
    if not coupon_valid(em, coupon):
        raise invalid(f"Coupon expired: {coupon['id']}", param=named("coupon"))
    if coupon["amount_off"] is not None and currency is not None and coupon["currency"] != currency:
        raise invalid(
            f"This coupon's currency ({coupon['currency']}) does not match the subscription's "
            f"({currency}).",
            param=named("coupon"),
        )
    coupon["times_redeemed"] += 1
    end = None
    if coupon["duration"] == "repeating":
        end = add_months(now, coupon["duration_in_months"])
    created: Obj = {
        "id": em.new_id("di"),
        "object": "discount",
        "checkout_session": None,
        "customer": customer_id,
        "customer_account": None,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": promo_id,
        "source": {"coupon": coupon["id"], "type": "coupon"},
        "start": now,
        "subscription": subscription_id,
        "subscription_item": None,
        # The coupon as redeemed: a discount keeps working after its coupon is deleted.
        "_coupon": dict(coupon),
    }
    em.insert("discounts", created)
    if announce:
        em.emit(ctx, "customer.discount.created", em.render("discounts", created))
    return created


def set_discounts(em: Emulator, ctx: Ctx, sub: Obj, specs: Any) -> None:
    """``discounts``: a filled list replaces the subscription's discounts, ``""`` clears."""
    new: list[Obj] = []
    if specs != "":
        for i, spec in enumerate(specs):
            new.append(new_discount(em, ctx, sub, spec, f"discounts[{i}]"))
    keep = {d["id"] for d in new}
    for old in live_discounts(em, sub):
        if old["id"] not in keep:
            em.emit(ctx, "customer.discount.deleted", em.render("discounts", old))
    sub["discounts"] = [d["id"] for d in new]


def expire_discounts(em: Emulator, ctx: Ctx, sub: Obj, at: int) -> None:
    live = []
    for d in live_discounts(em, sub):
        if d["end"] is not None and d["end"] <= at:
            em.emit(ctx, "customer.discount.deleted", em.render("discounts", d))
        else:
            live.append(d["id"])
    if live != sub["discounts"]:
        sub["discounts"] = live
    customer = em.t["customers"].find(sub["customer"])
    if customer is not None and customer["discount"] is not None:
        end = customer["discount"]["end"]
        if end is not None and end <= at:
            remove_customer_discount(em, ctx, customer)


def consume_once_discounts(em: Emulator, ctx: Ctx, sub: Obj, invoice: Obj) -> None:
    """A ``duration=once`` coupon covers one invoice, then its discount is removed (the
    subscription's, or the customer's when that one was applied)."""
    used = set(invoice["discounts"])
    live = []
    for d in live_discounts(em, sub):
        coupon = coupon_of(em, d)
        if d["id"] in used and coupon is not None and coupon["duration"] == "once":
            em.emit(ctx, "customer.discount.deleted", em.render("discounts", d))
        else:
            live.append(d["id"])
    if live != sub["discounts"]:
        sub["discounts"] = live
    customer = em.t["customers"].find(sub["customer"])
    if customer is not None and customer["discount"] is not None:
        d = customer["discount"]
        coupon = coupon_of(em, d)
        if d["id"] in used and coupon is not None and coupon["duration"] == "once":
            remove_customer_discount(em, ctx, customer)


def remove_customer_discount(em: Emulator, ctx: Ctx, customer: Obj) -> Obj:
    """Take the customer's discount off (``customer.discount.deleted``, ``customer.updated``)."""
    before = em.render("customers", customer)
    discount = customer["discount"]
    customer["discount"] = None
    em.emit(ctx, "customer.discount.deleted", discount)
    after = em.render("customers", customer)
    em.emit(ctx, "customer.updated", after, diff(before, after))
    return dict(discount)


def take_pending(em: Emulator, sub: Obj) -> list[Line]:
    lines = [Line.from_dict(x) for x in sub["_pending"]]
    sub["_pending"] = []
    customer = em.t["customers"].find(sub["customer"])
    if customer is not None and customer["_pending_items"]:
        lines.extend(Line.from_dict(x) for x in customer["_pending_items"])
        customer["_pending_items"] = []
    return lines


def price_text(price: Obj) -> str:
    """``$20.00 / month``, ``¥2,000 / month``, ``$90.00 / every 3 months`` (Stripe's line
    descriptions use the currency's symbol and exponent)."""
    interval = price["recurring"]["interval"]
    count = price["recurring"]["interval_count"]
    every = interval if count == 1 else f"every {count} {interval}s"
    return f"{format_amount(price['unit_amount'], price['currency'])} / {every}"


def full_lines(em: Emulator, sub: Obj, start: int, end: int, trial: bool = False) -> list[Line]:
    lines = []
    for item in sub["_items"]:
        price = item_price(em, item)
        qty = item["quantity"]
        name = product_name(em, price)
        lines.append(
            Line(
                amount=0 if trial else price["unit_amount"] * qty,
                description=(
                    f"Trial period for {name}"
                    if trial
                    else f"{qty} \u00d7 {name} (at {price_text(price)})"
                ),
                period_start=start,
                period_end=end,
                price_id=price["id"],
                quantity=qty,
                subscription_item=item["id"],
            )
        )
    return lines


def bill(
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
        discounts=effective_discounts(em, sub),
    )
    sub["latest_invoice"] = invoice["id"]
    consume_once_discounts(em, ctx, sub, invoice)
    pause = sub["pause_collection"]
    # Stripe (pause payment collection guide): while collection is paused "invoices continue
    # to generate, but Stripe doesn't collect payment" - every invoice the subscription makes,
    # renewals, proration invoices and a cancel's final invoice alike.
    if pause is not None and reason != "subscription_create":
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


def after_payment(em: Emulator, sub: Obj, outcome: str) -> None:
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
    emit_updated(em, ctx, sub, before)
    reschedule(em, sub)


def emit_updated(em: Emulator, ctx: Ctx, sub: Obj, before: Obj) -> None:
    after = em.render("subscriptions", sub)
    changed = diff(before, after)
    if changed:
        em.emit(ctx, "customer.subscription.updated", after, changed)


def check_trial_end(em: Emulator, value: int, param: str = "trial_end") -> None:
    now = em.now()
    if value <= now:
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.", param=param
        )
    if value > now + MAX_TRIAL:
        raise invalid(
            "Invalid timestamp: can be no more than two years in the future.", param=param
        )


def check_payment_method(em: Emulator, customer: Obj, pm_id: str) -> str:
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


def cancellation(details: Obj | None, current: Obj, reason: str | None) -> Obj:
    out = {"comment": current.get("comment"), "feedback": current.get("feedback"), "reason": reason}
    for key in ("comment", "feedback"):
        if details is not None and key in details:
            out[key] = details[key] or None
    return out


Change = tuple[Obj, Obj | None, int, Obj | None, int]  # item, old price/qty, new price/qty


def prorate_lines(
    em: Emulator,
    sub: Obj,
    changes: list[Change],
    at: int,
    discounts_before: list[Obj] | None = None,
) -> list[Line]:
    """Credit unused time of the old price, charge the rest of the period at the new one.

    Stripe (prorations guide, "Prorations and discounts"; ``proration_discounts=included``, the
    default): discounts already on the subscription are reflected in the proration amounts,
    proration lines are ``discountable: false`` and name the discounts with an amount of 0.
    Each line is rounded half-up once, from the exact prorated amount. The credit uses the
    discounts in effect before the change (``discounts_before``), the charge those after it.
    """
    start, end = current_period(sub)
    if sub["status"] == "trialing" or not start <= at < end:
        return []
    fraction = Fraction(end - at, end - start)
    after = effective_discounts(em, sub)
    before = after if discounts_before is None else discounts_before
    old_total = sum(c[1]["unit_amount"] * c[2] for c in changes if c[1] is not None) + sum(
        item_price(em, i)["unit_amount"] * i["quantity"]
        for i in sub["_items"]
        if all(i["id"] != c[0]["id"] for c in changes)
    )
    new_total = sum(item_price(em, i)["unit_amount"] * i["quantity"] for i in sub["_items"])
    lines: list[Line] = []
    for item, old_price, old_qty, next_price, new_qty in changes:
        if old_price is not None and old_qty:
            full = old_price["unit_amount"] * old_qty
            amount = round_half_up(net_amount(em, before, full, old_total) * fraction)
            lines.append(
                Line(
                    amount=-amount,
                    description=f"Unused time on {old_qty} \u00d7 {product_name(em, old_price)} "
                    f"after {fmt_date(at)}",
                    period_start=at,
                    period_end=end,
                    price_id=old_price["id"],
                    quantity=old_qty,
                    proration=True,
                    subscription_item=item["id"],
                    discounts=[d["id"] for d in before],
                )
            )
        if next_price is not None and new_qty:
            full = next_price["unit_amount"] * new_qty
            amount = round_half_up(net_amount(em, after, full, new_total) * fraction)
            lines.append(
                Line(
                    amount=amount,
                    description=f"Remaining time on {new_qty} \u00d7 "
                    f"{product_name(em, next_price)} after {fmt_date(at)}",
                    period_start=at,
                    period_end=end,
                    price_id=next_price["id"],
                    quantity=new_qty,
                    proration=True,
                    subscription_item=item["id"],
                    discounts=[d["id"] for d in after],
                )
            )
    return lines


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
        credit = prorate_lines(
            em,
            sub,
            [(i, item_price(em, i), i["quantity"], None, 0) for i in sub["_items"]],
            now,
        )
    if sub["status"] == "incomplete" and sub["latest_invoice"]:
        invoice = em.t["invoices"].find(sub["latest_invoice"])
        if invoice is not None and invoice["status"] == "open":
            invoices.void(em, ctx, invoice)
    if not invoice_now and not prorate and at is None:
        # Stripe (cancel reference): cancelling immediately with invoice_now and prorate both
        # false removes the pending prorations. A scheduled cancel (cancel_at, period end) leaves
        # them in place, to be collected.
        sub["_pending"] = [p for p in sub["_pending"] if not p["proration"]]
    sub["_pending"] = [*sub["_pending"], *(line.as_dict() for line in credit)]
    if invoice_now and sub["_pending"]:
        lines = take_pending(em, sub)
        # Not documented by Stripe; "subscription_update" is the documented reason closest to a
        # cancel ("A subscription was updated"; no new period begins). See docs/stripe-sandbox.md.
        bill(em, ctx, sub, lines, "subscription_update", now, now)
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
    sub["cancellation_details"] = cancellation(details, sub["cancellation_details"], reason)
    em.schedule(sub["id"], None)
    em.emit(ctx, "customer.subscription.deleted", em.render("subscriptions", sub))
