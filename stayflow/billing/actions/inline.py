"""The attempt made inside the subscriber's request, right after the outcome commits.

The page calls :func:`try_now` once its transaction (outcome + job) has committed: the job
is claimed like any worker would claim it (so no worker runs it at the same time) and run
with a short timeout and no in-attempt retries. Normally the subscriber then sees "done";
on a transient failure the job is handed back with backoff and the page says the request is
being processed (never an error inviting a second click).
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions.models import APPLIED, FAILED, SKIPPED, BillingAction
from stayflow.billing.actions.tasks import (
    APPLY_OFFER_JOB,
    CANCEL_SUBSCRIPTION_JOB,
    INLINE_WORKER_PREFIX,
)
from stayflow.jobs.models import Job
from stayflow.jobs.registry import load_handlers
from stayflow.jobs.worker import JobExecutor

Status = Literal["done", "processing", "failed", "none"]
INLINE_LEASE_SECONDS = 30.0


def action_status(db: Session, session_id: str, kind: str) -> Status:
    """What the page tells the subscriber about a session's billing action."""
    status = db.scalar(
        select(BillingAction.status).where(
            BillingAction.session_id == session_id, BillingAction.kind == kind
        )
    )
    if status in (APPLIED, SKIPPED):
        return "done"
    if status == FAILED:
        return "failed"
    job_key = (APPLY_OFFER_JOB if kind == "apply_offer" else CANCEL_SUBSCRIPTION_JOB) + ":"
    exists = db.scalar(select(Job.id).where(Job.unique_key == job_key + session_id))
    return "processing" if exists is not None else "none"


def try_now(
    factory: sessionmaker[Session], services: dict[str, Any], session_id: str, kind: str
) -> Status:
    """Run the session's queued billing job now, once, briefly; returns what to tell the user.

    ``kind`` is ``"apply_offer"`` or ``"cancel"``. Call it after the commit that wrote the job.
    """
    job_name = APPLY_OFFER_JOB if kind == "apply_offer" else CANCEL_SUBSCRIPTION_JOB
    worker_id = f"{INLINE_WORKER_PREFIX}{secrets.token_hex(6)}"
    runner = JobExecutor(
        factory,
        lease_seconds=INLINE_LEASE_SECONDS,
        worker_id=worker_id,
        registry=load_handlers(),
        services=services,
    )
    job = runner.claim_unique(f"{job_name}:{session_id}")
    if job is not None:
        runner.execute(job)
    with factory() as db:
        return action_status(db, session_id, kind)


def after_outcome(
    db: Session,
    factory: sessionmaker[Session],
    services: dict[str, Any],
    session_id: str,
    page_action: str,
    *,
    replayed: bool,
) -> Status | None:
    """The page's hook after ``accept`` / ``cancel``: commit, then try the billing job once.

    The outcome and its job must be committed before Stripe is called (a rollback after a
    Stripe write would leave a change nobody recorded), so this commits the request's
    session; the request dependency's own commit afterwards has nothing left to do.
    A replayed action (double click) is not tried again: it reports where the first is.
    Returns None when the action has no billing side (a redirect offer, a deflect).
    """
    kind = {"accept": "apply_offer", "cancel": "cancel"}.get(page_action)
    if kind is None:
        return None
    db.commit()
    status = (
        action_status(db, session_id, kind)
        if replayed
        else try_now(factory, services, session_id, kind)
    )
    return None if status == "none" else status
