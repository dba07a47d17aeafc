"""Retry-After is honoured: the sandbox answers Stripe's 429 with the header, and the job
waits as long as it says before its next run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.provider import BillingBusy, BillingIdempotencyConflict
from stayflow.billing.stripe.actions import translate
from stayflow.db import utcnow
from stayflow.jobs.models import QUEUED, Job
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.billing_actions.helpers import make_env, retrieve
from tests.conftest import Tenant


def _stripe_error(call: Callable[[], object]) -> stripe.StripeError:
    try:
        call()
    except stripe.StripeError as exc:
        return exc
    raise AssertionError("the sandbox did not refuse the call")


def test_translation_keeps_retry_after_and_spots_idempotency_conflicts(sandbox: Sandbox) -> None:
    """Each error as the sandbox really answers it through the SDK (no hand-built errors)."""
    client = sandbox.client()
    sandbox.inject_fault("error", status=429, retry_after=7, times=1)
    limited = translate(_stripe_error(lambda: client.v1.customers.list()))
    assert isinstance(limited, BillingBusy) and limited.retry_after == 7.0

    # The same Idempotency-Key while its first request is still running: 409, retry later.
    sandbox.set_latency(2000)
    counter = sandbox.inject_fault("latency", seconds=0, path="/v1/*", times=None)
    options = {"idempotency_key": "busy-key"}
    first = threading.Thread(
        target=lambda: client.v1.customers.create({"email": "a@x.io"}, options)
    )
    first.start()
    for _ in range(400):  # until the sandbox holds the first (its event; bounded)
        if any(r["id"] == counter and r["hits"] for r in sandbox.faults()["rules"]):
            break
        threading.Event().wait(0.025)
    conflict = translate(
        _stripe_error(lambda: client.v1.customers.create({"email": "a@x.io"}, options))
    )
    first.join(30)
    sandbox.clear_faults()
    assert isinstance(conflict, BillingBusy) and conflict.retry_after is None

    # The same key again with different parameters: a conflict no retry can fix.
    reused = translate(
        _stripe_error(lambda: client.v1.customers.create({"email": "b@x.io"}, options))
    )
    assert isinstance(reused, BillingIdempotencyConflict)


def test_job_waits_as_long_as_retry_after_says(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    owner: Tenant,
    sandbox: Sandbox,
    stripe_client: stripe.StripeClient,
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
) -> None:
    env = make_env(session_factory, stripe_settings, owner.app_id)
    env.connect(sandbox.secret_key)
    env.set_flows([])
    customer = make_paying_customer()
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price(1500).id}]}
    )
    sandbox.inject_fault("error", status=429, retry_after=30, times=None, path="/v1/subscriptions*")
    session_id = env.cancel(sub.id)
    before = utcnow()
    env.run_jobs()
    after = utcnow()
    with session_factory() as db:
        job = db.scalar(select(Job).where(Job.name == "billing.cancel_subscription"))
        assert job is not None
        assert job.status == QUEUED and job.attempts == 1
        # The refusal came between `before` and `after`; the next run is 30 s after it
        # (bounds that hold however long the run took, not a guess at how long it takes).
        assert before + timedelta(seconds=30) <= job.run_at <= after + timedelta(seconds=30)
    assert env.action(session_id).status == "pending"
    assert "rate limit" in (env.action(session_id).error or "").lower()
    sandbox.clear_faults()
    assert retrieve(stripe_client, sub.id)["status"] == "active"
