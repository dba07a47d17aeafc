"""Housekeeping jobs of the job runner itself."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from stayflow.db import utcnow
from stayflow.jobs.models import SUCCEEDED, Job
from stayflow.jobs.registry import registry
from stayflow.jobs.worker import JobContext

SUCCEEDED_RETENTION = timedelta(days=7)


@registry.handler("jobs.noop")
def noop(ctx: JobContext) -> None:
    """Does nothing; used by the benchmark and smoke checks."""


@registry.handler("jobs.prune")
def prune(ctx: JobContext) -> None:
    """Delete succeeded jobs past retention; dead ones stay for inspection."""
    cutoff = utcnow() - SUCCEEDED_RETENTION
    ctx.db.execute(delete(Job).where(Job.status == SUCCEEDED, Job.finished_at < cutoff))


registry.schedule("jobs.prune", "jobs.prune", every_seconds=3600)
