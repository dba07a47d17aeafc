"""One owner per attempt, and the fewest Stripe calls on the subscriber's path.

The page claims the billing job in the transaction that writes it, so the in-process worker,
woken by that very commit, finds nothing to take; a request that does not own the attempt
(a double click) waits for the owner's result. Stripe calls are counted at the sandbox: a
zero-second latency rule matching every API path counts each request it sees.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.app import create_app
from stayflow.apps.models import App
from stayflow.billing import repository as billing_repository
from stayflow.billing.actions import inline
from stayflow.billing.actions.plans import discount_coupons
from stayflow.db import transaction, utcnow
from stayflow.jobs.models import Job
from stayflow.jobs.service import ENQUEUED_FLAG
from stayflow.jobs.worker import ClaimedJob, Worker
from stayflow.mirror.service import store_live
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing.helpers import ENCRYPTOR
from tests.billing_actions.helpers import flows_doc, retrieve
from tests.cancel_flow.helpers import configure, start_session
from tests.conftest import Tenant

JSON = {"Accept": "application/json"}
REASON = {"reason_id": "too_expensive"}


@pytest.fixture
def api_and_worker(stripe_settings: Settings) -> Iterator[tuple[TestClient, Worker, list[int]]]:
    """The app with a real in-process worker (as ``stayflow serve`` runs it), which also
    tries to claim due jobs right when a transaction that enqueued one commits: the moment
    it used to win the race against the request."""
    app = create_app(stripe_settings)
    factory: sessionmaker[Session] = app.state.session_factory
    claimed: list[int] = []
    worker: Worker | None = None

    def on_commit(session: Session) -> None:
        # Registered before the worker's own listener, so the flag is still there.
        if worker is not None and session.info.get(ENQUEUED_FLAG):
            jobs = worker.claim(10)
            claimed.extend(j.id for j in jobs if j.name.startswith("billing."))
            for job in jobs:
                worker.execute(job)

    event.listen(factory, "after_commit", on_commit)
    worker = Worker(factory, services=app.state.services, poll_interval=0.05)
    worker.start()
    try:
        with TestClient(app) as client:
            yield client, worker, claimed
    finally:
        worker.stop(timeout=10)
        event.remove(factory, "after_commit", on_commit)


def _connect(factory: sessionmaker[Session], app_id: str, key: str, **setup: Any) -> int:
    from stayflow.apps.repository import get_app_by_public_id

    with transaction(factory) as db:
        app = get_app_by_public_id(db, app_id)
        assert app is not None
        conn = billing_repository.get_or_create_connection(db, app)
        conn.api_key_encrypted = ENCRYPTOR.encrypt(key)
        conn.connected_at = utcnow()
        conn.setup = {"offers": True, "cancels": True, **setup}
        return app.id


def _flows(api: TestClient, owner: Tenant, offers: list[dict[str, Any]]) -> None:
    configure(api, owner)
    answer = api.put("/api/v1/flows", json=flows_doc(offers), headers=owner.headers)
    assert answer.status_code == 200, answer.text


def _count_calls(sandbox: Sandbox) -> Callable[[], int]:
    sandbox.inject_fault("latency", seconds=0, times=None, path="/v1/*")

    def count() -> int:
        return sum(int(r["hits"]) for r in sandbox.faults()["rules"])

    return count


def test_the_request_owns_the_attempt_while_the_worker_runs(
    api_and_worker: tuple[TestClient, Worker, list[int]],
    owner: Tenant,
    sandbox: Sandbox,
    stripe_settings: Settings,
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    api, _, claimed = api_and_worker
    factory = api.app.state.session_factory  # type: ignore[attr-defined]
    _connect(factory, owner.app_id, sandbox.secret_key, cancel={"at_period_end": True})
    coupon = stripe_client.v1.coupons.create({"percent_off": 20, "duration": "forever"}).id
    _flows(api, owner, [{"id": "off", "type": "discount", "coupon": coupon}])
    price = make_price().id
    customer = make_paying_customer().id
    answers = []
    for index in range(6):
        sub_id = stripe_client.v1.subscriptions.create(
            {"customer": customer, "items": [{"price": price}]}
        ).id
        token = start_session(api, owner, subscription_id=sub_id)
        csrf = api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
        action, body = ("accept", {"offer_id": "off"}) if index % 2 else ("cancel", REASON)
        answer = api.post(f"/c/{token}/{action}", json={**body, "csrf_token": csrf}, headers=JSON)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json()["billing"])
        state = retrieve(stripe_client, sub_id)
        if action == "accept":
            assert [c for _, c in discount_coupons(state)] == [coupon]
        else:
            assert state["cancel_at_period_end"] is True
    assert answers == ["done"] * 6
    # The worker was woken by every outcome's commit and looked at once: nothing to take.
    assert claimed == []
    with factory() as db:
        owners = db.scalars(select(Job.locked_by).where(Job.name.like("billing.%"))).all()
        assert owners == [None] * 6  # finished: the lease is released


def test_a_double_click_waits_for_the_first_attempt(
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    session_factory: sessionmaker[Session],
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    _connect(session_factory, owner.app_id, sandbox.secret_key)
    coupon = stripe_client.v1.coupons.create({"percent_off": 20, "duration": "forever"}).id
    _flows(stripe_api, owner, [{"id": "off", "type": "discount", "coupon": coupon}])
    sub_id = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": make_price().id}]}
    ).id
    token = start_session(stripe_api, owner, subscription_id=sub_id)
    csrf = stripe_api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    started, release = threading.Event(), threading.Event()
    second: dict[str, Any] = {}

    def hold(job: ClaimedJob) -> None:
        started.set()
        assert release.wait(30)

    def click_again() -> None:
        assert started.wait(30)
        again = stripe_api.post(
            f"/c/{token}/accept", json={"offer_id": "off", "csrf_token": csrf}, headers=JSON
        )
        second.update(again.json())

    def waiting() -> None:
        # The second click found the first's attempt running: let the first go on.
        release.set()

    inline.BEFORE_ATTEMPT.append(hold)
    inline.WAITING.append(waiting)
    try:
        thread = threading.Thread(target=click_again)
        thread.start()
        first = stripe_api.post(
            f"/c/{token}/accept", json={"offer_id": "off", "csrf_token": csrf}, headers=JSON
        ).json()
        thread.join(30)
    finally:
        inline.BEFORE_ATTEMPT.remove(hold)
        inline.WAITING.remove(waiting)
    assert first["billing"] == "done"
    assert second["replayed"] is True and second["billing"] == "done"
    assert [c for _, c in discount_coupons(retrieve(stripe_client, sub_id))] == [coupon]


def _fresh_mirror(factory: sessionmaker[Session], app_pk: int, raw: dict[str, Any]) -> None:
    """The mirror as webhooks keep it: an endpoint set up an hour ago, the row just stored."""
    with transaction(factory) as db:
        app = db.get(App, app_pk)
        assert app is not None
        conn = billing_repository.get_or_create_connection(db, app)
        conn.webhook_secret_encrypted = ENCRYPTOR.encrypt("whsec_test")
        conn.webhook_configured_at = utcnow() - timedelta(hours=1)
        # Stored as Stripe's JSON (the SDK's dict holds Decimals for *_decimal fields).
        store_live(db, app_pk, json.loads(json.dumps(raw, default=str)))


@pytest.mark.parametrize("mirror", [False, True], ids=["live", "mirror"])
@pytest.mark.parametrize("action", ["discount", "pause", "cancel_at_period_end", "cancel_now"])
def test_stripe_calls_per_action(
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    session_factory: sessionmaker[Session],
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
    action: str,
    mirror: bool,
) -> None:
    app_pk = _connect(
        session_factory,
        owner.app_id,
        sandbox.secret_key,
        cancel={"at_period_end": action == "cancel_at_period_end"},
    )
    coupon = stripe_client.v1.coupons.create(
        {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    ).id
    _flows(
        stripe_api,
        owner,
        [
            {"id": "off", "type": "discount", "coupon": coupon},
            {"id": "p", "type": "pause", "duration": 1, "interval": "month"},
        ],
    )
    sub_id = stripe_client.v1.subscriptions.create(
        {"customer": make_paying_customer().id, "items": [{"price": make_price().id}]}
    ).id
    if mirror:
        _fresh_mirror(session_factory, app_pk, retrieve(stripe_client, sub_id))
    token = start_session(stripe_api, owner, subscription_id=sub_id)
    csrf = stripe_api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    calls = _count_calls(sandbox)
    if action in ("discount", "pause"):
        offer = "off" if action == "discount" else "p"
        body = {"offer_id": offer, "csrf_token": csrf}
        answer = stripe_api.post(f"/c/{token}/accept", json=body, headers=JSON)
    else:
        answer = stripe_api.post(
            f"/c/{token}/cancel", json={**REASON, "csrf_token": csrf}, headers=JSON
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["billing"] == "done"
    made = calls()
    # A write, plus a read of the subscription unless the mirror is fresh.
    assert made == (1 if mirror else 2)
    state = retrieve(stripe_client, sub_id)
    if action == "discount":
        assert [c for _, c in discount_coupons(state)] == [coupon]
    elif action == "pause":
        assert state["pause_collection"]["behavior"] == "void"
    elif action == "cancel_at_period_end":
        assert state["cancel_at_period_end"] is True
    else:
        assert state["status"] == "canceled"


def test_a_pause_over_an_annual_renewal_is_still_refused_from_the_mirror(
    stripe_api: TestClient,
    owner: Tenant,
    sandbox: Sandbox,
    session_factory: sessionmaker[Session],
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    app_pk = _connect(session_factory, owner.app_id, sandbox.secret_key)
    _flows(stripe_api, owner, [{"id": "p", "type": "pause", "duration": 2, "interval": "month"}])
    sub_id = stripe_client.v1.subscriptions.create(
        {
            "customer": make_paying_customer().id,
            "items": [{"price": make_price(interval="year").id}],
            "trial_period_days": 10,
        }
    ).id
    _fresh_mirror(session_factory, app_pk, retrieve(stripe_client, sub_id))
    token = start_session(stripe_api, owner, subscription_id=sub_id)
    csrf = stripe_api.get(f"/c/{token}", headers=JSON).json()["csrf_token"]
    calls = _count_calls(sandbox)
    answer = stripe_api.post(
        f"/c/{token}/accept", json={"offer_id": "p", "csrf_token": csrf}, headers=JSON
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["billing"] == "refused"
    assert calls() == 0
    assert retrieve(stripe_client, sub_id)["pause_collection"] is None
