"""Each cancel option combination, a customer with three active subscriptions, and an
already-canceled subscription; asserting on Stripe's state afterwards."""

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


@pytest.fixture
def env(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    owner: Tenant,
) -> Env:
    found = make_env(session_factory, stripe_settings, owner.app_id)
    found.set_flows([])
    return found


@pytest.fixture
def customer_with(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> Callable[[int], list[str]]:
    """A customer with ``n`` active monthly subscriptions; their ids."""

    def make(n: int) -> list[str]:
        customer = make_paying_customer()
        return [
            stripe_client.v1.subscriptions.create(
                {"customer": customer.id, "items": [{"price": make_price(1000 + i).id}]}
            ).id
            for i in range(n)
        ]

    return make


def _invoices(client: stripe.StripeClient, sub_id: str) -> int:
    return len(client.v1.invoices.list({"subscription": sub_id}).data)


@pytest.mark.parametrize("all_subscriptions", [False, True])
def test_cancel_at_period_end(
    env: Env,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    customer_with: Any,
    all_subscriptions: bool,
) -> None:
    env.connect(
        sandbox.secret_key, cancel={"at_period_end": True, "all_subscriptions": all_subscriptions}
    )
    subs = customer_with(3)
    session_id = env.cancel(subs[0], "not_using", comment="  Back in spring  ")
    env.run_jobs()
    for index, sub_id in enumerate(subs):
        state = retrieve(stripe_client, sub_id)
        affected = index == 0 or all_subscriptions
        assert state["status"] == "active"
        assert state["cancel_at_period_end"] is affected
        if affected:
            assert state["cancel_at"] == state["items"]["data"][0]["current_period_end"]
            assert state["cancellation_details"]["feedback"] == "unused"
            assert state["cancellation_details"]["comment"] == "Back in spring"
    action = env.action(session_id)
    assert action.status == "applied"
    assert len(action.result["subscriptions"]) == (3 if all_subscriptions else 1)


@pytest.mark.parametrize("all_subscriptions", [False, True])
@pytest.mark.parametrize(
    ("invoice_now", "prorate"), [(False, False), (False, True), (True, False), (True, True)]
)
def test_cancel_now(
    env: Env,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    customer_with: Any,
    invoice_now: bool,
    prorate: bool,
    all_subscriptions: bool,
) -> None:
    env.connect(
        sandbox.secret_key,
        cancel={
            "at_period_end": False,
            "invoice_now": invoice_now,
            "prorate": prorate,
            "all_subscriptions": all_subscriptions,
        },
    )
    subs = customer_with(3)
    sandbox.advance_clock(5 * 86_400)  # some unused time to credit
    before = {s: _invoices(stripe_client, s) for s in subs}
    session_id = env.cancel(subs[0])
    env.run_jobs()
    for index, sub_id in enumerate(subs):
        state = retrieve(stripe_client, sub_id)
        affected = index == 0 or all_subscriptions
        assert state["status"] == ("canceled" if affected else "active")
        if not affected:
            continue
        assert state["cancellation_details"]["feedback"] == "too_expensive"
        invoices = stripe_client.v1.invoices.list({"subscription": sub_id}).data
        # A final invoice exists only when asked for and when there is something on it.
        assert len(invoices) == before[sub_id] + (1 if invoice_now and prorate else 0)
        if invoice_now and prorate:
            assert invoices[0].total < 0
    assert env.action(session_id).status == "applied"


def test_customer_with_three_subscriptions_one_already_canceled(
    env: Env, sandbox: Sandbox, stripe_client: stripe.StripeClient, customer_with: Any
) -> None:
    env.connect(sandbox.secret_key, cancel={"at_period_end": False, "all_subscriptions": True})
    subs = customer_with(3)
    stripe_client.v1.subscriptions.cancel(subs[2])
    session_id = env.cancel(subs[1])
    env.run_jobs()
    assert [retrieve(stripe_client, s)["status"] for s in subs] == ["canceled"] * 3
    action = env.action(session_id)
    assert action.status == "applied"
    assert sorted(action.result["subscriptions"]) == sorted(subs[:2])


def test_already_canceled_is_success(
    env: Env, sandbox: Sandbox, stripe_client: stripe.StripeClient, customer_with: Any
) -> None:
    env.connect(sandbox.secret_key, cancel={"at_period_end": False})
    (sub_id,) = customer_with(1)
    stripe_client.v1.subscriptions.cancel(sub_id)
    session_id = env.cancel(sub_id)
    env.run_jobs()
    action = env.action(session_id)
    assert action.status == "applied"
    assert action.result["subscriptions"][sub_id]["status"] == "canceled"
    assert env.job_errors() == []


def test_cancels_off_sends_nothing(
    env: Env, sandbox: Sandbox, stripe_client: stripe.StripeClient, customer_with: Any
) -> None:
    env.connect(sandbox.secret_key, cancels=False, cancel={"at_period_end": False})
    (sub_id,) = customer_with(1)
    session_id = env.cancel(sub_id)
    env.run_jobs()
    assert retrieve(stripe_client, sub_id)["status"] == "active"
    assert env.action(session_id).status == "skipped"
