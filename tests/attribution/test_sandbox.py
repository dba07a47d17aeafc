"""Attribution against the Stripe sandbox with its clock advanced (stayflow's clock injected),
on SQLite and PostgreSQL: each status, each figure, and what the sync asks Stripe."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy.orm import Session, sessionmaker

from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.attribution.helpers import DAY, Attribution, counting
from tests.billing_actions.helpers import make_env
from tests.conftest import Tenant

PAUSE = {"id": "pause", "type": "pause"}
# Stripe takes a customer's coupon only with an API version before 2025-03-31.basil.
LEGACY: Any = {"stripe_version": "2025-02-24.acacia"}
DISCOUNT = {"id": "off20", "type": "discount"}


@pytest.fixture
def att(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    owner: Tenant,
    sandbox: Sandbox,
) -> Attribution:
    env = make_env(session_factory, stripe_settings, owner.app_id)
    env.connect(sandbox.secret_key)
    return Attribution(env, sandbox)


@pytest.fixture
def subscribe(
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> Callable[..., stripe.Subscription]:
    def make(
        amount: int = 2000,
        interval: str = "month",
        currency: str = "usd",
        customer: str | None = None,
        extra_items: list[dict[str, Any]] | None = None,
        **params: Any,
    ) -> stripe.Subscription:
        items: list[dict[str, Any]] = [
            {"price": make_price(amount, interval, currency).id, **params.pop("item", {})}
        ]
        for extra in extra_items or []:
            price = make_price(extra["amount"], interval, currency, name="Seats")
            items.append({"price": price.id, "quantity": extra["quantity"]})
        return stripe_client.v1.subscriptions.create(
            {"customer": customer or make_paying_customer().id, "items": items, **params}  # type: ignore[typeddict-item]
        )

    return make


def test_a_save_that_keeps_paying_is_validated_at_day_30(att: Attribution, subscribe: Any) -> None:
    sub = subscribe()
    session = att.session(sub.id, "deflected")
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("pending", 2000, 2000)
    att.sync(days=28)
    assert att.watch(session).status == "pending"
    att.sync(days=1)
    watch = att.watch(session)
    assert watch.status == "validated"
    assert watch.status_at == watch.session_at + timedelta(days=30)
    assert (watch.currency, watch.mrr_kept, watch.mrr_lost) == ("usd", 2000, 0)
    assert [t for t, _ in att.events()] == ["save.validated"]


def test_canceled_on_day_20_lapses_with_that_date(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    sub = subscribe()
    session = att.session(sub.id, "saved")
    att.sync(days=1)
    att.sandbox.advance_clock(19 * DAY)
    canceled = stripe_client.v1.subscriptions.cancel(sub.id)
    att.sync(days=5)
    watch = att.watch(session)
    assert (watch.status, watch.cause) == ("lapsed", "canceled")
    assert watch.status_at is not None
    assert int(watch.status_at.timestamp()) == canceled.canceled_at
    # Day 20 (the sandbox's clock also runs in real time: a second or two more).
    assert timedelta(days=20) <= watch.status_at - watch.session_at <= timedelta(days=20, seconds=5)
    assert (watch.mrr_kept, watch.mrr_lost) == (0, 2000)
    types = att.events()
    assert [t for t, _ in types] == ["save.lapsed"]
    assert types[0][1]["cause"] == "canceled"
    att.sync(days=30)  # the window's end changes nothing: lapsed stays lapsed
    assert att.watch(session).status == "lapsed"


def test_a_failed_renewal_lapses_as_unpaid(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    sub = subscribe()
    att.sandbox.advance_clock(10 * DAY)
    session = att.session(sub.id, "saved")
    declined = stripe_client.v1.payment_methods.attach(
        "pm_card_chargeDeclined", {"customer": str(sub.customer)}
    )
    stripe_client.v1.customers.update(
        str(sub.customer), {"invoice_settings": {"default_payment_method": declined.id}}
    )
    att.sync(days=25)  # the renewal (day ~31 of the subscription) failed: past_due
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert att.watch(session).status == "pending"
    att.sync(days=5)
    watch = att.watch(session)
    assert (watch.status, watch.cause) == ("lapsed", "unpaid")
    assert watch.status_at is not None and watch.session_at < watch.status_at < watch.window_ends_at
    assert watch.cash_collected == 0


def test_a_pause_that_resumes(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    sub = subscribe()
    session = att.session(sub.id, "saved", offer=PAUSE)
    stripe_client.v1.subscriptions.update(
        sub.id,
        {"pause_collection": {"behavior": "void", "resumes_at": att.sandbox.now() + 10 * DAY}},
    )
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("pending", 2000, 0)
    att.sync(days=29)
    watch = att.watch(session)
    assert (watch.status, watch.mrr_kept) == ("validated", 2000)


def test_a_repeating_discount_that_ends_inside_the_window(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    coupon = stripe_client.v1.coupons.create(
        {"percent_off": 25, "duration": "repeating", "duration_in_months": 3}
    )
    sub = subscribe(discounts=[{"coupon": coupon.id}])
    att.sandbox.advance_clock(80 * DAY)
    session = att.session(sub.id, "deflected")
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.mrr_at_session, watch.mrr_kept) == (1500, 1500)
    att.sync(days=29)
    watch = att.watch(session)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("validated", 1500, 2000)


def test_issue_examples_annual_and_jpy(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    saved = subscribe(9900, "year")
    lost = subscribe(9900, "year")
    yen = subscribe(980, "month", "jpy")
    coupon = stripe_client.v1.coupons.create({"percent_off": 20, "duration": "forever"})
    kept = att.session(saved.id, "saved", offer=DISCOUNT)
    stripe_client.v1.subscriptions.update(saved.id, {"discounts": [{"coupon": coupon.id}]})
    canceled = att.session(lost.id, "canceled")
    stripe_client.v1.subscriptions.cancel(lost.id)
    canceled_yen = att.session(yen.id, "canceled")
    stripe_client.v1.subscriptions.update(yen.id, {"cancel_at_period_end": True})
    att.sync(days=1)
    watch = att.watch(kept)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("pending", 825, 660)
    assert watch.cash_collected == 0  # the yearly invoice was paid before the session
    watch = att.watch(canceled)
    assert (watch.status, watch.mrr_lost, watch.currency) == ("confirmed", 825, "usd")
    watch = att.watch(canceled_yen)
    assert (watch.status, watch.mrr_lost, watch.currency) == ("confirmed", 980, "jpy")
    att.sync(days=29)
    assert att.watch(kept).status == "validated"


def test_two_items_with_quantities_and_cash_collected(att: Attribution, subscribe: Any) -> None:
    sub = subscribe(2000, item={"quantity": 2}, extra_items=[{"amount": 500, "quantity": 3}])
    session = att.session(sub.id, "deflected")
    att.sync(days=35)  # one renewal paid inside the window
    watch = att.watch(session)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("validated", 5500, 5500)
    assert watch.cash_collected == 5500


def test_customer_level_coupon_set_switched_and_deleted_in_the_sandbox(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    """A customer's coupon (set with a Stripe-Version before 2025-03-31, as on Stripe) counts in
    MRR; the events sync sees it switched (customer.discount.updated) and deleted, reads a
    coupon once per sync, and retrieves a customer only when the mirror lacks it."""
    ten = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    half = stripe_client.v1.coupons.create({"percent_off": 50, "duration": "forever"})
    sub = subscribe()
    other = subscribe()
    customer, other_customer = str(sub.customer), str(other.customer)
    for owner in (customer, other_customer):
        stripe_client.v1.customers.update(owner, {"coupon": ten.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
    session = att.session(sub.id, "deflected")
    other_session = att.session(other.id, "deflected")
    with counting(att.sandbox) as requests:
        att.sync(days=1)
    # The subscriptions came from their created events (customers named by id only): each
    # customer with a discount event is retrieved, its coupon expanded in the same request.
    assert sorted(requests) == sorted(
        ["GET /v1/events", "GET /v1/customers/" + customer, "GET /v1/customers/" + other_customer]
    )
    watch = att.watch(session)
    assert (watch.mrr_at_session, watch.mrr_kept) == (1800, 1800)
    assert att.watch(other_session).mrr_kept == 1800

    # Both switch to 50 % (one customer.discount.updated each): the coupon is read once.
    for owner in (customer, other_customer):
        stripe_client.v1.customers.update(owner, {"coupon": half.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
    with counting(att.sandbox) as requests:
        att.sync(days=1)
    assert sorted(requests) == ["GET /v1/coupons/" + half.id, "GET /v1/events"]
    watch = att.watch(session)
    assert (watch.mrr_at_session, watch.mrr_kept) == (1800, 1000)
    assert att.watch(other_session).mrr_kept == 1000

    stripe_client.v1.customers.delete_discount(customer)
    with counting(att.sandbox) as requests:
        att.sync(days=1)
    assert requests == ["GET /v1/events"]
    assert att.watch(session).mrr_kept == 2000
    assert att.watch(other_session).mrr_kept == 1000
    with counting(att.sandbox) as requests:
        att.sync()
    assert requests == ["GET /v1/events"]  # nothing changed: no coupon or customer read again


def test_a_repeating_customer_coupon_that_ends_inside_the_window(
    att: Attribution,
    subscribe: Any,
    make_paying_customer: Callable[..., stripe.Customer],
    stripe_client: stripe.StripeClient,
) -> None:
    coupon = stripe_client.v1.coupons.create(
        {"percent_off": 25, "duration": "repeating", "duration_in_months": 1}
    )
    # The coupon is on the customer before the subscription starts, so its month ends no later
    # than the first renewal. (Applied after, it could end a second past the renewal: the
    # sandbox's clock runs in real time between advances, and that renewal would still be
    # discounted, as on Stripe.)
    customer = make_paying_customer()
    stripe_client.v1.customers.update(customer.id, {"coupon": coupon.id}, LEGACY)  # type: ignore[typeddict-unknown-key]
    sub = subscribe(customer=customer.id)
    session = att.session(sub.id, "saved")
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("pending", 1500, 1500)
    att.sync(days=34)  # the coupon's month is over (Stripe deleted the discount at renewal)
    watch = att.watch(session)
    assert (watch.status, watch.mrr_at_session, watch.mrr_kept) == ("validated", 1500, 2000)
    assert watch.cash_collected == 2000  # the renewal after the coupon's end, at full price


def test_an_unknown_subscription_is_unmatched(att: Attribution) -> None:
    session = att.session("sub_doesnotexist", "saved")
    with counting(att.sandbox) as requests:
        att.sync()
    watch = att.watch(session)
    assert watch.status == "unmatched"
    assert watch.cause is not None and "sub_doesnotexist" in watch.cause
    assert "GET /v1/subscriptions/sub_doesnotexist" in requests


def test_a_win_back_within_90_days(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    sub = subscribe()
    session = att.session(sub.id, "canceled")
    stripe_client.v1.subscriptions.cancel(sub.id)
    att.sync(days=1)
    assert att.watch(session).status == "confirmed"
    att.sandbox.advance_clock(40 * DAY)
    again = subscribe(3000, customer=str(sub.customer))
    att.sync()
    watch = att.watch(session)
    assert (watch.status, watch.reactivated_subscription_id) == ("reactivated", again.id)
    assert (watch.mrr_lost, watch.mrr_kept) == (0, 3000)
    assert [t for t, _ in att.events()] == ["cancel.reactivated"]


def test_events_missed_by_webhooks_are_recovered_by_the_events_sync(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    sub = subscribe()
    session = att.session(sub.id, "saved")
    att.sync(days=1)
    # No webhook endpoint: the mirror hears of this change only from GET /v1/events.
    stripe_client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    with counting(att.sandbox) as requests:
        result = att.sync(days=1)
    assert requests == ["GET /v1/events"]
    assert result.mode == "events"
    watch = att.watch(session)
    assert (watch.status, watch.cause) == ("lapsed", "cancel_at_period_end")
    with counting(att.sandbox) as requests:
        att.sync()  # nothing changed since: one page of events
    assert requests == ["GET /v1/events"]


def test_a_cursor_older_than_30_days_falls_back_to_a_full_list(
    att: Attribution, subscribe: Any
) -> None:
    sub = subscribe()
    session = att.session(sub.id, "saved")
    att.sync(days=1)
    with counting(att.sandbox) as requests:
        result = att.sync(days=31)
    assert result.mode == "full"
    assert "GET /v1/events" not in requests
    assert requests[:2] == ["GET /v1/subscriptions", "GET /v1/invoices"]
    watch = att.watch(session)
    assert watch.status == "validated"
    assert watch.cash_collected == 2000  # the renewal's invoice came from the invoice list


def test_a_plan_change_keeps_the_new_plans_mrr_against_the_enriched_old_one(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient, make_price: Any
) -> None:
    sub = subscribe(2000)
    session = att.session(
        sub.id, "saved", offer={"id": "lite", "type": "plan_change"}, enriched=True
    )
    cheaper = make_price(1200, name="Lite")
    item = sub["items"]["data"][0]["id"]
    stripe_client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item, "price": cheaper.id}], "proration_behavior": "none"}
    )
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.mrr_at_session, watch.mrr_kept) == (2000, 1200)


def test_a_discount_offer_replacing_an_older_discount(
    att: Attribution, subscribe: Any, stripe_client: stripe.StripeClient
) -> None:
    old = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    sub = subscribe(2000, discounts=[{"coupon": old.id}])
    session = att.session(sub.id, "saved", offer=DISCOUNT, enriched=True)
    new = stripe_client.v1.coupons.create({"percent_off": 25, "duration": "forever"})
    stripe_client.v1.subscriptions.update(sub.id, {"discounts": [{"coupon": new.id}]})
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.mrr_at_session, watch.mrr_kept) == (1800, 1500)
