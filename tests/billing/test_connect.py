"""Connecting an app to Stripe (the sandbox): good, wrong and restricted keys; setup; tenancy."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from stayflow.billing.models import BillingConnection
from tests.billing.helpers import ENCRYPTOR
from tests.conftest import STRANGER_HEADERS

ALL_READ_WRITE = {
    "subscriptions": "write",
    "customers": "read",
    "products": "read",
    "prices": "read",
    "coupons": "read",
    "promotion_codes": "read",
    "events": "read",
    "invoices": "read",
    "webhook_endpoints": "write",
}


def _connection(session_factory):
    with session_factory() as db:
        return db.scalar(select(BillingConnection))


def test_connect_with_a_secret_key_registers_the_webhook_and_keeps_the_key_secret(
    stripe_api, owner, sandbox, stripe_client, session_factory, stripe_settings
):
    response = stripe_api.put(
        "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["connected"] is True
    assert body["key_kind"] == "secret" and body["livemode"] is False
    assert all(uc["ready"] for uc in body["use_cases"].values()), body["use_cases"]
    assert body["webhooks"]["configured"] and body["webhooks"]["managed"]
    assert body["webhooks"]["url"] == f"{stripe_settings.base_url}/stripe/webhooks/{owner.app_id}"
    assert sandbox.secret_key not in response.text

    # Stripe now has our endpoint, for the events the mirror needs.
    endpoints = stripe_client.v1.webhook_endpoints.list().data
    assert [e.id for e in endpoints] == [body["webhooks"]["endpoint_id"]]
    assert endpoints[0].url == body["webhooks"]["url"]
    assert "customer.subscription.updated" in endpoints[0].enabled_events
    assert "customer.discount.updated" in endpoints[0].enabled_events  # customer coupons

    # At rest the key and the signing secret are encrypted, and decrypt to the right values.
    conn = _connection(session_factory)
    assert conn.webhook_events == endpoints[0].enabled_events  # what was asked, recorded
    assert sandbox.secret_key not in conn.api_key_encrypted
    assert ENCRYPTOR.decrypt(conn.api_key_encrypted) == sandbox.secret_key
    assert ENCRYPTOR.decrypt(conn.webhook_secret_encrypted).startswith("whsec_")

    status = stripe_api.get("/api/v1/billing/stripe", headers=owner.headers).json()
    assert status["connected"] and status["checked_at"]
    assert sandbox.secret_key not in str(status)


def test_a_wrong_key_is_refused_and_nothing_is_stored(stripe_api, owner, sandbox, session_factory):
    for key in ("rk_test_notarealkey0000000000", "sk_live_0000000000000000000000"):
        sandbox.configure(secret_keys=[sandbox.secret_key])
        response = stripe_api.put(
            "/api/v1/billing/stripe", json={"api_key": key}, headers=owner.headers
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_stripe_key"
        assert key not in response.text
    for bad in ("pk_test_123", "", "sk_test_ with space", "x" * 300):
        response = stripe_api.put(
            "/api/v1/billing/stripe", json={"api_key": bad}, headers=owner.headers
        )
        assert 400 <= response.status_code < 500
    assert _connection(session_factory) is None
    status = stripe_api.get("/api/v1/billing/stripe", headers=owner.headers).json()
    assert status["connected"] is False


def test_a_restricted_key_reports_exactly_which_permission_each_use_case_misses(
    stripe_api, owner, sandbox, stripe_client
):
    key = sandbox.create_restricted_key(
        {"subscriptions": "read", "customers": "read", "products": "read", "events": "read"}
    )
    response = stripe_api.put(
        "/api/v1/billing/stripe", json={"api_key": key}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key_kind"] == "restricted"
    assert body["account_id"] and body["account_id"].startswith("acct_")
    cases = body["use_cases"]
    assert cases["enrichment"]["missing"] == ["prices:read"]
    # Attribution reads invoices (cash collected) and a customer's coupon as well.
    assert cases["attribution"]["missing"] == ["invoices:read", "coupons:read"]
    assert not cases["attribution"]["ready"]
    assert cases["offers"]["missing"] == [
        "subscriptions:write",
        "coupons:read",
        "promotion_codes:read",
        "prices:read",
    ]
    assert cases["cancels"]["missing"] == ["subscriptions:write"]
    assert not cases["enrichment"]["ready"] and not cases["cancels"]["ready"]
    assert body["permissions"]["webhook_endpoints:write"]["granted"] is False
    assert "rak_webhook_write" in body["permissions"]["webhook_endpoints:write"]["message"]
    # Stripe's messages name the key (masked); ours never carry it in any form.
    assert "rk_test_" not in response.text
    # It may not write webhook endpoints: none registered, and the status says what to do.
    assert body["webhooks"]["configured"] is False
    assert "webhook_secret" in body["webhooks"]["note"]
    assert stripe_client.v1.webhook_endpoints.list().data == []


def test_a_restricted_key_with_its_own_webhook_secret(stripe_api, owner, sandbox, stripe_client):
    key = sandbox.create_restricted_key(ALL_READ_WRITE)
    response = stripe_api.put(
        "/api/v1/billing/stripe",
        json={"api_key": key, "webhook_secret": "whsec_given_by_the_business_0123"},
        headers=owner.headers,
    )
    body = response.json()
    assert all(uc["ready"] for uc in body["use_cases"].values())
    assert body["webhooks"]["configured"] and not body["webhooks"]["managed"]
    assert stripe_client.v1.webhook_endpoints.list().data == []
    assert "whsec_given" not in response.text
    bad = stripe_api.put(
        "/api/v1/billing/stripe",
        json={"api_key": key, "webhook_secret": "not-a-secret"},
        headers=owner.headers,
    )
    assert bad.status_code == 400


def test_disconnect_erases_the_key_and_removes_our_endpoint(
    stripe_api, owner, sandbox, stripe_client, session_factory
):
    stripe_api.put(
        "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
    )
    stripe_api.put("/api/v1/billing/stripe/setup", json={"offers": False}, headers=owner.headers)
    assert len(stripe_client.v1.webhook_endpoints.list().data) == 1
    response = stripe_api.delete("/api/v1/billing/stripe", headers=owner.headers)
    assert response.status_code == 204
    assert stripe_client.v1.webhook_endpoints.list().data == []
    conn = _connection(session_factory)
    assert conn.api_key_encrypted is None and conn.webhook_secret_encrypted is None
    status = stripe_api.get("/api/v1/billing/stripe", headers=owner.headers).json()
    assert status["connected"] is False
    assert status["setup"]["offers"] is False  # the setup outlives a disconnect
    again = stripe_api.delete("/api/v1/billing/stripe", headers=owner.headers)
    assert again.status_code == 404
    assert again.json()["error"]["type"] == "billing_not_connected"


def test_reconnecting_replaces_our_endpoint_instead_of_adding_one(
    stripe_api, owner, sandbox, stripe_client
):
    for _ in range(2):
        stripe_api.put(
            "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
        )
    assert len(stripe_client.v1.webhook_endpoints.list().data) == 1


def test_stripe_down_during_connect_is_a_503_and_stores_nothing(
    stripe_api, owner, sandbox, session_factory
):
    with sandbox.faulty("error", status=500, times=None):
        response = stripe_api.put(
            "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
        )
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "billing_unavailable"
    assert _connection(session_factory) is None


def test_recheck_reports_a_revoked_key(stripe_api, owner, sandbox):
    stripe_api.put(
        "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
    )
    sandbox.configure(secret_keys=["sk_test_some_other_key"])
    body = stripe_api.get("/api/v1/billing/stripe?check=true", headers=owner.headers).json()
    assert body["connected"] is True
    assert body["use_cases"]["enrichment"]["ready"] is False
    assert "subscriptions:read" in body["use_cases"]["enrichment"]["missing"]


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"enrichment": False}, True),
        ({"cancel": {"at_period_end": False, "invoice_now": True, "prorate": True}}, True),
        ({"cancel": {"at_period_end": True, "invoice_now": True}}, False),
        ({"cancel": {"at_period_end": "soon"}}, False),
        ({"cancels": "yes please"}, False),
        ({"refunds": True}, False),
        ({"cancel": {"at_period_end": False, "all_subscriptions": True, "extra": 1}}, False),
    ],
)
def test_setup_is_validated_and_stored(client, owner, body, ok):
    response = client.put("/api/v1/billing/stripe/setup", json=body, headers=owner.headers)
    if ok:
        assert response.status_code == 200, response.text
        stored = client.get("/api/v1/billing/stripe/setup", headers=owner.headers).json()
        for key, value in body.items():
            if isinstance(value, dict):
                assert {k: stored[key][k] for k in value} == value
            else:
                assert stored[key] == value
    else:
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["message"]
        stored = client.get("/api/v1/billing/stripe/setup", headers=owner.headers).json()
        assert stored["cancel"] == {
            "at_period_end": True,
            "invoice_now": False,
            "prorate": False,
            "all_subscriptions": False,
        }


ADMIN_ROUTES = [
    ("GET", "/api/v1/billing/stripe", None),
    ("PUT", "/api/v1/billing/stripe", {"api_key": "sk_test_x"}),
    ("DELETE", "/api/v1/billing/stripe", None),
    ("GET", "/api/v1/billing/stripe/setup", None),
    ("PUT", "/api/v1/billing/stripe/setup", {"enrichment": False}),
    ("GET", "/api/v1/billing/stripe/fields?subscription_id=sub_1", None),
    ("POST", "/api/v1/billing/stripe/backfill", {}),
    ("GET", "/api/v1/billing/stripe/backfill", None),
    ("GET", "/api/v1/field-mappings", None),
    ("PUT", "/api/v1/field-mappings", {"mappings": []}),
    ("POST", "/api/v1/field-mappings", {"field": "a", "source": "subscription.id", "type": "text"}),
    ("GET", "/api/v1/field-mappings/a", None),
    (
        "PUT",
        "/api/v1/field-mappings/a",
        {"field": "a", "source": "subscription.id", "type": "text"},
    ),
    ("DELETE", "/api/v1/field-mappings/a", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_every_billing_admin_route_refuses_a_stranger(client, owner, method, path, body):
    for headers in (STRANGER_HEADERS, {}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, response.text


def test_one_app_never_sees_or_changes_anothers_billing(
    stripe_api, owner, other, sandbox, session_factory
):
    stripe_api.put(
        "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=owner.headers
    )
    stripe_api.put("/api/v1/billing/stripe/setup", json={"offers": False}, headers=owner.headers)
    stripe_api.post(
        "/api/v1/field-mappings",
        json={"field": "plan", "source": "subscription.plan.interval", "type": "text"},
        headers=owner.headers,
    )
    theirs = stripe_api.get("/api/v1/billing/stripe", headers=other.headers).json()
    assert theirs["connected"] is False and theirs["setup"]["offers"] is True
    assert stripe_api.get("/api/v1/field-mappings", headers=other.headers).json() == []
    assert stripe_api.get("/api/v1/field-mappings/plan", headers=other.headers).status_code == 404
    assert (
        stripe_api.delete("/api/v1/field-mappings/plan", headers=other.headers).status_code == 404
    )
    assert stripe_api.delete("/api/v1/billing/stripe", headers=other.headers).status_code == 404
    fields = stripe_api.get(
        "/api/v1/billing/stripe/fields?subscription_id=sub_1", headers=other.headers
    )
    assert fields.status_code == 404
    assert (
        stripe_api.post(
            "/api/v1/billing/stripe/backfill", json={}, headers=other.headers
        ).status_code
        == 404
    )
    mine = stripe_api.get("/api/v1/billing/stripe", headers=owner.headers).json()
    assert mine["connected"] is True and mine["setup"]["offers"] is False
    assert len(stripe_api.get("/api/v1/field-mappings", headers=owner.headers).json()) == 1


def test_stripe_refusing_our_webhook_url_still_connects_and_says_why(
    stripe_api, owner, sandbox, stripe_client
):
    with sandbox.faulty("error", status=400, method="POST", path="/v1/webhook_endpoints"):
        body = connect_ok(stripe_api, owner, sandbox.secret_key)
    assert body["connected"] is True
    assert body["webhooks"]["configured"] is False
    assert body["webhooks"]["note"].startswith("Stripe refused to create the webhook endpoint")
    assert stripe_client.v1.webhook_endpoints.list().data == []


def connect_ok(api, tenant, key):
    response = api.put("/api/v1/billing/stripe", json={"api_key": key}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()
