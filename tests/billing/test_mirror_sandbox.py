"""The mirror fed by the sandbox: signed webhook deliveries, live refreshes, backfill."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from stayflow.billing.stripe.client import STRIPE_CALLS
from stayflow.cli.main import main
from stayflow.mirror.models import MirrorBackfill, MirrorSubscription, StripeEvent
from stayflow.sandbox import Sandbox
from tests.billing.helpers import (
    app_pk,
    connect,
    count,
    enrich,
    event,
    run_jobs,
    sign,
)
from tests.conftest import TEST_SECRET_KEY


def _wait_delivered(sandbox: Sandbox, at_least: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = sandbox.webhook_deliveries()
        done = [d for d in deliveries if d["status"] == "delivered"]
        if len(done) >= at_least and all(d["status"] != "pending" for d in deliveries):
            return deliveries
        time.sleep(0.1)
    raise AssertionError(f"deliveries did not finish: {sandbox.webhook_deliveries()}")


def _row(session_factory, sub_id):
    with session_factory() as db:
        return db.scalar(
            select(MirrorSubscription).where(MirrorSubscription.subscription_id == sub_id)
        )


def test_sandbox_signed_webhooks_keep_the_mirror_current(
    served, owner, sandbox, stripe_client, make_paying_customer, make_price, session_factory
):
    base_url, settings = served
    api = httpx.Client(base_url=base_url, timeout=30)
    status = connect(api, owner, sandbox.secret_key)
    assert status["webhooks"]["managed"]

    customer = make_paying_customer(email="ada@example.com")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price(name="Pro").id}]}
    )
    _wait_delivered(sandbox, at_least=2)
    run_jobs(session_factory, settings)
    row = _row(session_factory, sub.id)
    assert row is not None and row.status == "active" and row.source in ("webhook", "live")

    stripe_client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    stripe_client.v1.customers.update(customer.id, {"email": "ada@new.example.com"})
    _wait_delivered(sandbox, at_least=4)
    run_jobs(session_factory, settings)
    assert _row(session_factory, sub.id).cancel_at_period_end is True

    # Fresh from webhooks: enrichment reads the mirror and calls Stripe zero times.
    before = STRIPE_CALLS.value
    fields = enrich(session_factory, settings, owner.app_id, sub.id)
    assert STRIPE_CALLS.value == before
    assert fields["enrichment.source"] == "mirror"
    assert fields["subscription.cancel_at_period_end"] is True
    assert fields["subscription.customer.email"] == "ada@new.example.com"
    assert fields["subscription.plan.product.name"] == "Pro"

    stripe_client.v1.subscriptions.cancel(sub.id)
    _wait_delivered(sandbox, at_least=5)
    run_jobs(session_factory, settings)
    assert _row(session_factory, sub.id).status == "canceled"

    # Every event the sandbox delivered was stored once, and every one was handled.
    with session_factory() as db:
        stored = db.scalars(select(StripeEvent)).all()
    delivered = {d["event"] for d in sandbox.webhook_deliveries() if d["status"] == "delivered"}
    assert {e.event_id for e in stored} == delivered
    assert all(e.handled_at is not None for e in stored)


def test_same_second_events_out_of_order_are_settled_by_one_live_read(
    stripe_api,
    owner,
    sandbox,
    stripe_client,
    make_paying_customer,
    make_price,
    session_factory,
    stripe_settings,
    client,
):
    secret = "whsec_given_" + "g" * 24
    connect(stripe_api, owner, sandbox.secret_key, webhook_secret=secret)
    customer = make_paying_customer()
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price().id}]}
    )
    stripe_client.v1.subscriptions.update(sub.id, {"metadata": {"step": "2"}})
    truth = stripe_client.v1.subscriptions.retrieve(sub.id)
    raw = json.loads(truth.last_response.body)
    older = raw | {"metadata": {"step": "1"}}
    newer = raw | {"metadata": {"step": "2"}}
    for payload in (
        event("evt_n", "customer.subscription.updated", newer, 500),
        event("evt_o", "customer.subscription.updated", older, 500),  # same second, older
    ):
        response = stripe_api.post(
            f"/stripe/webhooks/{owner.app_id}",
            content=payload,
            headers={"Stripe-Signature": sign(payload, secret)},
        )
        assert response.status_code == 200
    run_jobs(session_factory, stripe_settings)
    row = _row(session_factory, sub.id)
    assert row.raw["metadata"] == {"step": "2"}
    assert row.source == "live"


@pytest.mark.parametrize("via", ["job"])
def test_backfill_job_through_the_admin_api(
    stripe_api,
    owner,
    sandbox,
    stripe_client,
    make_paying_customer,
    make_price,
    session_factory,
    stripe_settings,
    via,
):
    connect(stripe_api, owner, sandbox.secret_key)
    customer = make_paying_customer()
    prices = [make_price(name="A"), make_price(name="B", interval="year")]
    ids = [
        stripe_client.v1.subscriptions.create(
            {
                "customer": customer.id,
                "items": [{"price": prices[i % 2].id}],
                "trial_period_days": 7,
            }
        ).id
        for i in range(230)
    ]
    stripe_client.v1.subscriptions.cancel(ids[0])
    started = stripe_api.post("/api/v1/billing/stripe/backfill", json={}, headers=owner.headers)
    assert started.status_code == 202, started.text
    run_jobs(session_factory, stripe_settings)
    state = stripe_api.get("/api/v1/billing/stripe/backfill", headers=owner.headers).json()
    assert state["status"] == "done" and state["subscriptions"] == 230 and state["pages"] == 3
    pk = app_pk(session_factory, owner.app_id)
    assert count(session_factory, MirrorSubscription, MirrorSubscription.app_pk == pk) == 230
    assert _row(session_factory, ids[0]).status == "canceled"  # status=all
    # Backfilled rows are fresh: enrichment needs no Stripe call, product names included.
    before = STRIPE_CALLS.value
    fields = enrich(session_factory, stripe_settings, owner.app_id, ids[1])
    assert STRIPE_CALLS.value == before
    assert fields["enrichment.source"] == "mirror"
    assert fields["subscription.plan.product.name"] == "B"
    assert fields["subscription.plan.interval"] == "year"


# --- 5,000 subscriptions, through the CLI, interrupted and resumed ----------------------------


@pytest.fixture(scope="module")
def big_sandbox():
    """A sandbox of its own holding 5,000 subscriptions (made once for both databases)."""
    with Sandbox.start() as sb:
        client = sb.client()
        prices = [
            client.v1.prices.create(
                {
                    "currency": cur,
                    "unit_amount": amount,
                    "recurring": {"interval": interval},
                    "product_data": {"name": name},
                }
            ).id
            for cur, amount, interval, name in (
                ("usd", 999, "month", "Monthly"),
                ("usd", 9900, "year", "Yearly"),
                ("jpy", 1200, "month", "Yen"),
            )
        ]
        # A customer pays in one currency: 16 customers per price.
        customers = [
            client.v1.customers.create({"email": f"c{i}@example.com"}).id for i in range(48)
        ]
        http = httpx.Client(base_url=sb.url, headers={"Authorization": f"Bearer {sb.secret_key}"})

        def make(i: int) -> None:
            answer = http.post(
                "/v1/subscriptions",
                data={
                    "customer": customers[(i % 3) * 16 + (i // 3) % 16],
                    "items[0][price]": prices[i % 3],
                    "trial_period_days": "30",
                },
            )
            assert answer.status_code == 200, answer.text

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(make, range(5000)))
        http.close()
        yield sb


def test_cli_backfill_of_5000_subscriptions_is_resumable(
    big_sandbox, owner, settings, session_factory, database_url, monkeypatch
):
    from fastapi.testclient import TestClient

    from stayflow.app import create_app

    big_settings = settings.model_copy(update={"stripe_api_base": big_sandbox.url})
    with TestClient(create_app(big_settings)) as api:
        connect(api, owner, big_sandbox.secret_key, webhook_secret="whsec_big_" + "b" * 24)
    monkeypatch.setenv("STAYFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("STAYFLOW_STRIPE_API_BASE", big_sandbox.url)
    runner = CliRunner()
    pk = app_pk(session_factory, owner.app_id)

    first = runner.invoke(main, ["stripe", "backfill", "--app", owner.app_id, "--max-pages", "20"])
    assert first.exit_code == 0, first.output
    assert count(session_factory, MirrorSubscription, MirrorSubscription.app_pk == pk) == 2000

    # Stripe fails every try of the next page: the command stops and says how to go on.
    with big_sandbox.faulty("error", status=500, method="GET", path="/v1/subscriptions", times=3):
        failed = runner.invoke(main, ["stripe", "backfill", "--app", owner.app_id])
    assert failed.exit_code != 0
    assert "run the command again to resume" in failed.output
    assert count(session_factory, MirrorSubscription, MirrorSubscription.app_pk == pk) == 2000

    resumed = runner.invoke(main, ["stripe", "backfill", "--app", owner.app_id])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming after 2000 subscriptions" in resumed.output
    assert "mirror backfilled: 5000 subscriptions" in resumed.output
    assert count(session_factory, MirrorSubscription, MirrorSubscription.app_pk == pk) == 5000
    with session_factory() as db:
        state = db.scalar(select(MirrorBackfill).where(MirrorBackfill.app_pk == pk))
        currencies = set(db.scalars(select(MirrorSubscription.currency).distinct()))
    assert state.status == "done" and state.subscriptions == 5000 and state.pages == 50
    assert currencies == {"usd", "jpy"}

    # Running it again after it finished starts over and changes nothing.
    again = runner.invoke(main, ["stripe", "backfill", "--app", owner.app_id])
    assert again.exit_code == 0, again.output
    assert count(session_factory, MirrorSubscription, MirrorSubscription.app_pk == pk) == 5000
