"""Job handlers used by the job-runner tests, loaded as a plugin (STAYFLOW_JOB_MODULES).

Each execution appends a line to the file named in the payload (O_APPEND writes of a
short line are atomic), so a test can count executions across processes.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import text

from stayflow.jobs.registry import registry
from stayflow.jobs.worker import JobContext, PermanentFailure, RetryLater


def _record(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@registry.handler("test.record")
def record(ctx: JobContext) -> None:
    _record(ctx.payload["log"], f"{ctx.job.id} {ctx.worker.worker_id}")
    time.sleep(float(ctx.payload.get("sleep", 0)))
    # Work in the job's own transaction: commits together with the job's completion.
    ctx.db.execute(
        text("INSERT INTO test_job_effects (job_id) VALUES (:job_id)"), {"job_id": ctx.job.id}
    )


@registry.handler("test.slow")
def slow(ctx: JobContext) -> None:
    _record(ctx.payload["log"], f"start {ctx.job.id} {ctx.job.attempts} {os.getpid()}")
    deadline = time.monotonic() + float(ctx.payload.get("seconds", 1.0))
    while time.monotonic() < deadline:
        time.sleep(0.05)
    _record(ctx.payload["log"], f"done {ctx.job.id} {ctx.job.attempts} {os.getpid()}")


@registry.handler("test.flaky", backoff_base=0.2, backoff_max=1.0)
def flaky(ctx: JobContext) -> None:
    _record(ctx.payload["log"], f"try {ctx.job.attempts}")
    if ctx.job.attempts < int(ctx.payload.get("succeed_on", 10**6)):
        raise RuntimeError(f"boom on attempt {ctx.job.attempts}")


@registry.handler("test.retry_later")
def retry_later(ctx: JobContext) -> None:
    if ctx.job.attempts == 1:
        raise RetryLater("rate limited", delay=float(ctx.payload["delay"]))


@registry.handler("test.permanent")
def permanent(ctx: JobContext) -> None:
    raise PermanentFailure("coupon SAVE20 does not exist")
