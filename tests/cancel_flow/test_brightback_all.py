"""Brightback's pause_all_subscriptions / extend_all_subscriptions, end to end on the sandbox.

Precancel through the HTTP API, accept on the page, the billing action through the
request's own attempt (and the worker for anything left): every active subscription of
the customer gets the pause or extension; a canceled one is left alone. They widen what an
offer gives, so they count when signed, or unsigned only with the app's opt-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stayflow.cancel_sessions import trust
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing_actions.helpers import flows_doc, make_env, retrieve
from tests.cancel_flow.helpers import configure, precancel_body
from tests.conftest import Tenant

JSON = {"Accept": "application/json"}
OFFERS = [
    {"id": "pause_1w", "type": "pause", "duration": 1, "interval": "week"},
    {"id": "free_1w", "type": "extension", "duration": 1, "interval": "week"},
]


@pytest.fixture
def customer(
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
) -> dict[str, Any]:
    """The app on the sandbox; a customer with three active subscriptions and a canceled one."""
    env = make_env(session_factory, stripe_settings, owner.app_id)
    env.connect(sandbox.secret_key)
    configure(stripe_api, owner)
    answer = stripe_api.put("/api/v1/flows", json=flows_doc(OFFERS), headers=owner.headers)
    assert answer.status_code == 200, answer.text
    who = make_paying_customer()
    subs = [
        stripe_client.v1.subscriptions.create(
            {"customer": who.id, "items": [{"price": make_price(1000 + i).id}]}
        ).id
        for i in range(4)
    ]
    stripe_client.v1.subscriptions.cancel(subs[3])
    return {"env": env, "subs": subs}


def _accept(api: TestClient, body: dict[str, Any], offer_id: str) -> dict[str, Any]:
    response = api.post("/precancel", json=body)
    assert response.status_code == 200, response.text
    token = response.json()["url"].rsplit("/c/", 1)[1]
    csrf = api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    api.post(
        f"/c/{token}/reason", json={"reason_id": "not_using", "csrf_token": csrf}, headers=JSON
    )
    done = api.post(
        f"/c/{token}/accept", json={"offer_id": offer_id, "csrf_token": csrf}, headers=JSON
    )
    assert done.status_code == 200, done.text
    return dict(done.json())


def _paused(client: stripe.StripeClient, sub_id: str) -> str | None:
    pause = retrieve(client, sub_id).get("pause_collection")
    return pause.get("behavior") if isinstance(pause, dict) else None


@pytest.mark.parametrize(
    ("offer_id", "flag", "behavior"),
    [
        ("pause_1w", "pause_all_subscriptions", "void"),
        ("free_1w", "extend_all_subscriptions", "mark_uncollectible"),
    ],
)
def test_a_signed_all_subscriptions_flag_applies_the_offer_to_every_active_subscription(
    stripe_api, owner, stripe_client, customer, offer_id, flag, behavior
):
    subs = customer["subs"]
    token = trust.sign_fields(owner.app_secret, subs[0], {flag: True}, int(time.time()))
    body = precancel_body(owner, subscription_id=subs[0], signed_fields=token)
    answer = _accept(stripe_api, body, offer_id)
    assert answer["outcome"] == "saved"
    customer["env"].run_jobs()
    assert [_paused(stripe_client, s) for s in subs[:3]] == [behavior] * 3
    assert retrieve(stripe_client, subs[3])["status"] == "canceled"
    assert _paused(stripe_client, subs[3]) is None
    [action] = stripe_api.get("/api/v1/billing/actions", headers=owner.headers).json()["data"]
    assert action["status"] == "applied"
    assert sorted(action["result"]["subscriptions"]) == sorted(subs[:3])


def test_the_flag_for_the_other_offer_type_changes_nothing_more(
    stripe_api, owner, stripe_client, customer
):
    subs = customer["subs"]
    token = trust.sign_fields(
        owner.app_secret, subs[0], {"extend_all_subscriptions": True}, int(time.time())
    )
    _accept(
        stripe_api, precancel_body(owner, subscription_id=subs[0], signed_fields=token), "pause_1w"
    )
    customer["env"].run_jobs()
    assert [_paused(stripe_client, s) for s in subs[:3]] == ["void", None, None]


def test_an_unsigned_flag_counts_only_with_the_apps_opt_in(
    stripe_api, owner, stripe_client, customer
):
    subs = customer["subs"]
    body = precancel_body(owner, subscription_id=subs[0], pause_all_subscriptions=True)
    _accept(stripe_api, body, "pause_1w")
    customer["env"].run_jobs()
    assert [_paused(stripe_client, s) for s in subs[:3]] == ["void", None, None]

    configure(stripe_api, owner, allow_unsigned_targeting=True)
    body = precancel_body(owner, subscription_id=subs[1], custom={"pause_all_subscriptions": True})
    _accept(stripe_api, body, "pause_1w")
    customer["env"].run_jobs()
    assert [_paused(stripe_client, s) for s in subs[:3]] == ["void"] * 3
