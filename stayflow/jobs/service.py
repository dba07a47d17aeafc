"""Enqueue durable jobs in the caller's transaction (the outbox), and inspect them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stayflow.db import insert_ignoring_conflicts, utcnow
from stayflow.errors import BadRequest
from stayflow.jobs.models import QUEUED, Job

# Set on a session's info when it enqueued work (the job names, a set), so the local worker
# is woken after commit: its lane for lane jobs, its slots for the others.
ENQUEUED_FLAG = "stayflow.jobs_enqueued"
DEFAULT_MAX_ATTEMPTS = 10


def enqueue(
    db: Session,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    app_pk: int | None = None,
    run_at: datetime | None = None,
    delay: timedelta | None = None,
    unique_key: str | None = None,
    max_attempts: int | None = None,
) -> Job | None:
    """Write a job in the caller's transaction; it runs only if that transaction commits.

    With ``unique_key``, a second enqueue of the same key is a no-op and returns None.
    """
    if not name or len(name) > 100:
        raise BadRequest("a job name must be 1 to 100 characters")
    when = run_at or utcnow()
    if delay is not None:
        when = when + delay
    from stayflow.jobs.registry import load_handlers

    spec = load_handlers().get(name)
    attempts_cap = max_attempts or (spec.max_attempts if spec and spec.max_attempts else None)
    values: dict[str, Any] = {
        "name": name,
        "payload": payload or {},
        "app_pk": app_pk,
        "run_at": when,
        "status": QUEUED,
        "attempts": 0,
        "max_attempts": attempts_cap or DEFAULT_MAX_ATTEMPTS,
        "unique_key": unique_key,
        "created_at": utcnow(),
    }
    db.info.setdefault(ENQUEUED_FLAG, set()).add(name)
    if unique_key is not None:
        if not insert_ignoring_conflicts(db, Job, values, on=["unique_key"]):
            return None
        return db.scalar(select(Job).where(Job.unique_key == unique_key))
    job = Job(**values)
    db.add(job)
    db.flush()
    return job


def counts_by_status(db: Session) -> dict[str, int]:
    rows = db.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: count for status, count in rows}


def retire_unique_key(db: Session, unique_key: str) -> None:
    """Free a finished job's unique key (in the caller's transaction), keeping the row, so
    the same key can be enqueued again (e.g. a refused offer, then another one accepted)."""
    from sqlalchemy import String, cast, literal, update

    db.execute(
        update(Job)
        .where(Job.unique_key == unique_key, Job.status.in_(("succeeded", "dead")))
        .values(unique_key=literal(f"{unique_key}:retired:", String) + cast(Job.id, String))
        .execution_options(synchronize_session=False)
    )
