"""Answers carry the fields the SDK's resource classes declare, and gaps are named as gaps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import stripe

from stayflow.sandbox import Sandbox

DAY = 86_400

# Declared by the SDK but only present when expanded / on deleted objects / with Connect.
NOT_BY_DEFAULT = {
    "deleted",  # only on the answer to a delete
    "cash_balance",
    "invoice_credit_balance",
    "sources",
    "subscriptions",
    "tax",
    "tax_ids",
    "currency_options",
    "tiers",
    "applies_to",  # includable with expand[]
    "confirmation_secret",
    "payments",  # includable with expand[]
    "presentment_details",  # only for multi-currency (Adaptive Pricing) subscriptions
    "account",
    "context",  # Connect / event destinations
}


def _declared(cls: type) -> set[str]:
    return {
        k
        for k, v in cls.__annotations__.items()
        if not k.startswith("_") and "ClassVar" not in str(v)
    }


def test_objects_carry_every_declared_field(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = make_paying_customer()
    price = make_price()
    coupon = stripe_client.v1.coupons.create({"percent_off": 5, "duration": "forever"})
    promo = stripe_client.v1.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon.id}}
    )
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": price.id}],
            "discounts": [{"coupon": coupon.id}],
            "expand": ["latest_invoice", "discounts"],
        }
    )
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    endpoint = stripe_client.v1.webhook_endpoints.create(
        {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    )
    event = stripe_client.v1.events.list({"limit": 1}).data[0]
    objects: list[tuple[type, Any]] = [
        (stripe.Customer, customer),
        (stripe.Price, price),
        (stripe.Product, stripe_client.v1.products.retrieve(str(price.product))),
        (stripe.Plan, sub["items"].data[0].plan),
        (stripe.Coupon, coupon),
        (stripe.PromotionCode, promo),
        (stripe.Subscription, sub),
        (stripe.SubscriptionItem, sub["items"].data[0]),
        (stripe.Invoice, invoice),
        (stripe.InvoiceLineItem, invoice.lines.data[0]),
        (stripe.Discount, sub.discounts[0]),
        (stripe.Event, event),
        (stripe.WebhookEndpoint, endpoint),
    ]
    for cls, obj in objects:
        assert isinstance(obj, cls)
        present = set(obj.to_dict())
        assert _declared(cls) - present - NOT_BY_DEFAULT == set(), cls.__name__
        assert present - _declared(cls) == set(), cls.__name__


def test_unimplemented_stripe_parameter_is_refused_and_named(
    stripe_client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.customers.create({"address": {"city": "Paris"}})
    assert err.value.code == "parameter_unknown" and err.value.param == "address"
    assert "Stripe accepts it" in str(err.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.customers.create({"adress": "typo"})  # type: ignore[typeddict-unknown-key]
    assert "Stripe accepts it" not in str(err.value.user_message)


def test_past_due_then_paid(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = make_paying_customer()
    price = make_price()
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    declining = stripe_client.v1.payment_methods.attach(
        "pm_card_chargeDeclined", {"customer": customer.id}
    )
    stripe_client.v1.subscriptions.update(sub.id, {"default_payment_method": declining.id})
    sandbox.advance_clock(to=sub["items"].data[0].current_period_end + 1)
    late = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert late.status == "past_due"
    assert isinstance(late.latest_invoice, stripe.Invoice)
    assert late.latest_invoice.status == "open" and late.latest_invoice.attempt_count == 1
    failed = stripe_client.v1.events.list({"type": "invoice.payment_failed"}).data
    assert failed[0].data.object["id"] == late.latest_invoice.id
    with pytest.raises(stripe.CardError):
        stripe_client.v1.invoices.pay(late.latest_invoice.id)
    pm = str(customer.invoice_settings.default_payment_method)
    paid = stripe_client.v1.invoices.pay(late.latest_invoice.id, {"payment_method": pm})
    assert paid.status == "paid" and paid.amount_paid == 2000
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"


@pytest.mark.parametrize(
    ("behavior", "status"),
    [("pause", "paused"), ("cancel", "canceled"), ("create_invoice", "past_due")],
)
def test_trial_end_without_payment_method(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    make_price: Callable[..., stripe.Price],
    behavior: str,
    status: str,
) -> None:
    customer = stripe_client.v1.customers.create({})
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": make_price().id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": behavior}},
        }  # type: ignore[typeddict-item]
    )
    assert sub.status == "trialing"
    sandbox.advance_clock(8 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == status


def test_incomplete_expires(
    stripe_client: stripe.StripeClient, sandbox: Sandbox, make_price: Callable[..., stripe.Price]
) -> None:
    customer = stripe_client.v1.customers.create({})
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price().id}]}
    )
    assert sub.status == "incomplete"
    sandbox.advance_clock(24 * 3600)
    gone = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    assert gone.status == "incomplete_expired"
    assert isinstance(gone.latest_invoice, stripe.Invoice) and gone.latest_invoice.status == "void"


def test_customer_delete_cancels_subscriptions(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = make_paying_customer()
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price().id}]}
    )
    stripe_client.v1.customers.delete(customer.id)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert stripe_client.v1.customers.retrieve(customer.id).to_dict().get("deleted") is True


def test_quantity_change_and_added_item_prorate(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = make_paying_customer()
    seat, addon = make_price(1000, name="Seat"), make_price(3000, name="Addon")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": seat.id}]}
    )
    item = sub["items"].data[0]
    half = (item.current_period_end - item.current_period_start) // 2
    sandbox.advance_clock(half)
    sub = stripe_client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item.id, "quantity": 3}, {"price": addon.id}]}
    )
    assert [i.quantity for i in sub["items"].data] == [3, 1]
    sandbox.advance_clock(to=item.current_period_end + 1)
    renewed = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice"]})
    invoice = renewed.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    prorations = [
        line.amount
        for line in invoice.lines.data
        if line.parent
        and line.parent.subscription_item_details
        and line.parent.subscription_item_details.proration
    ]
    full = [line.amount for line in invoice.lines.data if line.amount in (3000,)]
    # next period billed in full (3 seats + addon), plus about half a period of the change
    assert invoice.subtotal == 3 * 1000 + 3000 + sum(prorations)
    assert len(full) >= 1 and 2500 <= sum(prorations) <= 3500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stayflow_sandbox_command(tmp_path: Any) -> None:
    port = _free_port()
    state = tmp_path / "state.pickle"
    cmd = [
        sys.executable,
        "-m",
        "stayflow.cli.main",
        "sandbox",
        "--port",
        str(port),
        "--state-file",
        str(state),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/_sandbox/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = Sandbox.connect(url).client()
        made = client.v1.customers.create({"email": "cli@example.com"})
        assert client.v1.customers.retrieve(made.id).email == "cli@example.com"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}" in err.decode()
    assert state.exists()


def test_trial_will_end_then_resume_a_paused_subscription(
    stripe_client: stripe.StripeClient,
    sandbox: Sandbox,
    make_price: Callable[..., stripe.Price],
) -> None:
    customer = stripe_client.v1.customers.create({})
    sub = stripe_client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": make_price().id}],
            "trial_period_days": 10,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }
    )
    sandbox.advance_clock(6 * DAY)
    assert stripe_client.v1.events.list({"type": "customer.subscription.trial_will_end"}).data == []
    sandbox.advance_clock(2 * DAY)
    warned = stripe_client.v1.events.list({"type": "customer.subscription.trial_will_end"}).data
    assert [e.data.object["id"] for e in warned] == [sub.id]
    sandbox.advance_clock(3 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "paused"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.subscriptions.update(sub.id, {"cancel_at": 1})
    card = stripe_client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    stripe_client.v1.subscriptions.update(sub.id, {"default_payment_method": card.id})
    resumed = stripe_client.v1.subscriptions.resume(sub.id, {"billing_cycle_anchor": "now"})
    assert resumed.status == "active"
    assert stripe_client.v1.invoices.retrieve(str(resumed.latest_invoice)).amount_paid == 2000
    assert stripe_client.v1.events.list({"type": "customer.subscription.resumed"}).data
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.subscriptions.resume(sub.id)
