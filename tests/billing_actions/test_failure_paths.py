"""Failure paths the other billing-action tests leave out: a restricted key without the
permission a write needs, and the credit a prorated cancel leaves pending when nothing is
invoiced at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe
from sqlalchemy.orm import Session, sessionmaker

from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing_actions.helpers import Env, make_env, retrieve
from tests.conftest import Tenant

DAY = 86_400


@pytest.fixture
def env(session_factory: sessionmaker[Session], stripe_settings: Settings, owner: Tenant) -> Env:
    return make_env(session_factory, stripe_settings, owner.app_id)


@pytest.fixture
def subscription(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> stripe.Subscription:
    customer = make_paying_customer()
    return stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price(3000).id}]}
    )


@pytest.mark.parametrize("what", ["pause", "cancel"])
def test_restricted_key_without_subscriptions_write_fails_clearly(
    env: Env,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    subscription: stripe.Subscription,
    what: str,
) -> None:
    """A key that may read subscriptions but not write them: the action fails once, saying
    which permission is missing, and Stripe's subscription is untouched."""
    key = sandbox.create_restricted_key(
        {"subscriptions": "read", "customers": "read", "prices": "read", "products": "read"}
    )
    env.connect(key, cancel={"at_period_end": False})
    env.set_flows([{"id": "p", "type": "pause", "duration": 1, "interval": "month"}])
    session_id = (
        env.cancel(subscription.id) if what == "cancel" else env.accept(subscription.id, "p")
    )
    env.run_jobs()
    action = env.action(session_id)
    assert action.status == "failed", (action.status, action.error, env.job_errors())
    assert "rak_subscription_write" in (action.error or "")  # Stripe's name for it
    assert env.job_errors() != []  # given up on at once: no retry can grant a permission
    state = retrieve(stripe_client, subscription.id)
    assert state["status"] == "active" and state["pause_collection"] is None


@pytest.mark.parametrize("prorate", [True, False])
def test_prorated_cancel_without_invoice_now_leaves_the_credit_pending(
    env: Env,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    subscription: stripe.Subscription,
    make_price: Callable[..., stripe.Price],
    prorate: bool,
) -> None:
    """prorate without invoice_now: no final invoice; the unused time stays with the customer
    as a pending credit, and their next invoice (another subscription's renewal) carries it."""
    env.connect(
        sandbox.secret_key,
        cancel={"at_period_end": False, "invoice_now": False, "prorate": prorate},
    )
    env.set_flows([])
    other = stripe_client.v1.subscriptions.create(
        {"customer": str(subscription.customer), "items": [{"price": make_price(1000).id}]}
    )
    sandbox.advance_clock(10 * DAY)  # a third of the month used
    invoices_before = len(stripe_client.v1.invoices.list({"subscription": subscription.id}).data)
    session_id = env.cancel(subscription.id)
    env.run_jobs()
    assert env.action(session_id).status == "applied", env.job_errors()
    assert retrieve(stripe_client, subscription.id)["status"] == "canceled"
    after: Any = stripe_client.v1.invoices.list({"subscription": subscription.id}).data
    assert len(after) == invoices_before  # nothing invoiced at once
    period_end = retrieve(stripe_client, other.id)["items"]["data"][0]["current_period_end"]
    sandbox.advance_clock(to=period_end + 60)
    renewal = stripe_client.v1.invoices.list({"subscription": other.id}).data[0]
    assert renewal.billing_reason == "subscription_cycle"
    credits = [line.amount for line in renewal.lines.data if line.amount < 0]
    if prorate:
        # About two thirds of 30.00 back: the unused time, not the whole month.
        assert len(credits) == 1 and -3000 < credits[0] < -1000, credits
        assert renewal.total == 1000 + credits[0]
    else:
        assert credits == [] and renewal.total == 1000
