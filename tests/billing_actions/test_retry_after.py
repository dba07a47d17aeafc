"""Retry-After is honoured. The sandbox's 429s carry no Retry-After header, so this is the one
fault made here by hand: a real ``stripe.RateLimitError`` with the header (translation), and
a writer registered in WRITER_FACTORIES that answers with it (the job's next run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions import service
from stayflow.billing.provider import BillingBusy, BillingIdempotencyConflict
from stayflow.billing.stripe.actions import translate
from stayflow.db import utcnow
from stayflow.jobs.models import QUEUED, Job
from stayflow.settings import Settings
from tests.billing_actions.helpers import make_env
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


class _RateLimitedWriter:
    """Answers every call like Stripe's rate limiter with Retry-After: 30."""

    def __getattr__(self, name: str) -> object:
        def call(*args: object, **kwargs: object) -> object:
            raise BillingBusy("Stripe rate limit", retry_after=30.0)

        return call


@pytest.fixture
def rate_limited_writer() -> Iterator[None]:
    saved = dict(service.WRITER_FACTORIES)
    service.WRITER_FACTORIES["stripe"] = lambda settings, key, timeout: _RateLimitedWriter()  # type: ignore[assignment,return-value]
    yield
    service.WRITER_FACTORIES.clear()
    service.WRITER_FACTORIES.update(saved)


def test_job_waits_as_long_as_retry_after_says(
    session_factory: sessionmaker[Session],
    settings: Settings,
    owner: Tenant,
    rate_limited_writer: None,
) -> None:
    env = make_env(session_factory, settings, owner.app_id)
    env.connect("sk_test_stayflow_sandbox")
    env.set_flows([])
    session_id = env.cancel("sub_ratelimited")
    env.run_jobs()
    with session_factory() as db:
        job = db.scalar(select(Job).where(Job.name == "billing.cancel_subscription"))
        assert job is not None
        assert job.status == QUEUED and job.attempts == 1
        wait = job.run_at - utcnow()
        assert timedelta(seconds=25) < wait <= timedelta(seconds=30)
    assert env.action(session_id).status == "pending"
    assert "rate limit" in (env.action(session_id).error or "")
