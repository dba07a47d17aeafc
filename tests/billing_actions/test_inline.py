"""The request tries the action at once: the subscriber normally gets "done"; on a transient
Stripe failure "processing", and the worker finishes the job later, once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions.config import action_settings
from stayflow.billing.actions.plans import discount_coupons
from stayflow.jobs.models import QUEUED, SUCCEEDED, Job
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing_actions.helpers import Env, flows_doc, make_env, retrieve
from tests.cancel_flow.helpers import configure, start_session
from tests.conftest import Tenant

JSON = {"Accept": "application/json"}


@pytest.fixture
def short_inline_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STAYFLOW_BILLING_ACTION_INLINE_TIMEOUT", "0.5")
    action_settings.cache_clear()
    yield
    action_settings.cache_clear()


@pytest.fixture
def setup(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
    short_inline_timeout: None,
) -> tuple[Env, str, str]:
    env = make_env(session_factory, stripe_settings, owner.app_id)
    env.connect(sandbox.secret_key, cancel={"at_period_end": False})
    coupon = stripe_client.v1.coupons.create({"percent_off": 15, "duration": "once"}).id
    configure(stripe_api, owner)
    answer = stripe_api.put(
        "/api/v1/flows",
        json=flows_doc([{"id": "off", "type": "discount", "coupon": coupon}]),
        headers=owner.headers,
    )
    assert answer.status_code == 200, answer.text
    sub_id = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": make_price().id}]}
    ).id
    return env, sub_id, coupon


def _act(api: TestClient, owner: Tenant, sub_id: str, action: str, body: dict[str, Any]) -> Any:
    token = start_session(api, owner, subscription_id=sub_id)
    page = api.get(f"/c/{token}", headers=JSON).json()
    answer = api.post(
        f"/c/{token}/{action}", json={**body, "csrf_token": page["csrf_token"]}, headers=JSON
    )
    assert answer.status_code == 200, answer.text
    return token, page["csrf_token"], answer.json()


def test_accept_is_applied_within_the_request(
    setup: tuple[Env, str, str],
    stripe_api: TestClient,
    owner: Tenant,
    stripe_client: stripe.StripeClient,
) -> None:
    _, sub_id, coupon = setup
    token, csrf, body = _act(stripe_api, owner, sub_id, "accept", {"offer_id": "off"})
    assert body["outcome"] == "saved"
    assert body["billing"] == "done"
    # Applied before any worker ran.
    assert [c for _, c in discount_coupons(retrieve(stripe_client, sub_id))] == [coupon]
    again = stripe_api.post(
        f"/c/{token}/accept", json={"offer_id": "off", "csrf_token": csrf}, headers=JSON
    ).json()
    assert again["replayed"] is True
    assert again["billing"] == "done"


def test_transient_failure_says_processing_then_the_worker_finishes(
    setup: tuple[Env, str, str],
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    session_factory: sessionmaker[Session],
) -> None:
    env, sub_id, _ = setup
    sandbox.inject_fault("hang", seconds=2, method="DELETE", path=f"/v1/subscriptions/{sub_id}")
    _, _, body = _act(stripe_api, owner, sub_id, "cancel", {"reason_id": "too_expensive"})
    assert body["outcome"] == "canceled"
    assert body["billing"] == "processing"
    assert retrieve(stripe_client, sub_id)["status"] == "active"
    with session_factory() as db:
        job = db.scalar(select(Job).where(Job.name == "billing.cancel_subscription"))
        assert job is not None and job.status == QUEUED and job.attempts == 1
        db.execute(Job.__table__.update().values(run_at=job.created_at))
        db.commit()
    env.run_jobs()
    assert retrieve(stripe_client, sub_id)["status"] == "canceled"
    with session_factory() as db:
        job = db.scalar(select(Job).where(Job.name == "billing.cancel_subscription"))
        assert job is not None and job.status == SUCCEEDED and job.attempts == 2


@pytest.mark.parametrize(("interval", "shown"), [("month", ["off", "p"]), ("year", ["off"])])
def test_page_hides_a_pause_that_would_cover_a_renewal(
    setup: tuple[Env, str, str],
    stripe_api: TestClient,
    owner: Tenant,
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
    interval: str,
    shown: list[str],
) -> None:
    _, _, coupon = setup
    offers = [
        {"id": "off", "type": "discount", "coupon": coupon},
        {"id": "p", "type": "pause", "duration": 2, "interval": "month"},
    ]
    answer = stripe_api.put("/api/v1/flows", json=flows_doc(offers), headers=owner.headers)
    assert answer.status_code == 200, answer.text
    # The first invoice (trial end) is ten days away: a 2-month pause would void a whole year.
    sub_id = stripe_client.v1.subscriptions.create(
        {
            "customer": make_paying_customer().id,
            "items": [{"price": make_price(interval=interval).id}],
            "trial_period_days": 10,
        }
    ).id
    token = start_session(stripe_api, owner, subscription_id=sub_id)
    page = stripe_api.get(f"/c/{token}", headers=JSON).json()
    answer = stripe_api.post(
        f"/c/{token}/reason",
        json={"reason_id": "too_expensive", "csrf_token": page["csrf_token"]},
        headers=JSON,
    )
    assert answer.status_code == 200, answer.text
    assert [o["id"] for o in answer.json()["page"]["offers"]] == shown


def test_html_page_says_processing_without_a_button_that_sends_it_twice(
    setup: tuple[Env, str, str],
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
) -> None:
    _, sub_id, _ = setup
    sandbox.inject_fault("error", status=500, times=None, path="/v1/subscriptions/*")
    token = start_session(stripe_api, owner, subscription_id=sub_id)
    csrf = stripe_api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    answer = stripe_api.post(
        f"/c/{token}/cancel",
        data={"reason_id": "too_expensive", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 200, answer.text
    # It says what will happen and that nothing more is needed.
    assert "Your cancellation is on its way" in answer.text
    assert "no further charge will be made" in answer.text
    assert "You do not need to do anything else" in answer.text
    assert "<form" not in answer.text and "<button" not in answer.text
    confirmation = stripe_api.get(f"/c/{token}", headers=JSON).json()
    assert confirmation["step"] == "finished"
    sandbox.clear_faults()
    assert retrieve(stripe_client, sub_id)["status"] == "active"
    # Without a fault the same request redirects straight to the business's page.
    first = retrieve(stripe_client, sub_id)
    other = stripe_client.v1.subscriptions.create(
        {
            "customer": first["customer"],
            "items": [{"price": first["items"]["data"][0]["price"]["id"]}],
        }
    ).id
    token = start_session(stripe_api, owner, subscription_id=other)
    csrf = stripe_api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    done = stripe_api.post(
        f"/c/{token}/cancel",
        data={"reason_id": "too_expensive", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert retrieve(stripe_client, other)["status"] == "canceled"
