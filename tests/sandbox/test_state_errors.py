"""Stripe's errors for objects named in parameters, its test idioms, and lookup keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe


def _refused(call: Callable[[], Any]) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as err:
        call()
    return err.value


def test_missing_object_in_a_parameter_is_400_with_param(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    """Stripe: an object named in a parameter that does not exist is a 400 resource_missing
    with that parameter in ``param``; only the object a URL names is a 404."""
    customer = make_paying_customer()
    price = make_price(2000)
    subs = stripe_client.v1.subscriptions
    cases: list[tuple[str, Callable[[], Any]]] = [
        (
            "discounts[0][coupon]",
            lambda: subs.create(
                {
                    "customer": customer.id,
                    "items": [{"price": price.id}],
                    "discounts": [{"coupon": "nope"}],
                }
            ),
        ),
        (
            "discounts[0][promotion_code]",
            lambda: subs.create(
                {
                    "customer": customer.id,
                    "items": [{"price": price.id}],
                    "discounts": [{"promotion_code": "promo_nope"}],
                }
            ),
        ),
        ("customer", lambda: subs.create({"customer": "cus_nope", "items": [{"price": price.id}]})),
        (
            "items[0][price]",
            lambda: subs.create({"customer": customer.id, "items": [{"price": "price_nope"}]}),
        ),
        (
            "default_payment_method",
            lambda: subs.create(
                {
                    "customer": customer.id,
                    "items": [{"price": price.id}],
                    "default_payment_method": "pm_nope",
                }
            ),
        ),
        (
            "invoice_settings[default_payment_method]",
            lambda: stripe_client.v1.customers.update(
                customer.id, {"invoice_settings": {"default_payment_method": "pm_nope"}}
            ),
        ),
        (
            "promotion[coupon]",
            lambda: stripe_client.v1.promotion_codes.create(
                {"promotion": {"type": "coupon", "coupon": "nope"}}
            ),
        ),
        (
            "product",
            lambda: stripe_client.v1.prices.create(
                {"currency": "usd", "unit_amount": 1, "product": "prod_nope"}
            ),
        ),
        (
            "customer",
            lambda: stripe_client.v1.payment_methods.attach("pm_card_visa", {"customer": "cus_x"}),
        ),
    ]
    sub = subs.create({"customer": customer.id, "items": [{"price": price.id}]})
    cases.append(
        (
            "discounts[0][coupon]",
            lambda: subs.update(sub.id, {"discounts": [{"coupon": "nope"}]}),
        )
    )
    cases.append(
        (
            "items[0][id]",
            lambda: subs.update(sub.id, {"items": [{"id": "si_nope", "quantity": 2}]}),
        )
    )
    for param, call in cases:
        err = _refused(call)
        assert (err.http_status, err.code, err.param) == (400, "resource_missing", param), param
    # The object a URL names: 404.
    with pytest.raises(stripe.InvalidRequestError) as gone:
        subs.retrieve("sub_nope")
    assert gone.value.http_status == 404 and gone.value.param == "id"


@pytest.mark.parametrize("token", ["pm_card_visa", "pm_card_mastercard", "pm_card_amex"])
def test_test_token_as_payment_method_and_default_in_one_call(
    stripe_client: stripe.StripeClient, make_price: Callable[..., stripe.Price], token: str
) -> None:
    """Stripe's documented test idiom: the token in both parameters names the one payment
    method this call attaches."""
    customer = stripe_client.v1.customers.create(
        {"payment_method": token, "invoice_settings": {"default_payment_method": token}}
    )
    attached = stripe_client.v1.payment_methods.list({"customer": customer.id}).data
    assert len(attached) == 1
    assert customer.invoice_settings.default_payment_method == attached[0].id
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price(2000).id}]}
    )
    assert sub.status == "active"


def test_lookup_key_names_one_price(stripe_client: stripe.StripeClient) -> None:
    """Stripe: a second price with a lookup key in use is refused unless transfer_lookup_key
    moves the key to it."""
    params: Any = {
        "currency": "usd",
        "unit_amount": 2000,
        "recurring": {"interval": "month"},
        "product_data": {"name": "Pro"},
        "lookup_key": "pro_monthly",
    }
    first = stripe_client.v1.prices.create(params)
    err = _refused(lambda: stripe_client.v1.prices.create(params))
    assert err.param == "lookup_key" and first.id in str(err.user_message)
    second = stripe_client.v1.prices.create({**params, "transfer_lookup_key": True})
    assert stripe_client.v1.prices.retrieve(first.id).lookup_key is None
    found = stripe_client.v1.prices.list({"lookup_keys": ["pro_monthly"]}).data
    assert [p.id for p in found] == [second.id]
    other = stripe_client.v1.prices.create({**params, "lookup_key": "pro_other"})
    err = _refused(lambda: stripe_client.v1.prices.update(other.id, {"lookup_key": "pro_monthly"}))
    assert err.param == "lookup_key"
    stripe_client.v1.prices.update(
        other.id, {"lookup_key": "pro_monthly", "transfer_lookup_key": True}
    )
    assert stripe_client.v1.prices.retrieve(second.id).lookup_key is None


def test_unit_amount_decimal_is_exact(stripe_client: stripe.StripeClient) -> None:
    """Whole minor units only; a decimal is read exactly (no float)."""
    price = stripe_client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount_decimal": "12345678901234567",
            "product_data": {"name": "Big"},
        }
    )
    assert price.unit_amount == 12345678901234567
    err = _refused(
        lambda: stripe_client.v1.prices.create(
            {"currency": "usd", "unit_amount_decimal": "10.5", "product_data": {"name": "X"}}
        )
    )
    assert err.param == "unit_amount"
