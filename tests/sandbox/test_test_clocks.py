"""Stripe's test clocks API on the sandbox, beside the sandbox's own clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import stripe

from stayflow.sandbox import Sandbox
from tests.stripe_fixtures import DAY, TestClockTarget, next_month_start


def test_clock_lifecycle_and_billing(
    stripe_client: stripe.StripeClient, sandbox: Sandbox, make_price: Callable[..., stripe.Price]
) -> None:
    clocks = stripe_client.v1.test_helpers.test_clocks
    start = next_month_start(sandbox.now(), month=1)
    clock = clocks.create({"frozen_time": start, "name": "jan"})
    assert clock.object == "test_helpers.test_clock" and clock.status == "ready"
    assert clocks.retrieve(clock.id).frozen_time == start
    assert [c.id for c in clocks.list().data] == [clock.id]
    on_clock = stripe_client.v1.customers.create(
        {
            "test_clock": clock.id,
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    assert on_clock.test_clock == clock.id and on_clock.created == start
    price = make_price(2000)
    sub = stripe_client.v1.subscriptions.create(
        {"customer": on_clock.id, "items": [{"price": price.id}]}
    )
    assert sub.start_date == start and sub.test_clock == clock.id
    end = sub["items"].data[0].current_period_end
    assert end == next_month_start(start)
    # The sandbox's own clock does not move a test clock's subscriptions.
    sandbox.advance_clock(to=end + 40 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).latest_invoice == sub.latest_invoice
    # Advancing the clock bills its customers, at the clock's times.
    answer = clocks.advance(clock.id, {"frozen_time": end + 3600})
    assert answer.status == "advancing"
    assert clocks.retrieve(clock.id).status == "ready"
    renewed = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    invoice = renewed.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.created == end and invoice.amount_paid == 2000
    assert invoice.billing_reason == "subscription_cycle" and invoice.test_clock == clock.id
    # Stripe refuses to move a clock back, or more than two intervals at once.
    with pytest.raises(stripe.InvalidRequestError) as back:
        clocks.advance(clock.id, {"frozen_time": start})
    assert back.value.param == "frozen_time"
    with pytest.raises(stripe.InvalidRequestError) as far:
        clocks.advance(clock.id, {"frozen_time": end + 100 * DAY})
    assert far.value.param == "frozen_time"
    # Deleting the clock deletes its customers.
    gone = clocks.delete(clock.id)
    assert gone.deleted is True
    assert stripe_client.v1.customers.retrieve(on_clock.id).to_dict().get("deleted") is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        clocks.retrieve(clock.id)
    assert missing.value.http_status == 404
    types = {e.type for e in stripe_client.v1.events.list({"limit": 100}).data}
    assert {
        "test_helpers.test_clock.created",
        "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready",
        "test_helpers.test_clock.deleted",
    } <= types


def test_unknown_clock_is_refused(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.customers.create({"test_clock": "clock_nope"})
    assert (err.value.http_status, err.value.param) == (400, "test_clock")


def test_the_stripe_target_runs_on_the_sandbox(sandbox: Sandbox) -> None:
    """The path the real-Stripe run takes (customers on a test clock, advance and wait for
    ready), checked here against the sandbox: Stripe's documented discount proration."""
    t = TestClockTarget(sandbox.secret_key, sandbox.url)
    try:
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
        changed = t.client.v1.subscriptions.update(
            sub.id,
            {
                "items": [{"id": sub["items"].data[0].id, "price": high.id}],
                "proration_behavior": "always_invoice",
            },
        )
        invoice = t.client.v1.invoices.retrieve(str(changed.latest_invoice))
        assert sorted(line.amount for line in invoice.lines.data) == [-826, 2065]
    finally:
        t.close()
    assert t.client.v1.customers.retrieve(customer.id).to_dict().get("deleted") is True
