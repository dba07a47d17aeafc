"""``POST /v1/invoices/create_preview``: "you'll be charged X today" before a change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

from tests.stripe_fixtures import DAY, Target, next_month_start

Run = Callable[[Callable[[Target], dict[str, Any]]], dict[str, Any]]


def _upgrade_case(t: Target) -> tuple[stripe.Subscription, stripe.Price, int]:
    start = next_month_start(t.now(), month=1)
    t.advance(start)
    customer = t.paying_customer()
    low, high = t.price(2000), t.price(5000)
    coupon = t.client.v1.coupons.create({"percent_off": 20, "duration": "forever"})
    sub = t.client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": low.id}],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    t.advance(start + 15 * DAY)
    return sub, high, start + 15 * DAY


def test_preview_of_an_always_invoice_change_is_what_is_billed(run_on_stripe: Run) -> None:
    """Stripe (prorations guide, "Preview a proration"): the preview computes the prorations
    the update would make; passing its proration_date to the update bills exactly that.
    Amounts as in test_money (discount folded into prorations): 1239 today."""

    def scenario(t: Target) -> dict[str, Any]:
        sub, high, at = _upgrade_case(t)
        item = sub["items"].data[0].id
        details: Any = {
            "items": [{"id": item, "price": high.id}],
            "proration_behavior": "always_invoice",
            "proration_date": at,
        }
        invoices_before = len(t.client.v1.invoices.list({"subscription": sub.id}).data)
        preview = t.client.v1.invoices.create_preview(
            {"subscription": sub.id, "subscription_details": details}
        )
        unchanged = t.client.v1.subscriptions.retrieve(sub.id)
        invoices_after = len(t.client.v1.invoices.list({"subscription": sub.id}).data)
        updated = t.client.v1.subscriptions.update(
            sub.id,
            {
                "items": details["items"],
                "proration_behavior": "always_invoice",
                "proration_date": at,
            },
        )
        billed = t.client.v1.invoices.retrieve(str(updated.latest_invoice))
        return {
            "preview_lines": sorted(x.amount for x in preview.lines.data),
            "preview_due": preview.amount_due,
            "preview_status": preview.status,
            "nothing_stored": invoices_before == invoices_after
            and unchanged["items"].data[0].price.id == sub["items"].data[0].price.id,
            "billed_due": billed.amount_due,
        }

    seen = run_on_stripe(scenario)
    assert seen == {
        "preview_lines": [-826, 2065],
        "preview_due": 1239,
        "preview_status": "draft",
        "nothing_stored": True,
        "billed_due": 1239,
    }


def test_preview_of_a_create_prorations_change_is_the_next_invoice(run_on_stripe: Run) -> None:
    """With create_prorations the prorations wait for the next invoice, so the preview is the
    renewal: the new price for the next period (5000, less 20%) plus the prorations (1239)."""

    def scenario(t: Target) -> dict[str, Any]:
        sub, high, at = _upgrade_case(t)
        details: Any = {
            "items": [{"id": sub["items"].data[0].id, "price": high.id}],
            "proration_date": at,
        }
        preview = t.client.v1.invoices.create_preview(
            {"subscription": sub.id, "subscription_details": details}
        )
        return {
            "lines": sorted(x.amount for x in preview.lines.data),
            "total": preview.total,
            "next_period": any(
                x.period.start == sub["items"].data[0].current_period_end
                for x in preview.lines.data
            ),
        }

    seen = run_on_stripe(scenario)
    assert seen == {"lines": [-826, 2065, 5000], "total": 5239, "next_period": True}


def test_preview_of_a_new_subscription_and_errors(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = make_paying_customer()
    price = make_price(2000)
    preview = stripe_client.v1.invoices.create_preview(
        {"customer": customer.id, "subscription_details": {"items": [{"price": price.id}]}}
    )
    assert preview.total == 2000 and preview.billing_reason == "subscription_create"
    assert stripe_client.v1.subscriptions.list({"customer": customer.id}).data == []
    assert stripe_client.v1.events.list({"type": "customer.subscription.created"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as nope:
        stripe_client.v1.invoices.create_preview({"subscription": "sub_nope"})
    assert (nope.value.http_status, nope.value.param) == (400, "subscription")
    with pytest.raises(stripe.InvalidRequestError) as bare:
        stripe_client.v1.invoices.create_preview({})
    assert bare.value.param == "customer"


def test_preview_with_an_idempotency_key_can_be_replayed(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    """The preview puts the account back, but not the request's own Idempotency-Key record:
    the same key replays the stored answer instead of answering 409 forever."""
    customer = make_paying_customer()
    params: Any = {
        "customer": customer.id,
        "subscription_details": {"items": [{"price": make_price(2000).id}]},
    }
    options: Any = {"idempotency_key": "preview-1"}
    first = stripe_client.v1.invoices.create_preview(params, options)
    again = stripe_client.v1.invoices.create_preview(params, options)
    assert again.id == first.id and again.total == 2000
