"""Retry-After is honoured: the sandbox answers Stripe's 429 with the header, and the job
waits as long as it says before its next run."""

from __future__ import annotations

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


def test_translation_keeps_retry_after_and_spots_idempotency_conflicts() -> None:
    limited = translate(
        stripe.RateLimitError("slow down", http_status=429, headers={"retry-after": "7"})
    )
    assert isinstance(limited, BillingBusy) and limited.retry_after == 7.0
    conflict = translate(stripe.APIError("in use", http_status=409, headers={}))
    assert isinstance(conflict, BillingBusy) and conflict.retry_after is None
    reused = translate(stripe.IdempotencyError("Keys for idempotent requests ...", http_status=400))
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
    env.run_jobs()
    with session_factory() as db:
        job = db.scalar(select(Job).where(Job.name == "billing.cancel_subscription"))
        assert job is not None
        assert job.status == QUEUED and job.attempts == 1
        wait = job.run_at - utcnow()
        assert timedelta(seconds=25) < wait <= timedelta(seconds=30)
    assert env.action(session_id).status == "pending"
    assert "rate limit" in (env.action(session_id).error or "").lower()
    sandbox.clear_faults()
    assert retrieve(stripe_client, sub.id)["status"] == "active"
