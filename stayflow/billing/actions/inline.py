"""The attempt made inside the subscriber's request, and what the request tells them.

One owner per attempt: the page claims the billing job in the very transaction that writes
the outcome and the job (:func:`after_outcome`), so when that transaction commits and wakes
the in-process worker, the job is already running under the request's lease and no worker
can take it. The request then runs the attempt itself, with a short timeout and no
in-attempt retries. A request that does not own the attempt (a double click, or a job a
worker took back after a lost request) waits for the attempt's result instead, within the
same budget. Only when Stripe really did not answer in time does the subscriber hear that
the request is being processed (the job goes on retrying with backoff).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions.config import action_settings
from stayflow.billing.actions.models import APPLIED, FAILED, SKIPPED, BillingAction
from stayflow.billing.actions.tasks import (
    APPLY_OFFER_JOB,
    CANCEL_SUBSCRIPTION_JOB,
    INLINE_WORKER_PREFIX,
)
from stayflow.jobs.models import RUNNING, Job
from stayflow.jobs.registry import load_handlers
from stayflow.jobs.worker import ClaimedJob, JobExecutor

Status = Literal["done", "processing", "failed", "refused", "none"]
INLINE_LEASE_SECONDS = 30.0
# How often a request that does not own the attempt looks at its result.
POLL_SECONDS = 0.05

# Tests and benchmarks may hook here: called with the claimed job right before the request
# runs it (e.g. to let a worker try to claim it at that very moment).
BEFORE_ATTEMPT: list[Callable[[ClaimedJob], None]] = []
# ... and when a request starts waiting for an attempt it does not own.
WAITING: list[Callable[[], None]] = []


def job_name(kind: str) -> str:
    return APPLY_OFFER_JOB if kind == "apply_offer" else CANCEL_SUBSCRIPTION_JOB


def action_status(db: Session, session_id: str, kind: str) -> Status:
    """What the page tells the subscriber about a session's billing action."""
    row = db.execute(
        select(BillingAction.status, BillingAction.result).where(
            BillingAction.session_id == session_id, BillingAction.kind == kind
        )
    ).first()
    if row is not None and row[0] in (APPLIED, SKIPPED):
        return "done"
    if row is not None and row[0] == FAILED:
        return "refused" if (row[1] or {}).get("refused") else "failed"
    exists = db.scalar(select(Job.id).where(Job.unique_key == f"{job_name(kind)}:{session_id}"))
    return "processing" if exists is not None else "none"


def _attempt_running(db: Session, session_id: str, kind: str) -> bool:
    status = db.scalar(select(Job.status).where(Job.unique_key == f"{job_name(kind)}:{session_id}"))
    return status == RUNNING


def wait_for_result(
    factory: sessionmaker[Session],
    session_id: str,
    kind: str,
    timeout: float,
    *,
    stop: threading.Event | None = None,
) -> Status:
    """The action's status once its running attempt is over, or "processing" at ``timeout``."""
    deadline = time.monotonic() + max(0.0, timeout)
    stop = stop or threading.Event()
    for _ in range(100_000):
        with factory() as db:
            status = action_status(db, session_id, kind)
            if status != "processing":
                return status
            if not _attempt_running(db, session_id, kind):
                # The attempt may have ended between the two reads: read its result again.
                return action_status(db, session_id, kind)
        left = deadline - time.monotonic()
        if left <= 0:
            return status
        stop.wait(min(POLL_SECONDS, left))
    return "processing"  # pragma: no cover - bounded by the deadline long before


def _executor(factory: sessionmaker[Session], services: dict[str, Any]) -> JobExecutor:
    return JobExecutor(
        factory,
        lease_seconds=INLINE_LEASE_SECONDS,
        worker_id=f"{INLINE_WORKER_PREFIX}{secrets.token_hex(6)}",
        registry=load_handlers(),
        services=services,
    )


def request_budget() -> float:
    """How long a request waits for an attempt it does not own."""
    cfg = action_settings()
    return cfg.inline_timeout * 2 + 1.0


def after_outcome(
    db: Session,
    factory: sessionmaker[Session],
    services: dict[str, Any],
    session_id: str,
    page_action: str,
    *,
    replayed: bool,
) -> Status | None:
    """The page's hook after ``accept`` / ``cancel``: claim, commit, run the attempt.

    The outcome and its job must be committed before Stripe is called (a rollback after a
    Stripe write would leave a change nobody recorded), so this commits the request's
    session, with the job already claimed by this request; the request dependency's own
    commit afterwards has nothing left to do. A replayed action (double click) waits for
    the first one's result. Returns None when the action has no billing side.
    """
    kind = {"accept": "apply_offer", "cancel": "cancel"}.get(page_action)
    if kind is None:
        return None
    runner = _executor(factory, services)
    job = None if replayed else runner.reserve_unique(db, f"{job_name(kind)}:{session_id}")
    db.commit()
    if job is None:
        for waiting in WAITING:
            waiting()
        status = wait_for_result(factory, session_id, kind, request_budget())
    else:
        for hook in BEFORE_ATTEMPT:
            hook(job)
        runner.execute(job)
        with factory() as own:
            status = action_status(own, session_id, kind)
    return None if status == "none" else status
