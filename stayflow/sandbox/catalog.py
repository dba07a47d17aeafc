"""Products, prices and plans (one object, two views), coupons and promotion codes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from stayflow.sandbox.common import (
    EXPAND,
    LIST,
    blank,
    deleted,
    diff,
    list_page,
    merge_metadata,
    page_args,
)
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import invalid, missing, missing_param
from stayflow.sandbox.params import (
    Emptyable,
    Enum,
    ListOf,
    Params,
    Required,
)
from stayflow.sandbox.store import Obj

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
        "description": blank(p.get("description")),
        "images": blank(p.get("images")) or [],
        "livemode": False,
        "marketing_features": [],
        "metadata": merge_metadata({}, p.get("metadata", {})),
        "name": p["name"],
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": blank(p.get("statement_descriptor")),
        "tax_code": None,
        "tax_details": None,
        "type": "service",
        "unit_label": blank(p.get("unit_label")),
        "updated": now,
        "url": blank(p.get("url")),
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
            product[name] = blank(p[name])
    if "images" in p:
        product["images"] = blank(p["images"]) or []
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
    "transfer_lookup_key": "bool",
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
    "lookup_key": Emptyable("str"),
    "transfer_lookup_key": "bool",
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
            value = Decimal(decimal)
        except InvalidOperation:
            raise invalid(f"Invalid decimal: {decimal}", param=param) from None
        if not value.is_finite() or value != value.to_integral_value():
            raise invalid("The sandbox supports whole minor-unit amounts only.", param=param)
        amount = int(value)
    if amount is None:
        raise missing_param(param)
    if amount < 0:
        raise invalid("This value must be greater than or equal to 0.", param=param)
    return amount


def new_price(
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
    if lookup_key is not None:
        em.t["prices"].index("lookup_key", lookup_key, price["id"])
    return price


def _claim_lookup_key(em: Emulator, ctx: Ctx, key: str, transfer: bool, owner: str | None) -> None:
    """Stripe: a lookup key names one price. Another price holding it refuses the call, unless
    ``transfer_lookup_key`` moves it (atomically) from that price."""
    for other_id in em.t["prices"].candidates("lookup_key", key).ids:
        other = em.t["prices"].find(other_id)
        if other is None or other["id"] == owner or other["lookup_key"] != key:
            continue
        if not transfer:
            raise invalid(
                f"A price (`{other['id']}`) already uses that lookup key.", param="lookup_key"
            )
        before = em.render("prices", other)
        other["lookup_key"] = None
        after = em.render("prices", other)
        em.emit(ctx, "price.updated", after, diff(before, after))


def price_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    if "lookup_key" in p:
        _claim_lookup_key(em, ctx, p["lookup_key"], p.get("transfer_lookup_key", False), None)
    if ("product" in p) == ("product_data" in p):
        raise invalid(
            "You must specify either `product` or `product_data` when creating a price.",
            param="product",
        )
    if "product" in p:
        product_id = em.t["products"].get(p["product"], "product")["id"]
    else:
        product_id = make_product(em, ctx, p["product_data"])["id"]
    price = new_price(
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
    price = new_price(
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
    for name in ("active", "tax_behavior"):
        if name in p:
            price[name] = p[name]
    if "lookup_key" in p:
        price["lookup_key"] = blank(p["lookup_key"])
    if "nickname" in p:
        price["nickname"] = blank(p["nickname"])
    if "metadata" in p:
        price["metadata"] = merge_metadata(price["metadata"], p["metadata"])
    if "trial_period_days" in p and price["recurring"] is not None:
        price["recurring"] = {**price["recurring"], "trial_period_days": p["trial_period_days"]}
    if "product" in p:
        price["product"] = em.t["products"].get(p["product"], "product")["id"]
        em.t["prices"].index("product", price["product"], price["id"])


def price_update(em: Emulator, ctx: Ctx, p: Params, price_id: str) -> Obj:
    price = em.t["prices"].get(price_id)
    if p.get("lookup_key"):
        key = p["lookup_key"]
        _claim_lookup_key(em, ctx, key, p.get("transfer_lookup_key", False), price["id"])
        em.t["prices"].index("lookup_key", key, price["id"])
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
        coupon["name"] = blank(p["name"])
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
