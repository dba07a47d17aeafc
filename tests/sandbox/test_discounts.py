"""Customer-level discounts and removing a subscription's discount."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

from tests.stripe_fixtures import Target

Run = Callable[[Callable[[Target], dict[str, Any]]], dict[str, Any]]
# Stripe removed customers' coupon/promotion_code in 2025-03-31.basil; earlier versions take it.
LEGACY: Any = {"stripe_version": "2025-02-24.acacia"}


def test_customer_discount_applies_to_subscriptions_without_their_own(run_on_stripe: Run) -> None:
    """Stripe: a customer's discount applies to the invoices of its subscriptions; a
    subscription's own discounts take precedence over it."""

    def scenario(t: Target) -> dict[str, Any]:
        customer = t.paying_customer()
        ten = t.client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
        half = t.client.v1.coupons.create({"percent_off": 50, "duration": "forever"})
        t.client.v1.customers.update(customer.id, {"coupon": ten.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
        price = t.price(2000)
        plain = t.client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": price.id}]}
        )
        own = t.client.v1.subscriptions.create(
            {
                "customer": customer.id,
                "items": [{"price": t.price(3000, name="Team").id}],
                "discounts": [{"coupon": half.id}],
            }
        )
        discount = t.client.v1.customers.retrieve(customer.id).discount
        return {
            "customer_discount_is_ten": discount is not None and discount.source.coupon == ten.id,
            "plain": t.client.v1.invoices.retrieve(str(plain.latest_invoice)).total,
            "own": t.client.v1.invoices.retrieve(str(own.latest_invoice)).total,
        }

    seen = run_on_stripe(scenario)
    assert seen == {"customer_discount_is_ten": True, "plain": 1800, "own": 1500}


def test_customer_coupon_needs_an_older_api_version(
    stripe_client: stripe.StripeClient, make_paying_customer: Callable[..., stripe.Customer]
) -> None:
    customer = make_paying_customer()
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.customers.update(customer.id, {"coupon": coupon.id})  # type: ignore[typeddict-unknown-key]
    assert err.value.code == "parameter_unknown" and err.value.param == "coupon"
    with pytest.raises(stripe.InvalidRequestError) as nope:
        stripe_client.v1.customers.update(customer.id, {"coupon": "nope"}, LEGACY)  # type: ignore[typeddict-unknown-key]
    assert (nope.value.http_status, nope.value.param) == (400, "coupon")


def test_delete_customer_discount(
    stripe_client: stripe.StripeClient,
    sandbox: Any,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = make_paying_customer()
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    stripe_client.v1.customers.update(customer.id, {"coupon": coupon.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price(2000).id}]}
    )
    expanded = stripe_client.v1.customers.retrieve(
        customer.id, {"expand": ["discount.source.coupon"]}
    )
    assert expanded.discount is not None
    assert expanded.discount.source.coupon.percent_off == 10  # type: ignore[union-attr]
    removed = stripe_client.v1.customers.delete_discount(customer.id)
    assert removed.deleted is True and removed.source.coupon == coupon.id
    assert stripe_client.v1.customers.retrieve(customer.id).discount is None
    sandbox.advance_clock(to=sub["items"].data[0].current_period_end + 60)
    renewed = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert isinstance(renewed.latest_invoice, stripe.Invoice)
    assert renewed.latest_invoice.total == 2000
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.customers.delete_discount(customer.id)
    assert again.value.http_status == 404
    deleted = stripe_client.v1.events.list({"type": "customer.discount.deleted"}).data
    assert deleted and deleted[0].data.object["id"] == removed.id


def test_delete_subscription_discount(
    stripe_client: stripe.StripeClient,
    sandbox: Any,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    """``DELETE /v1/subscriptions/{id}/discount`` removes the discount; later invoices are
    full price, and a second call finds none."""
    customer = make_paying_customer()
    coupon = stripe_client.v1.coupons.create({"percent_off": 25, "duration": "forever"})
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": make_price(2000).id}],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    assert stripe_client.v1.invoices.retrieve(str(sub.latest_invoice)).total == 1500
    removed = stripe_client.v1.subscriptions.delete_discount(sub.id)
    assert removed.deleted is True and removed.id == sub.discounts[0]
    assert stripe_client.v1.subscriptions.retrieve(sub.id).discounts == []
    sandbox.advance_clock(to=sub["items"].data[0].current_period_end + 60)
    renewed = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert isinstance(renewed.latest_invoice, stripe.Invoice)
    assert renewed.latest_invoice.total == 2000
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.subscriptions.delete_discount(sub.id)
    assert again.value.http_status == 404


def test_customer_discount_events_one_update_on_a_switch(
    stripe_client: stripe.StripeClient, make_paying_customer: Callable[..., stripe.Customer]
) -> None:
    """Stripe: ``customer.discount.created`` for a customer's first coupon, a single
    ``customer.discount.updated`` when another coupon replaces it (the old one in
    ``previous_attributes``), ``customer.discount.deleted`` when it is cleared."""
    customer = make_paying_customer()
    ten = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    half = stripe_client.v1.coupons.create({"percent_off": 50, "duration": "forever"})

    def discount_events() -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        found = stripe_client.v1.events.list({"type": "customer.discount.*", "limit": 100}).data
        return [
            (
                e.type,
                e.data.object,
                e.data.to_dict().get("previous_attributes"),
            )
            for e in reversed(found)
        ]

    stripe_client.v1.customers.update(customer.id, {"coupon": ten.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
    first = stripe_client.v1.customers.retrieve(customer.id).discount
    assert first is not None
    stripe_client.v1.customers.update(customer.id, {"coupon": half.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
    second = stripe_client.v1.customers.retrieve(customer.id).discount
    assert second is not None and second.id != first.id
    stripe_client.v1.customers.update(customer.id, {"coupon": ""}, LEGACY)  # type: ignore[typeddict-unknown-key]
    assert stripe_client.v1.customers.retrieve(customer.id).discount is None

    seen = discount_events()
    assert [t for t, _, _ in seen] == [
        "customer.discount.created",
        "customer.discount.updated",
        "customer.discount.deleted",
    ]
    created, updated, deleted = (obj for _, obj, _ in seen)
    assert created["id"] == first.id and created["source"]["coupon"] == ten.id
    assert updated["id"] == second.id and updated["source"]["coupon"] == half.id
    assert updated["customer"] == customer.id and updated["subscription"] is None
    previous = seen[1][2]
    assert previous is not None and previous["source"]["coupon"] == ten.id
    assert deleted["id"] == second.id
    # Each change is also a customer.updated, as on Stripe.
    updates = stripe_client.v1.events.list({"type": "customer.updated", "limit": 100}).data
    changed = [e for e in updates if "discount" in e.data.to_dict().get("previous_attributes", {})]
    assert len(changed) == 3
