"""The ``cancel_sessions.mark_abandoned`` job: sessions nobody acted on in time."""

from __future__ import annotations

import logging

from stayflow.cancel_sessions import service
from stayflow.db import utcnow
from stayflow.jobs.registry import registry
from stayflow.jobs.worker import JobContext

log = logging.getLogger("stayflow.cancel_sessions")

ABANDON_JOB = "cancel_sessions.mark_abandoned"
ABANDON_EVERY_SECONDS = 300


@registry.handler(ABANDON_JOB)
def mark_abandoned(ctx: JobContext) -> None:
    count = service.mark_abandoned(ctx.db, utcnow())
    if count:
        log.info("cancel_sessions.abandoned", extra={"count": count})


registry.schedule(ABANDON_JOB, ABANDON_JOB, every_seconds=ABANDON_EVERY_SECONDS)
