"""Customers, payment methods, products, prices and plans, coupons, promotion codes,
webhook endpoints and events: the objects around a subscription."""

from __future__ import annotations

import string
from typing import Any

from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import invalid, missing, missing_param
from stayflow.sandbox.params import (
    Emptyable,
    Enum,
    ListOf,
    Params,
    Required,
    parse_ts_list_filter,
)
from stayflow.sandbox.store import Obj

LIST: dict[str, Any] = {
    "limit": "int",
    "starting_after": "str",
    "ending_before": "str",
    "expand": ListOf("str"),
}
EXPAND: dict[str, Any] = {"expand": ListOf("str")}

# Stripe's test payment methods: token -> (brand, last4, funding, decline code or None).
TEST_CARDS: dict[str, tuple[str, str, str, str | None]] = {
    "pm_card_visa": ("visa", "4242", "credit", None),
    "pm_card_visa_debit": ("visa", "5556", "debit", None),
    "pm_card_mastercard": ("mastercard", "4444", "credit", None),
    "pm_card_amex": ("amex", "8431", "credit", None),
    "pm_card_chargeDeclined": ("visa", "0002", "credit", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "credit", "insufficient_funds"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "credit", "generic_decline"),
}


def page_args(params: Params) -> tuple[int, str | None, str | None]:
    limit = params.get("limit", 10)
    if limit > 100:
        raise invalid("This value must be less than or equal to 100.", param="limit")
    if limit < 1:
        raise invalid("This value must be greater than or equal to 1.", param="limit")
    return limit, params.get("starting_after"), params.get("ending_before")


def list_page(
    em: Emulator,
    table: str,
    url: str,
    params: Params,
    pred: Any = None,
    index: str | None = None,
    key: str | None = None,
) -> Obj:
    limit, after, before = page_args(params)
    rows, has_more = em.t[table].page(
        pred, limit=limit, starting_after=after, ending_before=before, index=index, key=key
    )
    return em.list_object(url, [em.render(table, r) for r in rows], has_more)


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe's metadata update: keys merge, ``""`` deletes a key, ``metadata=""`` clears."""
    if update == "":
        return {}
    merged = dict(current)
    for k, v in update.items():
        if v == "":
            merged.pop(k, None)
        else:
            merged[k] = v
    if len(merged) > 50:
        raise invalid("Metadata can have at most 50 keys.", param="metadata")
    return merged


def deleted(obj_id: str, kind: str) -> Obj:
    return {"id": obj_id, "object": kind, "deleted": True}


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


def attach_payment_method(em: Emulator, ctx: Ctx, token: str, customer_id: str) -> Obj:
    customer = em.t["customers"].get(customer_id, "customer")
    pm = _payment_method(em, token, "payment_method")
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
    return em.render("payment_methods", attach_payment_method(em, ctx, pm_id, p["customer"]))


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
    **EXPAND,
}
CUSTOMER_CREATE = {**CUSTOMER_FIELDS, "payment_method": "str"}


def _blank(value: Any) -> Any:
    return None if value == "" else value


def customer_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    now = em.now()
    customer: Obj = {
        "id": em.new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": p.get("balance", 0),
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": _blank(p.get("description")),
        "discount": None,
        "email": _blank(p.get("email")),
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
        "name": _blank(p.get("name")),
        "next_invoice_sequence": 1,
        "phone": _blank(p.get("phone")),
        "preferred_locales": p.get("preferred_locales", []),
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
        "_pending_items": [],
    }
    em.insert("customers", customer)
    if "payment_method" in p:
        attach_payment_method(em, ctx, p["payment_method"], customer["id"])
    default_pm = (p.get("invoice_settings") or {}).get("default_payment_method")
    if default_pm:
        customer["invoice_settings"] = {
            **customer["invoice_settings"],
            "default_payment_method": _customer_pm(em, customer, default_pm),
        }
    em.emit(ctx, "customer.created", em.render("customers", customer))
    return em.render("customers", customer)


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
            customer[name] = _blank(p[name])
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
    after = em.render("customers", customer)
    changed = diff(before, after)
    if changed:
        em.emit(ctx, "customer.updated", after, changed)
    return after


def customer_delete(em: Emulator, ctx: Ctx, p: Params, cus_id: str) -> Obj:
    from stayflow.sandbox import subscriptions

    customer = em.t["customers"].get(cus_id)
    subs = em.t["subscriptions"]
    for sub_id in list(subs.candidates("customer", cus_id).ids):
        sub = subs.find(sub_id)
        if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
            subscriptions.cancel_now(em, ctx, sub, prorate=False, invoice_now=False)
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


def ts_match(value: int, cmp: dict[str, int]) -> bool:
    for op, bound in cmp.items():
        if op == "eq" and value != bound:
            return False
        if op == "gt" and not value > bound:
            return False
        if op == "gte" and not value >= bound:
            return False
        if op == "lt" and not value < bound:
            return False
        if op == "lte" and not value <= bound:
            return False
    return True


# -- products -----------------------------------------------------------------------------------

PRODUCT_FIELDS: dict[str, Any] = {
    "active": "bool",
    "description": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    "unit_label": Emptyable("str"),
    "url": Emptyable("str"),
    "statement_descriptor": Emptyable("str"),
    "images": Emptyable(ListOf("str")),
    **EXPAND,
}
PRODUCT_CREATE = {**PRODUCT_FIELDS, "name": Required("str"), "id": "str"}
PRODUCT_UPDATE = {**PRODUCT_FIELDS, "name": "str", "default_price": "str"}


def make_product(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    product_id = p.get("id") or em.new_id("prod", 14)
    if product_id in em.t["products"]:
        raise invalid("Product already exists.", param="id", code="resource_already_exists")
    now = em.now()
    product: Obj = {
        "id": product_id,
        "object": "product",
        "active": p.get("active", True),
        "created": now,
        "default_price": None,
        "description": _blank(p.get("description")),
        "images": _blank(p.get("images")) or [],
        "livemode": False,
        "marketing_features": [],
        "metadata": merge_metadata({}, p.get("metadata", {})),
        "name": p["name"],
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": _blank(p.get("statement_descriptor")),
        "tax_code": None,
        "type": "service",
        "unit_label": _blank(p.get("unit_label")),
        "updated": now,
        "url": _blank(p.get("url")),
    }
    em.insert("products", product)
    em.emit(ctx, "product.created", em.render("products", product))
    return product


def product_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    return em.render("products", make_product(em, ctx, p))


def product_retrieve(em: Emulator, ctx: Ctx, p: Params, prod_id: str) -> Obj:
    return em.render("products", em.t["products"].get(prod_id))


def product_update(em: Emulator, ctx: Ctx, p: Params, prod_id: str) -> Obj:
    product = em.t["products"].get(prod_id)
    before = em.render("products", product)
    for name in ("name", "active", "description", "unit_label", "url", "statement_descriptor"):
        if name in p:
            product[name] = _blank(p[name])
    if "images" in p:
        product["images"] = _blank(p["images"]) or []
    if "metadata" in p:
        product["metadata"] = merge_metadata(product["metadata"], p["metadata"])
    if "default_price" in p:
        price = em.t["prices"].get(p["default_price"], "default_price")
        product["default_price"] = price["id"]
    product["updated"] = em.now()
    after = em.render("products", product)
    em.emit(ctx, "product.updated", after, diff(before, after))
    return after


def product_delete(em: Emulator, ctx: Ctx, p: Params, prod_id: str) -> Obj:
    product = em.t["products"].get(prod_id)
    if em.t["prices"].candidates("product", prod_id).ids:
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    em.t["products"].delete(prod_id)
    em.emit(ctx, "product.deleted", em.render("products", product))
    return deleted(prod_id, "product")


PRODUCT_LIST = {**LIST, "active": "bool", "ids": ListOf("str")}


def product_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    active = p.get("active")
    ids = set(p["ids"]) if "ids" in p else None
    return list_page(
        em,
        "products",
        "/v1/products",
        p,
        lambda o: (active is None or o["active"] == active) and (ids is None or o["id"] in ids),
    )


# -- prices and plans (one object, two views, as in Stripe) -------------------------------------

INTERVAL = Enum.of("day", "week", "month", "year")
PRICE_CREATE: dict[str, Any] = {
    "currency": Required("str"),
    "unit_amount": "int",
    "unit_amount_decimal": "str",
    "product": "str",
    "product_data": {
        "name": Required("str"),
        "metadata": "metadata",
        "active": "bool",
        "unit_label": "str",
        "statement_descriptor": "str",
    },
    "recurring": {
        "interval": Required(INTERVAL),
        "interval_count": "int",
        "usage_type": Enum.of("licensed"),
        "trial_period_days": "int",
    },
    "nickname": "str",
    "lookup_key": "str",
    "metadata": "metadata",
    "active": "bool",
    "tax_behavior": Enum.of("exclusive", "inclusive", "unspecified"),
    "billing_scheme": Enum.of("per_unit"),
    **EXPAND,
}
PRICE_UPDATE: dict[str, Any] = {
    "active": "bool",
    "metadata": Emptyable("metadata"),
    "nickname": Emptyable("str"),
    "lookup_key": "str",
    "tax_behavior": Enum.of("exclusive", "inclusive", "unspecified"),
    **EXPAND,
}
PLAN_CREATE: dict[str, Any] = {
    "id": "str",
    "amount": "int",
    "amount_decimal": "str",
    "currency": Required("str"),
    "interval": Required(INTERVAL),
    "interval_count": "int",
    "product": Required("any"),
    "nickname": "str",
    "metadata": "metadata",
    "active": "bool",
    "trial_period_days": "int",
    "usage_type": Enum.of("licensed"),
    "billing_scheme": Enum.of("per_unit"),
    **EXPAND,
}
PLAN_UPDATE: dict[str, Any] = {
    "active": "bool",
    "metadata": Emptyable("metadata"),
    "nickname": Emptyable("str"),
    "product": "str",
    "trial_period_days": "int",
    **EXPAND,
}


def _check_amount(amount: int | None, decimal: str | None, param: str) -> int:
    if amount is None and decimal is not None:
        try:
            value = float(decimal)
        except ValueError:
            raise invalid(f"Invalid decimal: {decimal}", param=param) from None
        if value != int(value):
            raise invalid("The sandbox supports whole minor-unit amounts only.", param=param)
        amount = int(value)
    if amount is None:
        raise missing_param(param)
    if amount < 0:
        raise invalid("This value must be greater than or equal to 0.", param=param)
    return amount


def _new_price(
    em: Emulator,
    *,
    price_id: str | None,
    currency: str,
    unit_amount: int,
    product_id: str,
    recurring: Obj | None,
    nickname: str | None,
    metadata: dict[str, str],
    active: bool,
    lookup_key: str | None = None,
    tax_behavior: str = "unspecified",
) -> Obj:
    if price_id is not None and price_id in em.t["prices"]:
        raise invalid("Plan already exists.", param="id", code="resource_already_exists")
    if recurring is not None and recurring.get("interval_count", 1) < 1:
        raise invalid("Invalid interval_count: must be at least 1", param="interval_count")
    price: Obj = {
        "id": price_id or em.new_id("price"),
        "object": "price",
        "active": active,
        "billing_scheme": "per_unit",
        "created": em.now(),
        "currency": currency.lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata,
        "nickname": nickname,
        "product": product_id,
        "recurring": None
        if recurring is None
        else {
            "interval": recurring["interval"],
            "interval_count": recurring.get("interval_count", 1),
            "meter": None,
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": "licensed",
        },
        "tax_behavior": tax_behavior,
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time" if recurring is None else "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }
    em.insert("prices", price)
    em.t["prices"].index("product", product_id, price["id"])
    return price


def price_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    if ("product" in p) == ("product_data" in p):
        raise invalid(
            "You must specify either `product` or `product_data` when creating a price.",
            param="product",
        )
    if "product" in p:
        product_id = em.t["products"].get(p["product"], "product")["id"]
    else:
        product_id = make_product(em, ctx, p["product_data"])["id"]
    price = _new_price(
        em,
        price_id=None,
        currency=p["currency"],
        unit_amount=_check_amount(
            p.get("unit_amount"), p.get("unit_amount_decimal"), "unit_amount"
        ),
        product_id=product_id,
        recurring=p.get("recurring"),
        nickname=p.get("nickname"),
        metadata=p.get("metadata", {}),
        active=p.get("active", True),
        lookup_key=p.get("lookup_key"),
        tax_behavior=p.get("tax_behavior", "unspecified"),
    )
    rendered = em.render("prices", price)
    em.emit(ctx, "price.created", rendered)
    if price["recurring"] is not None:
        em.emit(ctx, "plan.created", render_plan(em, price))
    return rendered


def plan_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    product = p["product"]
    if isinstance(product, dict):
        if "name" not in product:
            raise missing_param("product[name]")
        product_id = make_product(
            em, ctx, {"name": product["name"], "metadata": product.get("metadata", {})}
        )["id"]
    elif isinstance(product, str):
        product_id = em.t["products"].get(product, "product")["id"]
    else:
        raise invalid("Invalid product", param="product")
    price = _new_price(
        em,
        price_id=p.get("id"),
        currency=p["currency"],
        unit_amount=_check_amount(p.get("amount"), p.get("amount_decimal"), "amount"),
        product_id=product_id,
        recurring={
            "interval": p["interval"],
            "interval_count": p.get("interval_count", 1),
            "trial_period_days": p.get("trial_period_days"),
        },
        nickname=p.get("nickname"),
        metadata=p.get("metadata", {}),
        active=p.get("active", True),
    )
    em.emit(ctx, "plan.created", render_plan(em, price))
    em.emit(ctx, "price.created", em.render("prices", price))
    return render_plan(em, price)


def render_plan(em: Emulator, price: Obj) -> Obj:
    recurring = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": price["metadata"],
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def price_retrieve(em: Emulator, ctx: Ctx, p: Params, price_id: str) -> Obj:
    return em.render("prices", em.t["prices"].get(price_id))


def plan_retrieve(em: Emulator, ctx: Ctx, p: Params, plan_id: str) -> Obj:
    price = em.t["prices"].find(plan_id)
    if price is None or price["recurring"] is None:
        raise missing("plan", plan_id)
    return render_plan(em, price)


def _update_price(em: Emulator, price: Obj, p: Params) -> None:
    for name in ("active", "lookup_key", "tax_behavior"):
        if name in p:
            price[name] = p[name]
    if "nickname" in p:
        price["nickname"] = _blank(p["nickname"])
    if "metadata" in p:
        price["metadata"] = merge_metadata(price["metadata"], p["metadata"])
    if "trial_period_days" in p and price["recurring"] is not None:
        price["recurring"] = {**price["recurring"], "trial_period_days": p["trial_period_days"]}
    if "product" in p:
        price["product"] = em.t["products"].get(p["product"], "product")["id"]
        em.t["prices"].index("product", price["product"], price["id"])


def price_update(em: Emulator, ctx: Ctx, p: Params, price_id: str) -> Obj:
    price = em.t["prices"].get(price_id)
    before = em.render("prices", price)
    _update_price(em, price, p)
    after = em.render("prices", price)
    em.emit(ctx, "price.updated", after, diff(before, after))
    return after


def plan_update(em: Emulator, ctx: Ctx, p: Params, plan_id: str) -> Obj:
    price = em.t["prices"].find(plan_id)
    if price is None or price["recurring"] is None:
        raise missing("plan", plan_id)
    before = render_plan(em, price)
    _update_price(em, price, p)
    after = render_plan(em, price)
    em.emit(ctx, "plan.updated", after, diff(before, after))
    return after


def plan_delete(em: Emulator, ctx: Ctx, p: Params, plan_id: str) -> Obj:
    price = em.t["prices"].find(plan_id)
    if price is None or price["recurring"] is None:
        raise missing("plan", plan_id)
    em.t["prices"].delete(plan_id)
    em.state.retired_prices[plan_id] = price
    em.emit(ctx, "plan.deleted", render_plan(em, price))
    return deleted(plan_id, "plan")


PRICE_LIST = {
    **LIST,
    "active": "bool",
    "currency": "str",
    "product": "str",
    "type": Enum.of("one_time", "recurring"),
    "lookup_keys": ListOf("str", 10),
}


def price_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    active = p.get("active")
    currency = p.get("currency")
    kind = p.get("type")
    keys = set(p["lookup_keys"]) if "lookup_keys" in p else None
    product = p.get("product")

    def pred(o: Obj) -> bool:
        return (
            (active is None or o["active"] == active)
            and (currency is None or o["currency"] == currency)
            and (kind is None or o["type"] == kind)
            and (keys is None or o["lookup_key"] in keys)
            and (product is None or o["product"] == product)
        )

    return list_page(
        em,
        "prices",
        "/v1/prices",
        p,
        pred,
        index="product" if product else None,
        key=product,
    )


PLAN_LIST = {**LIST, "active": "bool", "product": "str"}


def plan_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    active = p.get("active")
    product = p.get("product")
    limit, after, before = page_args(p)
    rows, has_more = em.t["prices"].page(
        lambda o: (
            o["recurring"] is not None
            and (active is None or o["active"] == active)
            and (product is None or o["product"] == product)
        ),
        limit=limit,
        starting_after=after,
        ending_before=before,
    )
    return em.list_object("/v1/plans", [render_plan(em, r) for r in rows], has_more)


# -- coupons and promotion codes ---------------------------------------------------------------

COUPON_CREATE: dict[str, Any] = {
    "id": "str",
    "amount_off": "int",
    "currency": "str",
    "percent_off": "num",
    "duration": Enum.of("forever", "once", "repeating"),
    "duration_in_months": "int",
    "max_redemptions": "int",
    "redeem_by": "int",
    "name": "str",
    "metadata": "metadata",
    **EXPAND,
}
COUPON_UPDATE: dict[str, Any] = {
    "name": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    **EXPAND,
}


def coupon_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    percent = p.get("percent_off")
    amount = p.get("amount_off")
    if (percent is None) == (amount is None):
        raise invalid("You must pass either `percent_off` or `amount_off`.", param="percent_off")
    if percent is not None and not 0 < percent <= 100:
        raise invalid("Percent off must be between 0 and 100.", param="percent_off")
    if amount is not None:
        if "currency" not in p:
            raise invalid("You must pass currency when passing amount_off", param="currency")
        if amount < 1:
            raise invalid("Amount off must be positive.", param="amount_off")
    duration = p.get("duration", "once")
    months = p.get("duration_in_months")
    if duration == "repeating" and months is None:
        raise invalid(
            "You must pass duration_in_months when duration is repeating",
            param="duration_in_months",
        )
    if duration != "repeating" and months is not None:
        raise invalid(
            "You can only pass duration_in_months when duration is repeating",
            param="duration_in_months",
        )
    coupon_id = p.get("id") or em.state.ids.token(8)
    if coupon_id in em.t["coupons"]:
        raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
    coupon: Obj = {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount,
        "created": em.now(),
        "currency": p["currency"].lower() if "currency" in p else None,
        "duration": duration,
        "duration_in_months": months,
        "livemode": False,
        "max_redemptions": p.get("max_redemptions"),
        "metadata": p.get("metadata", {}),
        "name": p.get("name"),
        "percent_off": percent,
        "redeem_by": p.get("redeem_by"),
        "times_redeemed": 0,
        "valid": True,
    }
    em.insert("coupons", coupon)
    rendered = em.render("coupons", coupon)
    em.emit(ctx, "coupon.created", rendered)
    return rendered


def coupon_valid(em: Emulator, coupon: Obj) -> bool:
    if coupon["redeem_by"] is not None and em.now() > coupon["redeem_by"]:
        return False
    if (
        coupon["max_redemptions"] is not None
        and coupon["times_redeemed"] >= coupon["max_redemptions"]
    ):
        return False
    return True


def coupon_retrieve(em: Emulator, ctx: Ctx, p: Params, coupon_id: str) -> Obj:
    coupon = em.t["coupons"].get(coupon_id)
    return {**em.render("coupons", coupon), "valid": coupon_valid(em, coupon)}


def coupon_update(em: Emulator, ctx: Ctx, p: Params, coupon_id: str) -> Obj:
    coupon = em.t["coupons"].get(coupon_id)
    before = em.render("coupons", coupon)
    if "name" in p:
        coupon["name"] = _blank(p["name"])
    if "metadata" in p:
        coupon["metadata"] = merge_metadata(coupon["metadata"], p["metadata"])
    after = em.render("coupons", coupon)
    em.emit(ctx, "coupon.updated", after, diff(before, after))
    return after


def coupon_delete(em: Emulator, ctx: Ctx, p: Params, coupon_id: str) -> Obj:
    coupon = em.t["coupons"].get(coupon_id)
    em.t["coupons"].delete(coupon_id)
    em.emit(ctx, "coupon.deleted", em.render("coupons", coupon))
    return deleted(coupon_id, "coupon")


def coupon_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    return list_page(em, "coupons", "/v1/coupons", p)


PROMO_CREATE: dict[str, Any] = {
    "promotion": Required({"coupon": "str", "type": Required(Enum.of("coupon"))}),
    "code": "str",
    "active": "bool",
    "customer": "str",
    "expires_at": "int",
    "max_redemptions": "int",
    "metadata": "metadata",
    **EXPAND,
}
PROMO_UPDATE: dict[str, Any] = {"active": "bool", "metadata": Emptyable("metadata"), **EXPAND}


def promotion_code_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    coupon_id = p["promotion"].get("coupon")
    if coupon_id is None:
        raise missing_param("promotion[coupon]")
    coupon = em.t["coupons"].get(coupon_id, "promotion[coupon]")
    code = p.get("code") or em.state.ids.token(8).upper()
    if code.lower() in em.state.promo_codes:
        raise invalid(
            "An active promotion code with `code` already exists.",
            param="code",
            code="resource_already_exists",
        )
    customer = p.get("customer")
    if customer is not None:
        em.t["customers"].get(customer, "customer")
    promo: Obj = {
        "id": em.new_id("promo"),
        "object": "promotion_code",
        "active": p.get("active", True),
        "code": code,
        "created": em.now(),
        "customer": customer,
        "customer_account": None,
        "expires_at": p.get("expires_at"),
        "livemode": False,
        "max_redemptions": p.get("max_redemptions"),
        "metadata": p.get("metadata", {}),
        "promotion": {"coupon": coupon["id"], "type": "coupon"},
        "restrictions": {
            "currency_options": {},
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        "times_redeemed": 0,
    }
    em.insert("promotion_codes", promo)
    em.state.promo_codes[code.lower()] = promo["id"]
    rendered = em.render("promotion_codes", promo)
    em.emit(ctx, "promotion_code.created", rendered)
    return rendered


def promotion_code_retrieve(em: Emulator, ctx: Ctx, p: Params, promo_id: str) -> Obj:
    return em.render("promotion_codes", em.t["promotion_codes"].get(promo_id))


def promotion_code_update(em: Emulator, ctx: Ctx, p: Params, promo_id: str) -> Obj:
    promo = em.t["promotion_codes"].get(promo_id)
    before = em.render("promotion_codes", promo)
    if "active" in p:
        promo["active"] = p["active"]
    if "metadata" in p:
        promo["metadata"] = merge_metadata(promo["metadata"], p["metadata"])
    after = em.render("promotion_codes", promo)
    em.emit(ctx, "promotion_code.updated", after, diff(before, after))
    return after


PROMO_LIST = {**LIST, "code": "str", "coupon": "str", "active": "bool", "customer": "str"}


def promotion_code_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    code = p.get("code")
    coupon = p.get("coupon")
    active = p.get("active")
    customer = p.get("customer")

    def pred(o: Obj) -> bool:
        return (
            (code is None or o["code"].lower() == code.lower())
            and (coupon is None or o["promotion"]["coupon"] == coupon)
            and (active is None or o["active"] == active)
            and (customer is None or o["customer"] == customer)
        )

    return list_page(em, "promotion_codes", "/v1/promotion_codes", p, pred)


# -- webhook endpoints and events -----------------------------------------------------------

WE_CREATE: dict[str, Any] = {
    "url": Required("str"),
    "enabled_events": Required(ListOf("str")),
    "description": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    "api_version": "str",
    **EXPAND,
}
WE_UPDATE: dict[str, Any] = {
    "url": "str",
    "enabled_events": ListOf("str"),
    "description": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    "disabled": "bool",
    **EXPAND,
}


def _check_url(url: str) -> None:
    if not (url.startswith("http://") or url.startswith("https://")):
        raise invalid("Invalid URL: URL must be publicly accessible and use http(s).", param="url")


def add_webhook_endpoint(
    em: Emulator,
    url: str,
    events: list[str],
    *,
    secret: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    _check_url(url)
    if not events:
        raise missing_param("enabled_events")
    endpoint: Obj = {
        "id": em.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": em.now(),
        "description": description,
        "enabled_events": events,
        "livemode": False,
        "metadata": metadata or {},
        "status": "enabled",
        "url": url,
        "_secret": secret or "whsec_" + em.state.ids.token(32),
    }
    em.insert("webhook_endpoints", endpoint)
    return endpoint


def webhook_endpoint_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    endpoint = add_webhook_endpoint(
        em,
        p["url"],
        p["enabled_events"],
        description=_blank(p.get("description")),
        metadata=_blank(p.get("metadata")) or {},
    )
    endpoint["api_version"] = p.get("api_version")
    # Stripe shows the signing secret only in the answer to the create call.
    return {**em.render("webhook_endpoints", endpoint), "secret": endpoint["_secret"]}


def webhook_endpoint_retrieve(em: Emulator, ctx: Ctx, p: Params, we_id: str) -> Obj:
    return em.render("webhook_endpoints", em.t["webhook_endpoints"].get(we_id))


def webhook_endpoint_update(em: Emulator, ctx: Ctx, p: Params, we_id: str) -> Obj:
    endpoint = em.t["webhook_endpoints"].get(we_id)
    if "url" in p:
        _check_url(p["url"])
        endpoint["url"] = p["url"]
    if "enabled_events" in p:
        endpoint["enabled_events"] = p["enabled_events"]
    if "description" in p:
        endpoint["description"] = _blank(p["description"])
    if "metadata" in p:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], p["metadata"])
    if "disabled" in p:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    return em.render("webhook_endpoints", endpoint)


def webhook_endpoint_delete(em: Emulator, ctx: Ctx, p: Params, we_id: str) -> Obj:
    em.t["webhook_endpoints"].get(we_id)
    em.t["webhook_endpoints"].delete(we_id)
    return deleted(we_id, "webhook_endpoint")


def webhook_endpoint_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    return list_page(em, "webhook_endpoints", "/v1/webhook_endpoints", p)


EVENT_LIST = {
    **LIST,
    "type": "str",
    "types": ListOf("str", 20),
    "created": "any",
    "delivery_success": "bool",
}


def event_retrieve(em: Emulator, ctx: Ctx, p: Params, event_id: str) -> Obj:
    return em.render("events", em.t["events"].get(event_id))


def event_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    if "type" in p and "types" in p:
        raise invalid("You may pass either `type` or `types`, but not both.", param="types")
    created = parse_ts_list_filter(p["created"], "created") if "created" in p else None
    index: str | None = None
    key: str | None = None
    exact: set[str] | None = None
    prefixes: tuple[str, ...] = ()
    patterns = [p["type"]] if "type" in p else p.get("types", [])
    for pattern in patterns:
        if "*" in pattern and not pattern.endswith(".*"):
            raise invalid(f"Invalid type: {pattern}", param="type")
    if len(patterns) == 1:
        pattern = patterns[0]
        index, key = ("prefix", pattern[:-2]) if pattern.endswith(".*") else ("type", pattern)
    elif patterns:
        exact = {t for t in patterns if not t.endswith(".*")}
        prefixes = tuple(t[:-1] for t in patterns if t.endswith(".*"))
    delivery = p.get("delivery_success")

    def pred(e: Obj) -> bool:
        if exact is not None and e["type"] not in exact and not e["type"].startswith(prefixes):
            return False
        if created is not None and not ts_match(e["created"], created):
            return False
        if delivery is not None and (e["pending_webhooks"] == 0) != delivery:
            return False
        return True

    return list_page(em, "events", "/v1/events", p, pred, index=index, key=key)


# -- previous_attributes ---------------------------------------------------------------------


def diff(old: Obj, new: Obj) -> Obj:
    """Stripe's ``previous_attributes``: old values of what changed; sub-hashes diffed by key,
    lists and list objects given whole."""
    out: Obj = {}
    for key in old.keys() | new.keys():
        a = old.get(key)
        b = new.get(key)
        if a == b:
            continue
        if (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.get("object") != "list"
            and "id" not in a
        ):
            out[key] = diff(a, b)
        else:
            out[key] = a
    return out


def require(value: Any, param: str) -> Any:
    if value is None:
        raise missing_param(param)
    return value
