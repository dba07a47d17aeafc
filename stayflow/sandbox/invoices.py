"""Invoices: what a subscription bills, its discounts, the customer's balance, and payment."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from stayflow.sandbox.common import EXPAND, LIST, diff, list_page, ts_match
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import StripeError, invalid
from stayflow.sandbox.money import percent, round_half_up
from stayflow.sandbox.params import Enum, ListOf, Params, parse_ts_list_filter
from stayflow.sandbox.store import Obj


@dataclass
class Line:
    amount: int
    description: str
    period_start: int
    period_end: int
    price_id: str | None = None
    quantity: int | None = None
    proration: bool = False
    subscription_item: str | None = None
    # Discounts a proration's amount already reflects (Stripe lists them with amount 0).
    discounts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "discounts": list(self.discounts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Line:
        return cls(**data)


def _payment_method(em: Emulator, sub: Obj | None, customer: Obj) -> Obj | None:
    pm_id = (sub or {}).get("default_payment_method") or customer["invoice_settings"][
        "default_payment_method"
    ]
    if pm_id is None:
        return None
    return em.t["payment_methods"].find(pm_id)


def payment_would_fail(em: Emulator, sub: Obj | None, customer: Obj) -> str | None:
    """None if charging works, else the decline code."""
    pm = _payment_method(em, sub, customer)
    if pm is None:
        return "no_payment_method"
    decline = pm.get("_decline")
    return str(decline) if decline else None


def card_error(decline: str) -> StripeError:
    if decline == "no_payment_method":
        return StripeError(
            400,
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method.",
            type="invalid_request_error",
            code="resource_missing",
        )
    message = (
        "Your card has insufficient funds."
        if decline == "insufficient_funds"
        else "Your card was declined."
    )
    return StripeError(
        402, message, type="card_error", code="card_declined", extra={"decline_code": decline}
    )


def coupon_of(em: Emulator, discount: Obj) -> Obj | None:
    """The coupon a discount was made from (kept on the discount if the coupon is deleted)."""
    found = em.t["coupons"].find(discount["source"]["coupon"])
    return found if found is not None else discount.get("_coupon")


def _discount_amounts(em: Emulator, discounts: list[Obj], lines: list[Obj]) -> None:
    """Fill each discountable line's ``discount_amounts``: a percent coupon per line (rounded
    half-up), a fixed amount in line order. Prorations are not discountable (their amounts
    already reflect the discounts)."""
    for discount in discounts:
        coupon = coupon_of(em, discount)
        if coupon is None:
            continue
        budget = coupon["amount_off"]
        for line in lines:
            if not line["discountable"]:
                continue
            already = sum(d["amount"] for d in line["discount_amounts"])
            base = line["amount"] - already
            if base <= 0:
                amount = 0
            elif coupon["percent_off"] is not None:
                amount = round_half_up(Fraction(base) * percent(coupon["percent_off"]))
            else:
                amount = min(base, budget)
                budget -= amount
            line["discount_amounts"] = [
                *line["discount_amounts"],
                {"amount": amount, "discount": discount["id"]},
            ]


def create_invoice(
    em: Emulator,
    ctx: Ctx,
    sub: Obj,
    lines: list[Line],
    *,
    billing_reason: str,
    period_start: int,
    period_end: int,
    discounts: list[Obj],
) -> Obj:
    """A finalized-ready draft invoice for ``sub`` (events: invoice.created)."""
    customer = em.t["customers"].get(sub["customer"], "customer")
    now = em.now()
    invoice_id = em.new_id("in")
    rendered_lines: list[Obj] = []
    for line in lines:
        price = em.t["prices"].find(line.price_id) if line.price_id else None
        rendered_lines.append(
            {
                "id": em.new_id("il"),
                "object": "line_item",
                "amount": line.amount,
                "currency": sub["currency"],
                "description": line.description,
                "discount_amounts": [{"amount": 0, "discount": d} for d in line.discounts],
                "discountable": not line.proration,
                "discounts": list(line.discounts),
                "invoice": invoice_id,
                "livemode": False,
                "metadata": {},
                "parent": {
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": line.proration,
                        "proration_details": {"credited_items": None},
                        "subscription": sub["id"],
                        "subscription_item": line.subscription_item,
                    },
                    "type": "subscription_item_details",
                },
                "period": {"end": line.period_end, "start": line.period_start},
                "pretax_credit_amounts": [],
                "pricing": None
                if price is None
                else {
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "type": "price_details",
                    "unit_amount_decimal": price["unit_amount_decimal"],
                },
                "quantity": line.quantity,
                "quantity_decimal": None if line.quantity is None else str(line.quantity),
                "subscription": sub["id"],
                "subtotal": line.amount,
                "taxes": [],
            }
        )
    applied = [d for d in discounts if d is not None]
    _discount_amounts(em, applied, rendered_lines)
    subtotal = sum(rl["amount"] for rl in rendered_lines)
    per_discount: dict[str, int] = {}
    for rl in rendered_lines:
        for d in rl["discount_amounts"]:
            per_discount[d["discount"]] = per_discount.get(d["discount"], 0) + d["amount"]
    total_discount = sum(per_discount.values())
    total = subtotal - total_discount
    balance = customer["balance"]
    amount_due = max(0, total + balance)
    ending_balance = min(0, total + balance)
    number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    invoice: Obj = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "stayflow sandbox",
        "account_tax_ids": None,
        "amount_due": amount_due,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": amount_due,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": sub["collection_method"],
        "created": now,
        "currency": sub["currency"],
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": None,
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [d["id"] for d in applied if per_discount.get(d["id"])],
        "due_date": now + sub["days_until_due"] * 86_400
        if sub["collection_method"] == "send_invoice"
        else None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": rendered_lines,
            "has_more": False,
            "total_count": len(rendered_lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": sub["metadata"], "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": balance,
        "statement_descriptor": None,
        "status": "draft",
        "status_details": None,
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "test_clock": customer["test_clock"],
        "threshold_reason": None,
        "total": total,
        "total_discount_amounts": [
            {"amount": amount, "discount": did} for did, amount in per_discount.items()
        ],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": now,
        "_number": number,
        "_ending_balance": ending_balance,
    }
    em.insert("invoices", invoice)
    table = em.t["invoices"]
    table.index("customer", customer["id"], invoice_id)
    table.index("subscription", sub["id"], invoice_id)
    em.emit(ctx, "invoice.created", em.render("invoices", invoice))
    return invoice


def _apply_balance(em: Emulator, ctx: Ctx, invoice: Obj) -> None:
    """Stripe applies the customer's balance when an invoice is finalized: credit (negative)
    lowers ``amount_due``, a net credit invoice adds to it, and what the invoice consumed is
    recorded so a void can give it back."""
    customer = em.t["customers"].find(invoice["customer"])
    if customer is None:
        return
    balance = customer["balance"]
    total = invoice["total"]
    ending = min(0, total + balance)
    invoice["starting_balance"] = balance
    invoice["_ending_balance"] = ending
    invoice["amount_due"] = max(0, total + balance)
    invoice["amount_remaining"] = invoice["amount_due"]
    if ending != balance:
        before = em.render("customers", customer)
        customer["balance"] = ending
        after = em.render("customers", customer)
        em.emit(ctx, "customer.updated", after, diff(before, after))


def finalize(em: Emulator, ctx: Ctx, invoice: Obj) -> None:
    now = em.now()
    _apply_balance(em, ctx, invoice)
    invoice["status"] = "open"
    invoice["number"] = invoice["_number"]
    invoice["effective_at"] = now
    invoice["ending_balance"] = invoice["_ending_balance"]
    invoice["status_transitions"] = {**invoice["status_transitions"], "finalized_at": now}
    em.emit(ctx, "invoice.finalized", em.render("invoices", invoice))


def mark_paid(em: Emulator, ctx: Ctx, invoice: Obj, *, out_of_band: bool = False) -> None:
    now = em.now()
    invoice["status"] = "paid"
    invoice["amount_paid"] = invoice["amount_due"]
    if out_of_band:
        invoice["amount_paid_off_stripe"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"] = {**invoice["status_transitions"], "paid_at": now}
    rendered = em.render("invoices", invoice)
    em.emit(ctx, "invoice.paid", rendered)
    em.emit(ctx, "invoice.payment_succeeded", rendered)


def void(em: Emulator, ctx: Ctx, invoice: Obj) -> None:
    """Void a finalized invoice. Stripe gives back the customer balance it consumed or added
    (a customer balance transaction of type ``unapplied_from_invoice``)."""
    customer = em.t["customers"].find(invoice["customer"])
    if customer is not None and invoice["ending_balance"] is not None:
        applied = invoice["starting_balance"] - invoice["ending_balance"]
        if applied:
            before = em.render("customers", customer)
            customer["balance"] += applied
            after = em.render("customers", customer)
            em.emit(ctx, "customer.updated", after, diff(before, after))
    invoice["status"] = "void"
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"] = {**invoice["status_transitions"], "voided_at": em.now()}
    em.emit(ctx, "invoice.voided", em.render("invoices", invoice))


def mark_uncollectible(em: Emulator, ctx: Ctx, invoice: Obj) -> None:
    invoice["status"] = "uncollectible"
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"] = {
        **invoice["status_transitions"],
        "marked_uncollectible_at": em.now(),
    }
    em.emit(ctx, "invoice.marked_uncollectible", em.render("invoices", invoice))


def collect(em: Emulator, ctx: Ctx, invoice: Obj, sub: Obj | None) -> str:
    """Finalize and try to collect: ``paid``, ``open`` (sent, awaiting payment) or ``failed``."""
    finalize(em, ctx, invoice)
    if invoice["amount_due"] == 0:
        mark_paid(em, ctx, invoice)
        return "paid"
    if invoice["collection_method"] == "send_invoice":
        return "open"
    return charge(em, ctx, invoice, sub, None)


def charge(em: Emulator, ctx: Ctx, invoice: Obj, sub: Obj | None, pm_id: str | None) -> str:
    customer = em.t["customers"].get(invoice["customer"])
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if pm_id is not None:
        pm = em.t["payment_methods"].get(pm_id, "payment_method")
        decline = pm.get("_decline")
    else:
        decline = payment_would_fail(em, sub, customer)
    if decline:
        invoice["last_finalization_error"] = None
        em.emit(ctx, "invoice.payment_failed", em.render("invoices", invoice))
        return "failed"
    mark_paid(em, ctx, invoice)
    return "paid"


def render_invoice(em: Emulator, invoice: Obj) -> Obj:
    return {k: v for k, v in invoice.items() if k[0] != "_"}


Emulator.renderers["invoices"] = render_invoice


# -- endpoints -----------------------------------------------------------------------------------

INVOICE_LIST = {
    **LIST,
    "customer": "str",
    "subscription": "str",
    "status": Enum.of("draft", "open", "paid", "uncollectible", "void"),
    "collection_method": Enum.of("charge_automatically", "send_invoice"),
    "created": "any",
}
PAY = {"payment_method": "str", "paid_out_of_band": "bool", "off_session": "bool", **EXPAND}


def invoice_retrieve(em: Emulator, ctx: Ctx, p: Params, invoice_id: str) -> Obj:
    return em.render("invoices", em.t["invoices"].get(invoice_id))


def invoice_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    customer = p.get("customer")
    subscription = p.get("subscription")
    status = p.get("status")
    method = p.get("collection_method")
    created = parse_ts_list_filter(p["created"], "created") if "created" in p else None

    def pred(i: Obj) -> bool:
        return (
            (customer is None or i["customer"] == customer)
            and (status is None or i["status"] == status)
            and (method is None or i["collection_method"] == method)
            and (created is None or ts_match(i["created"], created))
        )

    index, key = (
        ("subscription", subscription)
        if subscription
        else ("customer", customer)
        if customer
        else (None, None)
    )
    return list_page(em, "invoices", "/v1/invoices", p, pred, index=index, key=key)


def _open_invoice(em: Emulator, invoice_id: str) -> Obj:
    invoice = em.t["invoices"].get(invoice_id)
    if invoice["status"] == "paid":
        raise invalid("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] != "open":
        raise invalid(
            f"You can only pay an invoice that is open. This invoice is {invoice['status']}.",
            code="invoice_not_editable",
        )
    return invoice


def invoice_pay(em: Emulator, ctx: Ctx, p: Params, invoice_id: str) -> Obj:
    from stayflow.sandbox import subscription_billing

    invoice = _open_invoice(em, invoice_id)
    sub_id = invoice["parent"]["subscription_details"]["subscription"]
    sub = em.t["subscriptions"].find(sub_id)
    if p.get("paid_out_of_band"):
        mark_paid(em, ctx, invoice, out_of_band=True)
    elif charge(em, ctx, invoice, sub, p.get("payment_method")) == "failed":
        pm = p.get("payment_method")
        customer = em.t["customers"].get(invoice["customer"])
        decline = (
            em.t["payment_methods"].get(pm)["_decline"]
            if pm
            else payment_would_fail(em, sub, customer)
        )
        raise card_error(str(decline or "generic_decline"))
    if sub is not None:
        subscription_billing.invoice_paid(em, ctx, sub, invoice)
    return em.render("invoices", invoice)


def invoice_void(em: Emulator, ctx: Ctx, p: Params, invoice_id: str) -> Obj:
    invoice = em.t["invoices"].get(invoice_id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only void an open or uncollectible invoice, not {invoice['status']}."
        )
    void(em, ctx, invoice)
    return em.render("invoices", invoice)


def invoice_mark_uncollectible(em: Emulator, ctx: Ctx, p: Params, invoice_id: str) -> Obj:
    invoice = em.t["invoices"].get(invoice_id)
    if invoice["status"] != "open":
        raise invalid(f"You can only mark an open invoice uncollectible, not {invoice['status']}.")
    mark_uncollectible(em, ctx, invoice)
    return em.render("invoices", invoice)


__all__ = ["INVOICE_LIST", "PAY", "Line", "ListOf"]
