"""The mirror jobs' error branches, each produced by the sandbox: Stripe down (retried later,
a backfill resuming where it stopped), a key without read permission (given up at once), a
subscription that no longer exists (nothing to store)."""

from __future__ import annotations

from sqlalchemy import select, text

from stayflow.apps.models import App
from stayflow.db import transaction, utcnow
from stayflow.jobs import service as jobs
from stayflow.jobs.models import DEAD, QUEUED, SUCCEEDED, Job
from stayflow.mirror import service as mirror
from stayflow.mirror.models import MirrorBackfill, MirrorSubscription
from tests.billing.helpers import app_pk, count, run_jobs
from tests.billing_actions.helpers import make_env

NO_SUBSCRIPTION_READ = {"customers": "read", "prices": "read", "products": "read"}


def _subscription(stripe_client, make_paying_customer, make_price) -> str:
    customer = make_paying_customer()
    return stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": make_price().id}]}
    ).id


def _job(session_factory, name: str) -> Job:
    with session_factory() as db:
        found = db.scalar(select(Job).where(Job.name == name).order_by(Job.id.desc()))
        assert found is not None
        db.expunge(found)
        return found


def _due_now(session_factory) -> None:
    """Bring retries forward (their backoff is data, not something to wait out)."""
    with session_factory() as db:
        db.execute(text("UPDATE jobs SET run_at = :now WHERE status = 'queued'"), {"now": utcnow()})
        db.commit()


def _refresh(session_factory, pk: int, sub_id: str) -> None:
    with transaction(session_factory) as db:
        jobs.enqueue(db, "mirror.refresh_subscription", {"subscription_id": sub_id}, app_pk=pk)


def _mirrored(session_factory, sub_id: str) -> int:
    return count(session_factory, MirrorSubscription, MirrorSubscription.subscription_id == sub_id)


def test_refresh_retries_while_stripe_is_down_then_stores(
    session_factory,
    stripe_settings,
    owner,
    sandbox,
    stripe_client,
    make_paying_customer,
    make_price,
):
    make_env(session_factory, stripe_settings, owner.app_id).connect(sandbox.secret_key)
    sub_id = _subscription(stripe_client, make_paying_customer, make_price)
    pk = app_pk(session_factory, owner.app_id)
    _refresh(session_factory, pk, sub_id)
    sandbox.inject_fault("error", status=500, path="/v1/*", times=None)
    run_jobs(session_factory, stripe_settings)
    job = _job(session_factory, "mirror.refresh_subscription")
    assert job.status == QUEUED and job.attempts == 1 and job.last_error
    assert _mirrored(session_factory, sub_id) == 0
    sandbox.clear_faults()
    _due_now(session_factory)
    run_jobs(session_factory, stripe_settings)
    assert _job(session_factory, "mirror.refresh_subscription").status == SUCCEEDED
    assert _mirrored(session_factory, sub_id) == 1


def test_refresh_without_read_permission_gives_up_at_once(
    session_factory,
    stripe_settings,
    owner,
    sandbox,
    stripe_client,
    make_paying_customer,
    make_price,
):
    key = sandbox.create_restricted_key(NO_SUBSCRIPTION_READ)
    make_env(session_factory, stripe_settings, owner.app_id).connect(key)
    sub_id = _subscription(stripe_client, make_paying_customer, make_price)
    _refresh(session_factory, app_pk(session_factory, owner.app_id), sub_id)
    run_jobs(session_factory, stripe_settings)
    job = _job(session_factory, "mirror.refresh_subscription")
    assert job.status == DEAD and job.attempts == 1  # no retry can grant a permission
    assert "rak_subscription_read" in (job.last_error or "")
    assert _mirrored(session_factory, sub_id) == 0


def test_refresh_of_a_subscription_stripe_no_longer_has_is_done_quietly(
    session_factory, stripe_settings, owner, sandbox
):
    make_env(session_factory, stripe_settings, owner.app_id).connect(sandbox.secret_key)
    _refresh(session_factory, app_pk(session_factory, owner.app_id), "sub_gone_for_good")
    run_jobs(session_factory, stripe_settings)
    assert _job(session_factory, "mirror.refresh_subscription").status == SUCCEEDED
    assert _mirrored(session_factory, "sub_gone_for_good") == 0


def _start_backfill(session_factory, app_id: str) -> None:
    with transaction(session_factory) as db:
        app = db.scalar(select(App).where(App.app_id == app_id))
        mirror.start_backfill(db, app)
        jobs.enqueue(db, "mirror.backfill", {}, app_pk=app.id)


def _backfill(session_factory) -> MirrorBackfill:
    with session_factory() as db:
        found = db.scalar(select(MirrorBackfill))
        assert found is not None
        db.expunge(found)
        return found


def test_backfill_retries_while_stripe_is_down_then_finishes(
    session_factory,
    stripe_settings,
    owner,
    sandbox,
    stripe_client,
    make_paying_customer,
    make_price,
):
    make_env(session_factory, stripe_settings, owner.app_id).connect(sandbox.secret_key)
    subs = [_subscription(stripe_client, make_paying_customer, make_price) for _ in range(3)]
    _start_backfill(session_factory, owner.app_id)
    sandbox.inject_fault("error", status=503, path="/v1/subscriptions", times=None)
    run_jobs(session_factory, stripe_settings)
    job = _job(session_factory, "mirror.backfill")
    assert job.status == QUEUED and job.attempts == 1
    assert _backfill(session_factory).pages == 0  # nothing of the failed job committed
    sandbox.clear_faults()
    _due_now(session_factory)
    run_jobs(session_factory, stripe_settings)
    state = _backfill(session_factory)
    assert state.status == "done" and state.subscriptions == 3
    assert all(_mirrored(session_factory, s) == 1 for s in subs)


def test_backfill_without_read_permission_gives_up_at_once(
    session_factory,
    stripe_settings,
    owner,
    sandbox,
    stripe_client,
    make_paying_customer,
    make_price,
):
    key = sandbox.create_restricted_key(NO_SUBSCRIPTION_READ)
    make_env(session_factory, stripe_settings, owner.app_id).connect(key)
    _subscription(stripe_client, make_paying_customer, make_price)
    _start_backfill(session_factory, owner.app_id)
    run_jobs(session_factory, stripe_settings)
    job = _job(session_factory, "mirror.backfill")
    assert job.status == DEAD and job.attempts == 1
    assert "rak_subscription_read" in (job.last_error or "")
    assert _backfill(session_factory).status != "done"
