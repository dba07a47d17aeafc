"""Customers and payment methods (Stripe's test cards such as ``pm_card_visa``)."""

from __future__ import annotations

import string
from typing import Any

from stayflow.sandbox.common import (
    EXPAND,
    LIST,
    blank,
    deleted,
    diff,
    list_page,
    merge_metadata,
    ts_match,
)
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import invalid, missing, unknown_param
from stayflow.sandbox.params import (
    Emptyable,
    ListOf,
    Params,
    Required,
    parse_ts_list_filter,
)
from stayflow.sandbox.store import Obj

TEST_CARDS: dict[str, tuple[str, str, str, str | None]] = {
    "pm_card_visa": ("visa", "4242", "credit", None),
    "pm_card_visa_debit": ("visa", "5556", "debit", None),
    "pm_card_mastercard": ("mastercard", "4444", "credit", None),
    "pm_card_amex": ("amex", "8431", "credit", None),
    "pm_card_chargeDeclined": ("visa", "0002", "credit", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "credit", "insufficient_funds"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "credit", "generic_decline"),
}


# -- payment methods ---------------------------------------------------------------------------


def _payment_method(em: Emulator, token: str, param: str) -> Obj:
    """A test token (``pm_card_visa``) becomes a new payment method; an id is looked up."""
    found = em.t["payment_methods"].find(token)
    if found is not None:
        return found
    card = TEST_CARDS.get(token)
    if card is None:
        raise missing("PaymentMethod", token, param)
    brand, last4, funding, decline = card
    pm: Obj = {
        "id": em.new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": None,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": em.state.ids.token(16),
            "funding": funding,
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": em.now(),
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_decline": decline,
    }
    return em.insert("payment_methods", pm)


def attach_payment_method(
    em: Emulator, ctx: Ctx, token: str, customer_id: str, param: str = "payment_method"
) -> Obj:
    customer = em.t["customers"].get(customer_id, "customer")
    pm = _payment_method(em, token, param)
    if pm["customer"] not in (None, customer["id"]):
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    pm["customer"] = customer["id"]
    em.t["payment_methods"].index("customer", customer["id"], pm["id"])
    em.emit(ctx, "payment_method.attached", em.render("payment_methods", pm))
    return pm


ATTACH = {"customer": Required("str"), **EXPAND}


def pm_attach(em: Emulator, ctx: Ctx, p: Params, pm_id: str) -> Obj:
    pm = attach_payment_method(em, ctx, pm_id, p["customer"], param="id")
    return em.render("payment_methods", pm)


def pm_retrieve(em: Emulator, ctx: Ctx, p: Params, pm_id: str) -> Obj:
    return em.render("payment_methods", _payment_method(em, pm_id, "id"))


def pm_detach(em: Emulator, ctx: Ctx, p: Params, pm_id: str) -> Obj:
    pm = em.t["payment_methods"].get(pm_id)
    if pm["customer"] is None:
        raise invalid("The payment method you provided is not attached to a customer.")
    pm["customer"] = None
    em.emit(ctx, "payment_method.detached", em.render("payment_methods", pm))
    return em.render("payment_methods", pm)


PM_LIST = {**LIST, "customer": "str", "type": "str"}


def pm_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    customer = p.get("customer")
    return list_page(
        em,
        "payment_methods",
        "/v1/payment_methods",
        p,
        lambda pm: pm["customer"] is not None,
        index="customer" if customer else None,
        key=customer,
    )


# -- the account -----------------------------------------------------------------------------


def account_retrieve(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    """``GET /v1/account``: the sandbox's own (test mode) account."""
    return {
        "id": em.state.account_id,
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": "stayflow sandbox",
            "support_email": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": 1_700_000_000,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "sandbox@example.com",
        "metadata": {},
        "payouts_enabled": True,
        "settings": {
            "dashboard": {"display_name": "stayflow sandbox", "timezone": "Etc/UTC"},
        },
        "type": "standard",
    }


# -- customers --------------------------------------------------------------------------------

CUSTOMER_FIELDS: dict[str, Any] = {
    "email": Emptyable("str"),
    "name": Emptyable("str"),
    "description": Emptyable("str"),
    "phone": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    "balance": "int",
    "preferred_locales": ListOf("str"),
    "invoice_settings": {"default_payment_method": Emptyable("str")},
    # Customer-level discounts: Stripe removed these parameters in 2025-03-31.basil; they are
    # honoured only for a request sent with an older Stripe-Version (as on Stripe).
    "coupon": Emptyable("str"),
    "promotion_code": Emptyable("str"),
    **EXPAND,
}
LEGACY_DISCOUNT_VERSION = "2025-03-31"
CUSTOMER_CREATE = {**CUSTOMER_FIELDS, "payment_method": "str", "test_clock": "str"}


def customer_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    clock_id = None
    if "test_clock" in p:
        clock_id = em.t["test_clocks"].get(p["test_clock"], "test_clock")["id"]
    now = em.now()
    customer: Obj = {
        "id": em.new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": p.get("balance", 0),
        "business_name": None,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": blank(p.get("description")),
        "discount": None,
        "customer_account": None,
        "email": blank(p.get("email")),
        "individual_name": None,
        "invoice_prefix": "".join(
            em.state.ids._rng.choices(string.ascii_uppercase + string.digits, k=8)
        ),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": merge_metadata({}, p.get("metadata", {})),
        "name": blank(p.get("name")),
        "next_invoice_sequence": 1,
        "phone": blank(p.get("phone")),
        "preferred_locales": p.get("preferred_locales", []),
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": clock_id,
        "_pending_items": [],
    }
    em.insert("customers", customer)
    if clock_id is not None:
        em.t["customers"].index("test_clock", clock_id, customer["id"])
    attached: Obj | None = None
    if "payment_method" in p:
        attached = attach_payment_method(em, ctx, p["payment_method"], customer["id"])
    default_pm = (p.get("invoice_settings") or {}).get("default_payment_method")
    if default_pm and attached is not None and default_pm == p["payment_method"]:
        # Stripe's documented test idiom: customers.create(payment_method="pm_card_visa",
        # invoice_settings={"default_payment_method": "pm_card_visa"}) - the token names the
        # payment method this same call attached.
        default_pm = attached["id"]
    if default_pm:
        customer["invoice_settings"] = {
            **customer["invoice_settings"],
            "default_payment_method": _customer_pm(em, customer, default_pm),
        }
    _set_discount(em, ctx, customer, p)
    em.emit(ctx, "customer.created", em.render("customers", customer))
    return em.render("customers", customer)


def _set_discount(em: Emulator, ctx: Ctx, customer: Obj, p: Params) -> None:
    """``coupon`` / ``promotion_code`` (API versions before 2025-03-31): the customer's
    discount, which applies to invoices of its subscriptions that have none of their own.

    Events as Stripe sends them: ``customer.discount.created`` for a first discount,
    ``customer.discount.deleted`` when ``""`` clears it, and a single
    ``customer.discount.updated`` (the new discount, the old values in ``previous_attributes``)
    when one coupon replaces another; the caller's ``customer.updated`` follows."""
    from stayflow.sandbox import subscription_billing as sb

    for name in ("coupon", "promotion_code"):
        if name not in p:
            continue
        if ctx.api_version is None or ctx.api_version >= LEGACY_DISCOUNT_VERSION:
            err = unknown_param(name)
            err.message += (
                " (removed in API version 2025-03-31.basil; send Stripe-Version "
                "2025-02-24.acacia or earlier to set a customer-level discount)"
            )
            raise err
        old = customer["discount"]
        if p[name] == "":
            if old is not None:
                customer["discount"] = None
                em.emit(ctx, "customer.discount.deleted", old)
            continue
        discount = sb.make_discount(
            em,
            ctx,
            {name: p[name]},
            "",
            customer_id=customer["id"],
            currency=customer["currency"],
            subscription_id=None,
            announce=old is None,
        )
        customer["discount"] = em.render("discounts", discount)
        if old is not None:
            em.emit(
                ctx,
                "customer.discount.updated",
                customer["discount"],
                diff(old, customer["discount"]),
            )


def delete_discount(em: Emulator, ctx: Ctx, p: Params, cus_id: str) -> Obj:
    """``DELETE /v1/customers/{id}/discount``: the removed discount, ``deleted: true``."""
    from stayflow.sandbox import subscription_billing as sb

    customer = em.t["customers"].get(cus_id)
    if customer["discount"] is None:
        raise missing("discount", cus_id)
    removed = sb.remove_customer_discount(em, ctx, customer)
    return {**removed, "deleted": True}


def _customer_pm(em: Emulator, customer: Obj, pm_id: str) -> str:
    pm = em.t["payment_methods"].find(pm_id)
    if pm is None and pm_id in TEST_CARDS:
        # Stripe: a test token here must have been attached first; the attached copy has an id.
        raise invalid(
            f"No such PaymentMethod: '{pm_id}'; It's possible this PaymentMethod exists on one "
            "of your connected accounts, in which case you should retry this request on that "
            "connected account.",
            param="invoice_settings[default_payment_method]",
            code="resource_missing",
        )
    if pm is None:
        raise missing("PaymentMethod", pm_id, "invoice_settings[default_payment_method]")
    if pm["customer"] != customer["id"]:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            param="invoice_settings[default_payment_method]",
        )
    return str(pm["id"])


def customer_retrieve(em: Emulator, ctx: Ctx, p: Params, cus_id: str) -> Obj:
    customer = em.t["customers"].find(cus_id)
    if customer is None:
        if cus_id in em.state.deleted_customers:
            return deleted(cus_id, "customer")
        raise missing("customer", cus_id)
    return em.render("customers", customer)


def customer_update(em: Emulator, ctx: Ctx, p: Params, cus_id: str) -> Obj:
    customer = em.t["customers"].get(cus_id)
    before = em.render("customers", customer)
    if "payment_method" in p:
        raise invalid(
            "Received unknown parameter: payment_method",
            param="payment_method",
            code="parameter_unknown",
        )
    for name in ("email", "name", "description", "phone"):
        if name in p:
            customer[name] = blank(p[name])
    if "balance" in p:
        customer["balance"] = p["balance"]
    if "preferred_locales" in p:
        customer["preferred_locales"] = p["preferred_locales"]
    if "metadata" in p:
        customer["metadata"] = merge_metadata(customer["metadata"], p["metadata"])
    settings = p.get("invoice_settings")
    if settings and "default_payment_method" in settings:
        pm_id = settings["default_payment_method"]
        customer["invoice_settings"] = {
            **customer["invoice_settings"],
            "default_payment_method": _customer_pm(em, customer, pm_id) if pm_id else None,
        }
    _set_discount(em, ctx, customer, p)
    after = em.render("customers", customer)
    changed = diff(before, after)
    if changed:
        em.emit(ctx, "customer.updated", after, changed)
    return after


def customer_delete(em: Emulator, ctx: Ctx, p: Params, cus_id: str) -> Obj:
    from stayflow.sandbox import subscription_billing

    customer = em.t["customers"].get(cus_id)
    subs = em.t["subscriptions"]
    for sub_id in list(subs.candidates("customer", cus_id).ids):
        sub = subs.find(sub_id)
        if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
            subscription_billing.cancel_now(em, ctx, sub, prorate=False, invoice_now=False)
    rendered = em.render("customers", customer)
    em.t["customers"].delete(cus_id)
    em.state.deleted_customers.add(cus_id)
    em.emit(ctx, "customer.deleted", rendered)
    return deleted(cus_id, "customer")


CUSTOMER_LIST = {**LIST, "email": "str", "created": "any"}


def customer_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    email = p.get("email")
    created = parse_ts_list_filter(p["created"], "created") if "created" in p else None

    def pred(c: Obj) -> bool:
        return (email is None or c["email"] == email) and (
            created is None or ts_match(c["created"], created)
        )

    return list_page(em, "customers", "/v1/customers", p, pred)
