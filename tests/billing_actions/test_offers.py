"""Each offer type on monthly, yearly, trialing, discounted and multi-item subscriptions,
asserting on the subscription as Stripe (the sandbox) has it afterwards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions.plans import add_interval, discount_coupons, item_prices
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing_actions.helpers import Env, make_env, retrieve
from tests.conftest import Tenant

KINDS = ["monthly", "yearly", "trialing", "discounted", "multi_item"]
DAY = 86_400


@pytest.fixture
def env(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    owner: Tenant,
    sandbox: Sandbox,
) -> Env:
    found = make_env(session_factory, stripe_settings, owner.app_id)
    found.connect(sandbox.secret_key)
    return found


@pytest.fixture
def make_subscription(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> Callable[[str], stripe.Subscription]:
    def make(kind: str) -> stripe.Subscription:
        customer = make_paying_customer()
        interval = "year" if kind == "yearly" else "month"
        items: list[dict[str, Any]] = [{"price": make_price(2000, interval).id}]
        params: dict[str, Any] = {"customer": customer.id}
        if kind == "multi_item":
            items.append({"price": make_price(500, interval, name="Seats").id, "quantity": 3})
        if kind == "trialing":
            params["trial_period_days"] = 14
        if kind == "discounted":
            old = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
            params["discounts"] = [{"coupon": old.id}]
        return stripe_client.v1.subscriptions.create({**params, "items": items})  # type: ignore[arg-type]

    return make


def _coupon(client: stripe.StripeClient, **params: Any) -> str:
    return client.v1.coupons.create(
        {"percent_off": 25, "duration": "repeating", "duration_in_months": 3, **params}
    ).id


@pytest.mark.parametrize("kind", KINDS)
def test_discount_replaces(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, kind: str
) -> None:
    sub = make_subscription(kind)
    coupon = _coupon(stripe_client)
    env.set_flows([{"id": "off", "type": "discount", "coupon": coupon}])
    session_id = env.accept(sub.id, "off")
    env.run_jobs()
    state = retrieve(stripe_client, sub.id)
    assert [c for _, c in discount_coupons(state)] == [coupon], env.job_errors()
    action = env.action(session_id)
    assert action.status == "applied"
    assert action.result["subscriptions"][sub.id]["discounts"] == [coupon]


def test_discount_keeps_existing_when_configured(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any
) -> None:
    sub = make_subscription("discounted")
    before = [c for _, c in discount_coupons(retrieve(stripe_client, sub.id))]
    coupon = _coupon(stripe_client)
    env.set_flows(
        [{"id": "off", "type": "discount", "coupon": coupon, "existing_discount": "keep"}]
    )
    env.accept(sub.id, "off")
    env.run_jobs()
    after = [c for _, c in discount_coupons(retrieve(stripe_client, sub.id))]
    assert len(before) == 1
    assert sorted(after) == sorted([*before, coupon])


def test_coupon_deleted_between_configuration_and_acceptance(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any
) -> None:
    sub = make_subscription("monthly")
    coupon = _coupon(stripe_client)
    env.set_flows([{"id": "off", "type": "discount", "coupon": coupon}])
    stripe_client.v1.coupons.delete(coupon)
    session_id = env.accept(sub.id, "off")
    env.run_jobs()
    assert discount_coupons(retrieve(stripe_client, sub.id)) == []
    action = env.action(session_id)
    assert action.status == "failed"
    assert coupon in (action.error or "")


@pytest.mark.parametrize("offer_type", ["pause", "extension"])
@pytest.mark.parametrize("kind", KINDS)
def test_pause_and_extension(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, kind: str, offer_type: str
) -> None:
    sub = make_subscription(kind)
    env.set_flows([{"id": "p", "type": offer_type, "duration": 1, "interval": "month"}])
    session_id = env.accept(sub.id, "p")
    env.run_jobs()
    state = retrieve(stripe_client, sub.id)
    action = env.action(session_id)
    assert action.status == "applied", action.error
    pause = state["pause_collection"]
    assert pause["behavior"] == ("void" if offer_type == "pause" else "mark_uncollectible")
    expected = add_interval(action.created_at, 1, "month")
    assert pause["resumes_at"] == int(expected.timestamp())
    assert state["status"] == ("trialing" if kind == "trialing" else "active")


@pytest.mark.parametrize("offer_type", ["pause", "extension"])
@pytest.mark.parametrize(("duration", "interval", "length"), [(3, "day", 3), (2, "week", 14)])
def test_pause_and_extension_by_day_and_week(
    env: Env,
    stripe_client: stripe.StripeClient,
    make_subscription: Any,
    offer_type: str,
    duration: int,
    interval: str,
    length: int,
) -> None:
    sub = make_subscription("monthly")
    env.set_flows([{"id": "p", "type": offer_type, "duration": duration, "interval": interval}])
    session_id = env.accept(sub.id, "p")
    env.run_jobs()
    action = env.action(session_id)
    assert action.status == "applied", action.error
    pause = retrieve(stripe_client, sub.id)["pause_collection"]
    assert pause["behavior"] == ("void" if offer_type == "pause" else "mark_uncollectible")
    # Exact days, not add_interval (which would be the code under test checking itself).
    assert pause["resumes_at"] == int((action.created_at + timedelta(days=length)).timestamp())


def _yearly_renewing_soon(
    stripe_client: stripe.StripeClient, make_paying_customer: Any, make_price: Any
) -> stripe.Subscription:
    """A yearly plan whose first invoice (trial end) is ten days away."""
    customer = make_paying_customer()
    price = make_price(24000, "year")
    return stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}], "trial_period_days": 10}
    )


def test_pause_over_a_yearly_renewal_is_refused_by_default(
    env: Env, stripe_client: stripe.StripeClient, make_paying_customer: Any, make_price: Any
) -> None:
    sub = _yearly_renewing_soon(stripe_client, make_paying_customer, make_price)
    env.set_flows([{"id": "p", "type": "pause", "duration": 2, "interval": "month"}])
    session_id = env.accept(sub.id, "p")
    env.run_jobs()
    assert retrieve(stripe_client, sub.id)["pause_collection"] is None
    action = env.action(session_id)
    assert action.status == "failed"
    assert "renewal" in (action.error or "")


def test_pause_over_a_yearly_renewal_is_shortened_when_configured(
    env: Env, stripe_client: stripe.StripeClient, make_paying_customer: Any, make_price: Any
) -> None:
    sub = _yearly_renewing_soon(stripe_client, make_paying_customer, make_price)
    env.set_flows(
        [
            {
                "id": "p",
                "type": "pause",
                "duration": 2,
                "interval": "month",
                "over_renewal": "shorten",
            }
        ]
    )
    env.accept(sub.id, "p")
    env.run_jobs()
    state = retrieve(stripe_client, sub.id)
    renewal = state["trial_end"]
    assert state["pause_collection"]["behavior"] == "void"
    assert renewal - 2 * 3600 <= state["pause_collection"]["resumes_at"] < renewal


def _same_cycle_price(make_price: Any, kind: str, currency: str = "usd") -> stripe.Price:
    return make_price(1500, "year" if kind == "yearly" else "month", currency, name="Lite")


@pytest.mark.parametrize("kind", KINDS)
def test_plan_change(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, make_price: Any, kind: str
) -> None:
    sub = make_subscription(kind)
    before = item_prices(retrieve(stripe_client, sub.id))
    new_price = _same_cycle_price(make_price, kind)
    env.set_flows([{"id": "lite", "type": "plan_change", "price": new_price.id}])
    session_id = env.accept(sub.id, "lite")
    env.run_jobs()
    after = item_prices(retrieve(stripe_client, sub.id))
    assert env.action(session_id).status == "applied"
    first = sub["items"]["data"][0]["id"]
    assert after[first] == new_price.id
    assert {k: v for k, v in after.items() if k != first} == {
        k: v for k, v in before.items() if k != first
    }


@pytest.mark.parametrize("proration", ["create_prorations", "none", "always_invoice"])
def test_plan_change_proration(
    env: Env,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    make_subscription: Any,
    make_price: Any,
    proration: str,
) -> None:
    """An upgrade from 20.00 to 50.00 a third of the way into the month. The three behaviours
    differ in what Stripe bills: create_prorations leaves the difference pending for the
    renewal invoice, always_invoice bills it at once, none never bills it."""
    sub = make_subscription("monthly")
    sandbox.advance_clock(10 * DAY)  # some of the period used, some left to prorate
    invoices_before = len(stripe_client.v1.invoices.list({"subscription": sub.id}).data)
    new_price = make_price(5000, "month", name="Max")
    env.set_flows(
        [
            {
                "id": "up",
                "type": "plan_change",
                "price": new_price.id,
                "proration_behavior": proration,
            }
        ]
    )
    env.accept(sub.id, "up")
    env.run_jobs()
    state = retrieve(stripe_client, sub.id)
    assert item_prices(state) == {sub["items"]["data"][0]["id"]: new_price.id}, env.job_errors()
    invoices = stripe_client.v1.invoices.list({"subscription": sub.id}).data
    assert len(invoices) == invoices_before + (1 if proration == "always_invoice" else 0)
    if proration == "always_invoice":
        # The unused 20.00 credited, the rest of the month at 50.00 charged: about +20.00.
        assert 0 < invoices[0].total < 5000
    sandbox.advance_clock(to=state["items"]["data"][0]["current_period_end"] + 60)
    renewal = stripe_client.v1.invoices.list({"subscription": sub.id}).data[0]
    assert renewal.billing_reason == "subscription_cycle"
    extra = renewal.total - 5000  # what the renewal bills beyond the new month
    if proration == "create_prorations":
        assert 0 < extra < 5000  # the pending difference rides on the renewal
    else:
        assert extra == 0  # billed already (always_invoice) or never (none)


def test_plan_change_to_another_currency_fails(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, make_price: Any
) -> None:
    sub = make_subscription("monthly")
    eur = make_price(1500, "month", "eur")
    env.set_flows([{"id": "eur", "type": "plan_change", "price": eur.id}])
    session_id = env.accept(sub.id, "eur")
    env.run_jobs()
    action = env.action(session_id)
    assert action.status == "failed"
    assert eur.id in (action.error or "") and "currency" in (action.error or "")
    assert eur.id not in item_prices(retrieve(stripe_client, sub.id)).values()


@pytest.mark.parametrize("kind", KINDS)
def test_trial_extension(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, kind: str
) -> None:
    sub = make_subscription(kind)
    before = retrieve(stripe_client, sub.id)
    env.set_flows([{"id": "t", "type": "trial_extension", "days": 7}])
    session_id = env.accept(sub.id, "t")
    env.run_jobs()
    after = retrieve(stripe_client, sub.id)
    action = env.action(session_id)
    if kind == "trialing":
        assert action.status == "applied"
        assert after["trial_end"] == before["trial_end"] + 7 * DAY
        assert after["status"] == "trialing"
    else:
        assert action.status == "failed"
        assert "trialing" in (action.error or "")
        assert after["trial_end"] == before["trial_end"]


def test_offers_off_or_not_connected_sends_nothing(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, sandbox: Sandbox
) -> None:
    sub = make_subscription("monthly")
    coupon = _coupon(stripe_client)
    env.set_flows([{"id": "off", "type": "discount", "coupon": coupon}])
    env.connect(sandbox.secret_key, offers=False)
    first = env.accept(sub.id, "off")
    env.run_jobs()
    env.connect(None)
    second = env.accept(sub.id, "off")
    env.run_jobs()
    assert discount_coupons(retrieve(stripe_client, sub.id)) == []
    assert env.action(first).status == "skipped"
    assert env.action(first).error == "offers are off"
    assert env.action(second).status == "skipped"


def test_now_is_aware_utc(env: Env, make_subscription: Any) -> None:
    """An action's "now" is its row's created_at read back from the database (the plan is
    computed from it). It must come back aware and in UTC on both databases (SQLite forgets
    the zone), and the interval arithmetic must keep it so."""
    sub = make_subscription("monthly")
    env.set_flows([{"id": "p", "type": "pause", "duration": 1, "interval": "month"}])
    session_id = env.accept(sub.id, "p")
    env.run_jobs()
    now = env.action(session_id).created_at
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    for interval in ("day", "week", "month", "year"):
        moved = add_interval(now, 1, interval)
        assert moved.tzinfo is not None and moved.utcoffset() == timedelta(0)
    assert add_interval(datetime(2026, 1, 31, tzinfo=UTC), 1, "month") == datetime(
        2026, 2, 28, tzinfo=UTC
    )


def _promotion_code(client: stripe.StripeClient, coupon: str) -> str:
    return client.v1.promotion_codes.create({"promotion": {"type": "coupon", "coupon": coupon}}).id


@pytest.mark.parametrize("kind", ["monthly", "discounted"])
def test_discount_by_promotion_code(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any, kind: str
) -> None:
    sub = make_subscription(kind)
    coupon = _coupon(stripe_client)
    promo = _promotion_code(stripe_client, coupon)
    env.set_flows([{"id": "off", "type": "discount", "promotion_code": promo}])
    session_id = env.accept(sub.id, "off")
    env.run_jobs()
    state = stripe_client.v1.subscriptions.retrieve(sub.id, {"expand": ["discounts"]})
    assert [d.promotion_code for d in state.discounts] == [promo], env.job_errors()  # type: ignore[union-attr]
    assert [c for _, c in discount_coupons(retrieve(stripe_client, sub.id))] == [coupon]
    action = env.action(session_id)
    assert action.status == "applied"
    assert action.result["subscriptions"][sub.id]["discounts"] == [coupon]
    assert stripe_client.v1.promotion_codes.retrieve(promo).times_redeemed == 1


def test_promotion_code_deactivated_between_configuration_and_acceptance(
    env: Env, stripe_client: stripe.StripeClient, make_subscription: Any
) -> None:
    sub = make_subscription("monthly")
    promo = _promotion_code(stripe_client, _coupon(stripe_client))
    env.set_flows([{"id": "off", "type": "discount", "promotion_code": promo}])
    stripe_client.v1.promotion_codes.update(promo, {"active": False})
    session_id = env.accept(sub.id, "off")
    env.run_jobs()
    assert discount_coupons(retrieve(stripe_client, sub.id)) == []
    action = env.action(session_id)
    assert action.status == "failed"
    assert promo in (action.error or "") and "cannot be redeemed" in (action.error or "")
