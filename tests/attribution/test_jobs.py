"""Attribution's jobs through the real worker: the requested sync, a sync Stripe refuses (on the
data card, retried), the scheduled judging of what webhooks changed (no Stripe request), and a
save whose offer the billing-action job applied in the sandbox."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.attribution import repository
from stayflow.db import transaction
from stayflow.jobs.models import Job
from stayflow.jobs.worker import Worker
from stayflow.mirror import service as mirror_service
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.attribution.helpers import DAY, Attribution, counting
from tests.attribution.test_api import _subscription
from tests.billing.helpers import ENCRYPTOR, event, set_webhook_secret, sign
from tests.billing_actions.helpers import make_env
from tests.conftest import Tenant


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


def _state(att: Attribution) -> Any:
    with att.factory() as db:
        state = repository.get_state(db, att.env.app_pk)
        assert state is not None
        db.expunge(state)
        return state


def test_requested_sync_runs_as_a_job(
    stripe_api: TestClient, owner: Tenant, att: Attribution
) -> None:
    sub = _subscription(att.sandbox, 2000)
    session = att.session(sub, "saved")
    response = stripe_api.post("/api/v1/attribution/sync", headers=owner.headers)
    assert response.status_code == 202, response.text
    att.env.run_jobs()
    assert att.watch(session).mrr_kept == 2000
    card = stripe_api.get("/api/v1/attribution", headers=owner.headers).json()
    assert card["last_sync"]["outcome"] == "ok"
    assert card["last_sync"]["stripe_requests"] == 1


def test_a_sync_stripe_refuses_is_on_the_data_card_and_retried(
    stripe_api: TestClient, owner: Tenant, att: Attribution
) -> None:
    sub = _subscription(att.sandbox, 2000)
    att.session(sub, "saved")
    att.sandbox.inject_fault("error", status=500, method="GET", path="/v1/events", times=None)
    assert stripe_api.post("/api/v1/attribution/sync", headers=owner.headers).status_code == 202
    att.env.run_jobs(timeout=10)
    state = _state(att)
    assert state.last_sync_outcome == "failed"
    assert state.last_sync_error and "500" in state.last_sync_error
    with att.factory() as db:
        job = db.scalar(select(Job).where(Job.name == "attribution.sync"))
        assert job is not None and job.status == "queued" and job.attempts == 1  # retried later
        # Nothing of the failed sync was kept: the session is not on the watch list yet.
        assert repository.list_watches(db, att.env.app_pk) == []


def test_scheduled_judging_sees_webhook_changes_without_asking_stripe(att: Attribution) -> None:
    sub = _subscription(att.sandbox, 2000)
    session = att.session(sub, "saved")
    att.sync(days=1)
    assert att.watch(session).status == "pending"
    # A webhook brings the cancel into the mirror (as mirror.apply_event stores it).
    raw = att.sandbox.client().v1.subscriptions.update(sub, {"cancel_at_period_end": True})
    with transaction(att.factory) as db:
        mirror_service.store_subscription(
            db,
            att.env.app_pk,
            json.loads(json.dumps(raw.to_dict(), default=str)),
            version=att.sandbox.now(),
            source="webhook",
        )
        from stayflow.jobs import service as jobs

        jobs.enqueue(db, "attribution.judge_all", {})
    services = {**att.env.services(), "clock": att.now}  # stayflow's clock: the sandbox's
    worker = Worker(att.factory, services=services)
    with counting(att.sandbox) as requests:
        try:
            worker.run_until_idle(timeout=60)
        finally:
            worker.stop(timeout=1)
    assert requests == []
    watch = att.watch(session)
    assert (watch.status, watch.cause) == ("lapsed", "cancel_at_period_end")


def test_a_discount_offer_applied_by_the_billing_job(att: Attribution) -> None:
    """The real path: the offer accepted in the cancel flow, applied by billing.apply_offer."""
    client = att.sandbox.client()
    coupon = client.v1.coupons.create({"percent_off": 20, "duration": "forever"})
    sub = _subscription(att.sandbox, 9900, interval="year")
    att.env.set_flows([{"id": "off20", "type": "discount", "coupon": coupon.id}])
    session = att.env.accept(sub, "off20")
    att.env.run_jobs()
    assert att.env.action(session).status == "applied", att.env.job_errors()
    att.sync(days=1)
    watch = att.watch(session)
    assert (watch.offer_type, watch.mrr_at_session, watch.mrr_kept) == ("discount", 825, 660)
    # The session was stamped by the wall clock (microseconds), the sandbox counts whole
    # seconds: a day past the window, not its exact end.
    att.sync(days=30)
    assert att.watch(session).status == "validated"


def test_cash_from_an_invoice_webhook_without_a_sync(att: Attribution) -> None:
    """invoice.paid delivered by webhook (signed, stored once by the mirror's endpoint code) is
    counted as cash by the scheduled judging, with no Stripe request."""
    sub = _subscription(att.sandbox, 2000)
    session = att.session(sub, "saved")
    att.sync(days=1)
    att.sandbox.advance_clock(31 * DAY)  # the renewal is paid in Stripe; no sync runs
    client = att.sandbox.client()
    invoice = max(client.v1.invoices.list({"subscription": sub}).data, key=lambda i: i.created)
    assert invoice.status == "paid"
    secret = "whsec_attribution_test"
    set_webhook_secret(att.factory, att.env.app_id, secret, api_key=att.sandbox.secret_key)
    body = event(
        "evt_invoice_paid_1",
        "invoice.paid",
        json.loads(json.dumps(invoice.to_dict(), default=str)),
        att.sandbox.now(),
    )
    with transaction(att.factory) as db:
        mirror_service.receive_webhook(db, ENCRYPTOR, att.env.app_id, body, sign(body, secret))
    services = {**att.env.services(), "clock": att.now}
    with transaction(att.factory) as db:
        from stayflow.jobs import service as jobs

        jobs.enqueue(db, "attribution.judge_all", {})
    worker = Worker(att.factory, services=services)
    with counting(att.sandbox) as requests:
        try:
            worker.run_until_idle(timeout=60)
        finally:
            worker.stop(timeout=1)
    assert [r for r in requests if "invoices" in r or "events" in r] == []
    assert att.watch(session).cash_collected == 2000


def _managed_endpoint(att: Attribution, events: list[str], recorded: list[str] | None) -> str:
    """stayflow's own endpoint as an older release registered it (with that list of events)."""
    from stayflow.billing import repository as billing_repository

    endpoint = att.sandbox.client().v1.webhook_endpoints.create(
        {"url": "https://stayflow.example.com/stripe/webhooks/x", "enabled_events": events}  # type: ignore[typeddict-item]
    )
    with transaction(att.factory) as db:
        conn = billing_repository.get_connection_by_app_pk(db, att.env.app_pk)
        assert conn is not None
        conn.webhook_endpoint_id = endpoint.id
        conn.webhook_secret_encrypted = ENCRYPTOR.encrypt(str(endpoint.secret))
        conn.webhook_managed = True
        conn.webhook_events = recorded
    return endpoint.id


def test_an_outdated_managed_endpoint_is_brought_up_to_date_by_the_next_sync(
    stripe_api: TestClient, owner: Tenant, att: Attribution
) -> None:
    from stayflow.billing import repository as billing_repository
    from stayflow.billing.service import WEBHOOK_EVENTS

    old = [e for e in WEBHOOK_EVENTS if not e.startswith("customer.discount.")]
    endpoint_id = _managed_endpoint(att, old, None)  # made before webhook_events was kept
    with counting(att.sandbox) as requests:
        assert stripe_api.post("/api/v1/attribution/sync", headers=owner.headers).status_code == 202
        att.env.run_jobs()
    assert requests.count(f"POST /v1/webhook_endpoints/{endpoint_id}") == 1
    stripe_side = att.sandbox.client().v1.webhook_endpoints.retrieve(endpoint_id)
    assert stripe_side.enabled_events == WEBHOOK_EVENTS
    with att.factory() as db:
        conn = billing_repository.get_connection_by_app_pk(db, att.env.app_pk)
        assert conn is not None and conn.webhook_events == WEBHOOK_EVENTS
    card = stripe_api.get("/api/v1/attribution", headers=owner.headers).json()
    assert card["last_sync"]["stripe_requests"] == len(requests)  # the POST is counted
    # Up to date now: the next sync leaves the endpoint alone.
    att.sandbox.advance_clock(120)
    with counting(att.sandbox) as requests:
        assert stripe_api.post("/api/v1/attribution/sync", headers=owner.headers).status_code == 202
        att.env.run_jobs()
    assert not [r for r in requests if "webhook_endpoints" in r]


def test_an_endpoint_the_business_made_is_not_changed(
    stripe_api: TestClient, owner: Tenant, att: Attribution
) -> None:
    from stayflow.billing import repository as billing_repository

    endpoint_id = _managed_endpoint(att, ["invoice.paid"], None)
    with transaction(att.factory) as db:
        conn = billing_repository.get_connection_by_app_pk(db, att.env.app_pk)
        assert conn is not None
        conn.webhook_managed = False  # its secret was given to us: the business's endpoint
    with counting(att.sandbox) as requests:
        assert stripe_api.post("/api/v1/attribution/sync", headers=owner.headers).status_code == 202
        att.env.run_jobs()
    assert not [r for r in requests if "webhook_endpoints" in r]
    stripe_side = att.sandbox.client().v1.webhook_endpoints.retrieve(endpoint_id)
    assert stripe_side.enabled_events == ["invoice.paid"]


def test_a_customer_discount_removed_by_webhook_is_judged_without_asking_stripe(
    att: Attribution,
) -> None:
    """customer.discount.deleted delivered by webhook (signed, stored once, applied by
    mirror.apply_event) changes the customer's row; the scheduled judging re-counts MRR."""
    client = att.sandbox.client()
    coupon = client.v1.coupons.create({"percent_off": 10, "duration": "forever"})
    sub = _subscription(att.sandbox, 2000)
    customer = str(client.v1.subscriptions.retrieve(sub).customer)
    client.v1.customers.update(
        customer,
        {"coupon": coupon.id},  # type: ignore[typeddict-unknown-key]
        {"stripe_version": "2025-02-24.acacia"},
    )
    session = att.session(sub, "saved")
    att.sync(days=1)
    assert att.watch(session).mrr_kept == 1800
    removed = client.v1.customers.delete_discount(customer)
    secret = "whsec_attribution_test"
    set_webhook_secret(att.factory, att.env.app_id, secret, api_key=att.sandbox.secret_key)
    obj = {k: v for k, v in json.loads(json.dumps(removed.to_dict(), default=str)).items()}
    obj.pop("deleted", None)
    body = event("evt_discount_deleted_1", "customer.discount.deleted", obj, att.sandbox.now())
    with transaction(att.factory) as db:
        mirror_service.receive_webhook(db, ENCRYPTOR, att.env.app_id, body, sign(body, secret))
        from stayflow.jobs import service as jobs

        jobs.enqueue(db, "attribution.judge_all", {})
    worker = Worker(att.factory, services={**att.env.services(), "clock": att.now})
    with counting(att.sandbox) as requests:
        try:
            worker.run_until_idle(timeout=60)
        finally:
            worker.stop(timeout=1)
    assert requests == []
    with att.factory() as db:
        from stayflow.mirror.models import StripeEvent

        stored = db.scalar(
            select(StripeEvent).where(StripeEvent.event_id == "evt_discount_deleted_1")
        )
        assert stored is not None and stored.outcome == "applied"
    assert att.watch(session).mrr_kept == 2000


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_sync_waiting_on_stripe_holds_no_lock_on_the_state_row(
    att: Attribution, owner: Tenant
) -> None:
    """PostgreSQL: while a sync waits on Stripe, what a second sync of the app (or the first
    one's failure record, in its own transaction) does first, get or create the app's state
    row, must not wait on it. It did, with no end, while the sync created that row inside its
    own long transaction: ``lock_timeout`` turns such a wait into an error here."""
    from sqlalchemy import text

    from stayflow.jobs import service as jobs

    sub = _subscription(att.sandbox, 2000)
    att.session(sub, "saved")
    with att.factory() as db:
        assert repository.get_state(db, att.env.app_pk) is None  # the app's first sync
    att.sandbox.inject_fault("latency", seconds=6, method="GET", path="/v1/events", times=1)
    with transaction(att.factory) as db:
        jobs.enqueue(db, "attribution.sync", {}, app_pk=att.env.app_pk)
    worker = Worker(att.factory, services={**att.env.services(), "clock": att.now})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run_until_idle(timeout=60)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    with counting(att.sandbox) as requests:
        thread = threading.Thread(target=run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while "GET /v1/events" not in requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "GET /v1/events" in requests, "the sync never asked Stripe"
            # The sync is now waiting on Stripe (6 s), inside its transaction.
            with transaction(att.factory) as db:
                db.execute(text("SET LOCAL lock_timeout = '1s'"))
                state = repository.get_or_create_state(db, att.env.app_pk)
                assert state.app_pk == att.env.app_pk
        finally:
            thread.join(timeout=90)
            worker.stop(timeout=1)
    assert not thread.is_alive() and errors == []
    assert _state(att).last_sync_outcome == "ok"
