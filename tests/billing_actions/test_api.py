"""Offer configuration checked against Stripe when saved; failed actions in the admin API
and as events for outbound webhooks; tenancy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing_actions.helpers import Env, flows_doc, make_env, retrieve
from tests.conftest import STRANGER_HEADERS, Tenant


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


def _put(api: TestClient, tenant: Tenant, offers: list[dict[str, Any]]) -> Any:
    return api.put("/api/v1/flows", json=flows_doc(offers), headers=tenant.headers)


def test_discount_offer_needs_a_valid_coupon(
    env: Env, stripe_api: TestClient, owner: Tenant, stripe_client: stripe.StripeClient
) -> None:
    missing = _put(stripe_api, owner, [{"id": "off", "type": "discount", "coupon": "NOPE"}])
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"]["type"] == "invalid_offer"
    assert "coupon 'NOPE' does not exist" in missing.json()["error"]["message"]
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "once"}).id
    assert _put(stripe_api, owner, [{"id": "off", "type": "discount", "coupon": coupon}]).is_success
    # Unchanged offers are not checked again: a coupon deleted since does not block other edits.
    stripe_client.v1.coupons.delete(coupon)
    offers = [
        {"id": "off", "type": "discount", "coupon": coupon},
        {"id": "p", "type": "pause", "duration": 1},
    ]
    assert _put(stripe_api, owner, offers).is_success
    changed = stripe_api.put(
        "/api/v1/flows/offers/off",
        json={"type": "discount", "coupon": coupon, "headline": "Stay"},
        headers=owner.headers,
    )
    assert changed.status_code == 400
    assert "does not exist" in changed.json()["error"]["message"]


def test_plan_change_offer_needs_an_active_recurring_price(
    env: Env,
    stripe_api: TestClient,
    owner: Tenant,
    stripe_client: stripe.StripeClient,
    make_price: Callable[..., stripe.Price],
) -> None:
    archived = make_price(900)
    stripe_client.v1.prices.update(archived.id, {"active": False})
    answer = _put(stripe_api, owner, [{"id": "pc", "type": "plan_change", "price": archived.id}])
    assert answer.status_code == 400
    assert "archived" in answer.json()["error"]["message"]
    one_time = stripe_client.v1.prices.create(
        {"currency": "usd", "unit_amount": 500, "product_data": {"name": "Setup"}}
    )
    answer = _put(stripe_api, owner, [{"id": "pc", "type": "plan_change", "price": one_time.id}])
    assert answer.status_code == 400
    assert "not a recurring price" in answer.json()["error"]["message"]
    good = make_price(900)
    assert _put(
        stripe_api, owner, [{"id": "pc", "type": "plan_change", "price": good.id}]
    ).is_success


def test_not_connected_app_saves_offers_unchecked(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    stripe_api: TestClient,
    other: Tenant,
) -> None:
    answer = _put(stripe_api, other, [{"id": "off", "type": "discount", "coupon": "LATER"}])
    assert answer.status_code == 200, answer.text


def test_failed_action_in_admin_api_and_events(
    env: Env,
    stripe_api: TestClient,
    owner: Tenant,
    other: Tenant,
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "once"}).id
    env.set_flows([{"id": "off", "type": "discount", "coupon": coupon}])
    customer = make_paying_customer()
    subs = [
        stripe_client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": make_price().id}]}
        ).id
        for _ in range(2)
    ]
    applied = env.accept(subs[0], "off")
    env.run_jobs()
    stripe_client.v1.coupons.delete(coupon)
    failed = env.accept(subs[1], "off")
    env.run_jobs()

    listed = stripe_api.get("/api/v1/billing/actions?status=failed", headers=owner.headers)
    assert listed.status_code == 200
    (row,) = listed.json()["data"]
    assert row["session_id"] == failed
    assert row["status"] == "failed"
    assert row["action"] == "apply_offer"
    assert coupon in row["error"]
    one = stripe_api.get(f"/api/v1/billing/actions/{applied}", headers=owner.headers).json()
    assert one[0]["status"] == "applied"
    assert one[0]["result"]["subscriptions"][subs[0]]["discounts"] == [coupon]
    events = stripe_api.get("/api/v1/billing/events", headers=owner.headers).json()["data"]
    assert [(e["type"], e["data"]["session_id"]) for e in events] == [
        ("billing.action.succeeded", applied),
        ("billing.action.failed", failed),
        ("billing.offer.refused", failed),
    ]
    assert events[-1]["data"]["offer_id"] == "off"
    assert events[-1]["data"]["scope"] == "offer"
    assert (
        stripe_api.get(f"/api/v1/billing/actions/{applied}", headers=other.headers).status_code
        == 404
    )
    assert stripe_api.get("/api/v1/billing/events", headers=other.headers).json()["data"] == []
    assert stripe_api.get("/api/v1/billing/actions", headers=STRANGER_HEADERS).status_code == 401


def test_retries_running_out_fail_the_action_visibly(
    env: Env,
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    session_factory: sessionmaker[Session],
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    from sqlalchemy import update

    from stayflow.jobs.models import DEAD, Job

    env.connect(sandbox.secret_key, cancel={"at_period_end": True})
    sub_id = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": make_price().id}]}
    ).id
    session_id = env.cancel(sub_id)
    with session_factory() as db:
        db.execute(update(Job).values(max_attempts=2))
        db.commit()
    sandbox.inject_fault("error", status=503, method="POST", path="/v1/*", times=None)
    for _ in range(2):
        env.run_jobs()
        with session_factory() as db:  # skip the backoff wait
            db.execute(update(Job).where(Job.status == "queued").values(run_at=Job.created_at))
            db.commit()
    sandbox.clear_faults()
    with session_factory() as db:
        job = db.query(Job).one()
        assert (job.status, job.attempts) == (DEAD, 2)
    assert retrieve(stripe_client, sub_id)["cancel_at_period_end"] is False
    action = env.action(session_id)
    assert action.status == "failed"
    assert "gave up after retries" in (action.error or "")
    events = stripe_api.get("/api/v1/billing/events", headers=owner.headers).json()["data"]
    assert [e["type"] for e in events] == ["billing.action.failed"]


def test_discount_offer_by_promotion_code_is_checked_when_saved(
    env: Env, stripe_api: TestClient, owner: Tenant, stripe_client: stripe.StripeClient
) -> None:
    both = _put(
        stripe_api,
        owner,
        [{"id": "off", "type": "discount", "coupon": "A", "promotion_code": "promo_1"}],
    )
    assert both.status_code == 422
    assert "exactly one of coupon or promotion_code" in both.json()["error"]["message"]
    neither = _put(stripe_api, owner, [{"id": "off", "type": "discount"}])
    assert neither.status_code == 422
    missing = _put(stripe_api, owner, [{"id": "off", "type": "discount", "promotion_code": "x"}])
    assert missing.status_code == 400
    assert "promotion code 'x' does not exist" in missing.json()["error"]["message"]
    coupon = stripe_client.v1.coupons.create({"percent_off": 10, "duration": "once"}).id
    promo = stripe_client.v1.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon}, "active": False}
    ).id
    inactive = _put(stripe_api, owner, [{"id": "off", "type": "discount", "promotion_code": promo}])
    assert inactive.status_code == 400 and "is not active" in inactive.json()["error"]["message"]
    stripe_client.v1.promotion_codes.update(promo, {"active": True})
    ok = _put(stripe_api, owner, [{"id": "off", "type": "discount", "promotion_code": promo}])
    assert ok.status_code == 200, ok.text
