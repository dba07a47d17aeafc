"""Enrichment against the sandbox: real subscriptions of every shape, typed mappings, fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stayflow.billing.stripe.client import STRIPE_CALLS
from tests.billing.helpers import connect, enrich


@pytest.fixture
def connected(stripe_api, owner, sandbox):
    connect(stripe_api, owner, sandbox.secret_key)
    return owner


@pytest.fixture
def paying(make_paying_customer):
    def make(**params):
        return make_paying_customer(
            email="ada@example.com", name="Ada", metadata={"tier": "gold", "seats": "3"}, **params
        )

    return make


def _sub(stripe_client, customer, prices, **params):
    items = [{"price": p.id} for p in prices]
    return stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": items, **params}
    )


def _epoch(ts):
    return int(ts)


def test_monthly_subscription_gives_brightbacks_fields(
    connected, stripe_api, stripe_client, make_price, paying, session_factory, stripe_settings
):
    customer = paying()
    price = make_price(unit_amount=1999, interval="month", name="Pro monthly")
    sub = _sub(stripe_client, customer, [price], metadata={"source": "web"})
    fields = enrich(session_factory, stripe_settings, connected.app_id, sub.id)
    item = sub["items"].data[0]
    assert fields["subscription.id"] == sub.id
    assert fields["subscription.status"] == "active"
    assert fields["subscription.plan.interval"] == "month"
    assert fields["subscription.plan.interval_count"] == 1
    assert fields["subscription.plan.amount"] == 1999
    assert fields["subscription.plan.amount_decimal"] == "1999"
    assert fields["subscription.plan.currency"] == "usd"
    assert fields["subscription.plan.billing_scheme"] == "per_unit"
    assert fields["subscription.plan.id"] == price.id
    assert fields["subscription.plan.product.id"] == price.product
    assert fields["subscription.plan.product.name"] == "Pro monthly"
    assert fields["subscription.customer.id"] == customer.id
    assert fields["subscription.customer.email"] == "ada@example.com"
    assert fields["subscription.customer.created"] == customer.created
    assert fields["subscription.customer.metadata.tier"] == "gold"
    assert fields["subscription.metadata.source"] == "web"
    assert fields["subscription.created"] == sub.created
    assert fields["subscription.start_date"] == sub.start_date
    # Periods come from the item (current API), under the stable subscription-level names.
    assert fields["subscription.current_period_start"] == item.current_period_start
    assert fields["subscription.current_period_end"] == item.current_period_end
    assert fields["subscription.cancel_at_period_end"] is False
    assert "subscription.trial_end" not in fields
    assert "subscription.discount.coupon.id" not in fields
    assert fields["enrichment.source"] == "live"
    assert fields["enrichment.stripe_calls"] == 1


def test_yearly_trialing_discounted_multi_item_and_jpy(
    connected, stripe_api, stripe_client, make_price, paying, session_factory, stripe_settings
):
    customer = paying()
    yearly = make_price(unit_amount=19900, interval="year", name="Pro yearly")
    sub = _sub(stripe_client, customer, [yearly])
    fields = enrich(session_factory, stripe_settings, connected.app_id, sub.id)
    assert (fields["subscription.plan.interval"], fields["subscription.plan.amount"]) == (
        "year",
        19900,
    )
    assert (
        fields["subscription.current_period_end"] - fields["subscription.current_period_start"]
        >= 365 * 86400
    )

    trial = _sub(stripe_client, customer, [yearly], trial_period_days=14)
    fields = enrich(session_factory, stripe_settings, connected.app_id, trial.id)
    assert fields["subscription.status"] == "trialing"
    assert fields["subscription.trial_start"] == trial.trial_start
    assert fields["subscription.trial_end"] == trial.trial_end
    assert fields["subscription.trial_end"] - fields["subscription.trial_start"] == 14 * 86400

    stripe_client.v1.coupons.create(
        {
            "id": "SAVE20",
            "percent_off": 20,
            "duration": "repeating",
            "duration_in_months": 3,
            "name": "Save 20%",
        }
    )
    discounted = _sub(
        stripe_client, customer, [make_price(unit_amount=1000)], discounts=[{"coupon": "SAVE20"}]
    )
    fields = enrich(session_factory, stripe_settings, connected.app_id, discounted.id)
    assert fields["subscription.discount.coupon.id"] == "SAVE20"
    assert fields["subscription.discount.coupon.percent_off"] == 20
    assert fields["subscription.discount.coupon.duration"] == "repeating"
    assert fields["subscription.discount.coupon.duration_in_months"] == 3

    seats = make_price(unit_amount=500, name="Seats")
    base = make_price(unit_amount=2500, name="Base")
    multi = _sub(stripe_client, customer, [base, seats])
    fields = enrich(session_factory, stripe_settings, connected.app_id, multi.id)
    assert fields["subscription.items.count"] == 2
    assert fields["subscription.plan.product.name"] == "Base"  # the first item's price
    assert fields["subscription.items.1.price.product.name"] == "Seats"
    assert fields["subscription.items.1.price.amount"] == 500

    yen_customer = paying()
    yen = make_price(unit_amount=1200, currency="jpy", name="Yen plan")
    jpy = _sub(stripe_client, yen_customer, [yen])
    fields = enrich(session_factory, stripe_settings, connected.app_id, jpy.id)
    assert fields["subscription.plan.currency"] == "jpy"
    assert fields["subscription.plan.amount"] == 1200


def test_mappings_of_every_type_fill_fields_and_count_bad_values(
    connected, stripe_api, stripe_client, make_price, paying, session_factory, stripe_settings
):
    customer = paying()
    yen = make_price(unit_amount=1200, currency="jpy", name="Yen plan")
    sub = _sub(stripe_client, customer, [yen], metadata={"site": "https://shop.example.com/a"})
    mappings = [
        {"field": "plan_interval", "source": "subscription.plan.interval", "type": "text"},
        {"field": "seats", "source": "subscription.customer.metadata.seats", "type": "integer"},
        {
            "field": "amount_decimal",
            "source": "subscription.plan.amount_decimal",
            "type": "decimal",
        },
        {"field": "ends", "source": "subscription.cancel_at_period_end", "type": "boolean"},
        {"field": "renews_on", "source": "subscription.current_period_end", "type": "date"},
        {"field": "started", "source": "subscription.start_date", "type": "datetime"},
        {"field": "contact", "source": "subscription.customer.email", "type": "email"},
        {"field": "site", "source": "subscription.metadata.site", "type": "url"},
        {"field": "price", "source": "subscription.plan.amount", "type": "money"},
        # Bad: a tier is not a number, a name is not an email, text is not a URL.
        {"field": "bad_int", "source": "subscription.customer.metadata.tier", "type": "integer"},
        {"field": "bad_email", "source": "subscription.customer.name", "type": "email"},
        {"field": "bad_url", "source": "subscription.status", "type": "url"},
        # From the snippet's request fields.
        {"field": "last_login", "source": "custom.last_login", "type": "date"},
        {"field": "absent", "source": "subscription.metadata.nothing", "type": "text"},
    ]
    put = stripe_api.put(
        "/api/v1/field-mappings", json={"mappings": mappings}, headers=connected.headers
    )
    assert put.status_code == 200, put.text
    fields = enrich(
        session_factory,
        stripe_settings,
        connected.app_id,
        sub.id,
        request_fields={"custom": {"last_login": "2026-11-01T10:00:00Z"}},
    )
    period_end = sub["items"].data[0].current_period_end
    assert fields["plan_interval"] == "month"
    assert fields["seats"] == 3
    assert fields["amount_decimal"] == "1200"
    assert fields["ends"] is False
    assert fields["renews_on"] == datetime.fromtimestamp(period_end, UTC).date().isoformat()
    assert fields["started"] == datetime.fromtimestamp(sub.start_date, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert fields["contact"] == "ada@example.com"
    assert fields["site"] == "https://shop.example.com/a"
    assert fields["price"] == {"amount": 1200, "currency": "jpy", "exponent": 0, "value": "1200"}
    assert fields["last_login"] == "2026-11-01"
    for bad in ("bad_int", "bad_email", "bad_url", "absent"):
        assert bad not in fields
    assert fields["enrichment.failed_conversions"] == 3
    assert sorted(fields["enrichment.failed_fields"]) == ["bad_email", "bad_int", "bad_url"]
    assert fields["enrichment.missing_fields"] == ["absent"]


def test_source_fields_listing_for_building_mappings(
    connected, stripe_api, stripe_client, make_price, paying
):
    sub = _sub(stripe_client, paying(), [make_price(unit_amount=700)])
    response = stripe_api.get(
        f"/api/v1/billing/stripe/fields?subscription_id={sub.id}", headers=connected.headers
    )
    assert response.status_code == 200, response.text
    listed = {f["path"]: f["sample"] for f in response.json()["fields"]}
    assert listed["subscription.plan.amount"] == 700
    assert listed["subscription.customer.email"] == "ada@example.com"
    # Every documented name is listed, even when this subscription has no value for it.
    assert "subscription.trial_end" in listed and listed["subscription.trial_end"] is None
    assert "subscription.discount.coupon.id" in listed
    missing = stripe_api.get(
        "/api/v1/billing/stripe/fields?subscription_id=sub_nope", headers=connected.headers
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("subscription_id", "reason"),
    [
        (None, "no_subscription_id"),
        ("", "no_subscription_id"),
        ("not-a-subscription", "invalid_subscription_id"),
        ("sub_doesnotexist0000", "subscription_not_found"),
    ],
)
def test_bad_subscription_ids_fall_back_with_the_reason(
    connected, session_factory, stripe_settings, subscription_id, reason
):
    before = STRIPE_CALLS.value
    fields = enrich(session_factory, stripe_settings, connected.app_id, subscription_id)
    assert fields["enrichment.source"] == "fallback"
    assert fields["enrichment.reason"] == reason
    assert not any(k.startswith("subscription.") for k in fields)
    # Only a well-formed id costs a Stripe call.
    assert STRIPE_CALLS.value - before == (1 if reason == "subscription_not_found" else 0)


def test_not_connected_or_disabled_falls_back_without_calling_stripe(
    stripe_api, owner, other, sandbox, session_factory, stripe_settings
):
    before = STRIPE_CALLS.value
    fields = enrich(session_factory, stripe_settings, owner.app_id, "sub_123")
    assert (fields["enrichment.source"], fields["enrichment.reason"]) == (
        "fallback",
        "not_connected",
    )
    connect(stripe_api, other, sandbox.secret_key)
    stripe_api.put(
        "/api/v1/billing/stripe/setup", json={"enrichment": False}, headers=other.headers
    )
    before = STRIPE_CALLS.value
    fields = enrich(session_factory, stripe_settings, other.app_id, "sub_123")
    assert fields["enrichment.reason"] == "disabled"
    assert STRIPE_CALLS.value == before


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("error", {"status": 500}),
        ("error", {"status": 429}),
        ("hang", {"seconds": 5}),  # past the 1.5 s timeout
        ("drop", {}),
    ],
)
def test_stripe_down_or_slow_falls_back_to_defaults(
    connected,
    stripe_client,
    make_price,
    paying,
    sandbox,
    session_factory,
    stripe_settings,
    fault,
    options,
):
    sub = _sub(stripe_client, paying(), [make_price()])
    with sandbox.faulty(fault, method="GET", path="/v1/subscriptions/*", times=None, **options):
        fields = enrich(session_factory, stripe_settings, connected.app_id, sub.id)
    assert fields["enrichment.source"] == "fallback"
    assert fields["enrichment.reason"] == "stripe_unavailable"
    assert fields["enrichment.stripe_calls"] == 1  # no retries while a subscriber waits


def test_sandbox_gone_entirely_falls_back(connected, session_factory, stripe_settings):
    closed = stripe_settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:9"})
    fields = enrich(session_factory, closed, connected.app_id, "sub_123456")
    assert (fields["enrichment.source"], fields["enrichment.reason"]) == (
        "fallback",
        "stripe_unavailable",
    )


def test_a_live_read_refreshes_the_mirror_and_an_old_copy_beats_nothing(
    connected, stripe_client, make_price, paying, sandbox, session_factory, stripe_settings
):
    sub = _sub(stripe_client, paying(), [make_price(name="Kept")])
    first = enrich(session_factory, stripe_settings, connected.app_id, sub.id)
    assert first["enrichment.source"] == "live"
    # The connection's webhook stream is set up, the row was stored after it: now fresh.
    before = STRIPE_CALLS.value
    second = enrich(session_factory, stripe_settings, connected.app_id, sub.id)
    assert second["enrichment.source"] == "mirror"
    assert second["enrichment.stripe_calls"] == 0 and STRIPE_CALLS.value == before
    assert second["subscription.plan.product.name"] == "Kept"
    assert {k: v for k, v in second.items() if not k.startswith("enrichment.")} == {
        k: v for k, v in first.items() if not k.startswith("enrichment.")
    }


def test_an_old_mirror_copy_is_used_when_stripe_is_down(
    connected, stripe_client, make_price, paying, sandbox, session_factory, stripe_settings
):
    from datetime import timedelta

    from sqlalchemy import select

    from stayflow.billing.models import BillingConnection
    from stayflow.db import transaction, utcnow

    sub = _sub(stripe_client, paying(), [make_price(name="Old copy")])
    assert (
        enrich(session_factory, stripe_settings, connected.app_id, sub.id)["enrichment.source"]
        == "live"
    )
    # The webhook stream was set up again after the row was stored: the row is not trusted.
    with transaction(session_factory) as db:
        db.scalar(select(BillingConnection)).webhook_configured_at = utcnow() + timedelta(seconds=5)
    with sandbox.faulty("error", status=500, method="GET", path="/v1/subscriptions/*", times=None):
        fields = enrich(session_factory, stripe_settings, connected.app_id, sub.id)
    assert fields["enrichment.source"] == "stale_mirror"
    assert fields["enrichment.reason"] == "stripe_unavailable"
    assert fields["subscription.plan.product.name"] == "Old copy"
