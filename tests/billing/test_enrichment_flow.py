"""End to end: precancel -> the page picks an audience from Stripe fields -> the session record."""

from __future__ import annotations

from stayflow.billing.stripe.client import STRIPE_CALLS
from tests.billing.helpers import connect
from tests.cancel_flow.helpers import apply_flows, configure, start_session

FLOWS = """\
reasons:
  - {id: too_expensive, label: "It's too expensive", feedback: too_expensive}
offers:
  - {id: pause_2m, type: pause, duration: 2, interval: month, reasons: [too_expensive]}
audiences:
  - {id: annual, rule: {field: subscription.plan.interval, op: equals, value: year}}
experiences:
  - {id: annual_flow, audience: annual, reasons: [too_expensive], offers: [pause_2m]}
  - {id: default, reasons: [too_expensive], offers: [pause_2m]}
"""


def _session(api, tenant, token):
    page = api.get(f"/c/{token}", headers={"Accept": "application/json"})
    assert page.status_code == 200, page.text
    session_id = page.json()["session_id"]
    record = api.get(f"/api/v1/cancel-sessions/{session_id}", headers=tenant.headers)
    assert record.status_code == 200, record.text
    return record.json()


def test_enriched_and_mapped_fields_drive_the_audience_and_are_recorded(
    stripe_api, owner, sandbox, stripe_client, make_paying_customer, make_price
):
    connect(stripe_api, owner, sandbox.secret_key)
    configure(stripe_api, owner)
    apply_flows(stripe_api, owner, FLOWS)
    stripe_api.put(
        "/api/v1/field-mappings",
        json={
            "mappings": [
                {"field": "plan_interval", "source": "subscription.plan.interval", "type": "text"},
                {"field": "price", "source": "subscription.plan.amount", "type": "money"},
                {"field": "seats", "source": "custom.seats", "type": "integer"},
                {"field": "bad", "source": "subscription.status", "type": "email"},
            ]
        },
        headers=owner.headers,
    )
    yearly = make_price(unit_amount=12000, interval="year", name="Annual")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": yearly.id}]}
    )

    record = _session(stripe_api, owner, start_session(stripe_api, owner, subscription_id=sub.id))
    assert record["experience_id"] == "annual_flow"
    fields = record["enriched_fields"]
    assert fields["plan_interval"] == "year"
    assert fields["price"] == {"amount": 12000, "currency": "usd", "exponent": 2, "value": "120.00"}
    assert fields["seats"] == 3
    assert "bad" not in fields and fields["enrichment.failed_conversions"] == 1
    assert fields["enrichment.source"] == "live"
    assert fields["enrichment.prefetched"] is True  # read before the page's transaction
    assert fields["subscription.plan.product.name"] == "Annual"

    # The next visit reads the mirror the first one refreshed.
    again = _session(stripe_api, owner, start_session(stripe_api, owner, subscription_id=sub.id))
    assert again["enriched_fields"]["enrichment.source"] == "mirror"
    assert again["enriched_fields"]["enrichment.stripe_calls"] == 0
    assert "enrichment.prefetched" not in again["enriched_fields"]


def test_an_unknown_subscription_gets_the_default_experience_and_the_reason(
    stripe_api, owner, sandbox
):
    connect(stripe_api, owner, sandbox.secret_key)
    configure(stripe_api, owner)
    apply_flows(stripe_api, owner, FLOWS)
    token = start_session(stripe_api, owner, subscription_id="sub_notinstripe123")
    record = _session(stripe_api, owner, token)
    assert record["experience_id"] == "default"
    assert record["enriched_fields"]["enrichment.source"] == "fallback"
    assert record["enriched_fields"]["enrichment.reason"] == "subscription_not_found"


def test_stripe_down_still_opens_the_page_with_the_default_experience(
    stripe_api, owner, sandbox, stripe_client, make_paying_customer, make_price
):
    connect(stripe_api, owner, sandbox.secret_key)
    configure(stripe_api, owner)
    apply_flows(stripe_api, owner, FLOWS)
    yearly = make_price(unit_amount=12000, interval="year")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": yearly.id}]}
    )
    token = start_session(stripe_api, owner, subscription_id=sub.id)
    before = STRIPE_CALLS.value
    with sandbox.faulty("hang", seconds=5, times=None):
        record = _session(stripe_api, owner, token)
    assert record["experience_id"] == "default"
    assert record["enriched_fields"]["enrichment.reason"] == "stripe_unavailable"
    # Asked once, before the page's transaction (prefetch); enrich() did not ask again.
    assert STRIPE_CALLS.value - before == 1
    assert record["enriched_fields"]["enrichment.prefetched"] is True
