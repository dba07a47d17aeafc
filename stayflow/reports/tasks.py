"""The ``reports.refresh`` job: recount what changed since the last run (every minute)."""

from __future__ import annotations

import logging

from stayflow.jobs.registry import registry
from stayflow.jobs.worker import JobContext
from stayflow.reports import service

log = logging.getLogger("stayflow.reports")

REFRESH_JOB = "reports.refresh"
REFRESH_EVERY_SECONDS = 60


@registry.handler(REFRESH_JOB)
def refresh(ctx: JobContext) -> None:
    app_pk = ctx.payload.get("app_pk")
    apps = [int(app_pk)] if isinstance(app_pk, int) else service.apps_to_refresh(ctx.db)
    for pk in apps:
        changed = service.refresh_all(ctx.db, pk, max_rounds=20)
        if changed:
            log.info("reports.refreshed", extra={"app_pk": pk, "facts": changed})


registry.schedule(REFRESH_JOB, REFRESH_JOB, every_seconds=REFRESH_EVERY_SECONDS)
