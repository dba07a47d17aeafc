"""Mirror jobs: apply a stored Stripe event, refresh one subscription, backfill in pages."""

from __future__ import annotations

import logging

from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.config import billing_settings
from stayflow.billing.provider import (
    BillingAuthenticationFailed,
    BillingError,
    BillingObjectMissing,
    BillingPermissionDenied,
    BillingProvider,
    BillingUnavailable,
)
from stayflow.crypto import Encryptor
from stayflow.jobs import service as jobs
from stayflow.jobs.registry import registry
from stayflow.jobs.worker import JobContext, PermanentFailure, RetryLater
from stayflow.mirror import repository, service
from stayflow.settings import Settings

log = logging.getLogger("stayflow.mirror")


def _provider(ctx: JobContext, app_pk: int, timeout: float, retries: int) -> BillingProvider | None:
    settings: Settings = ctx.worker.services["settings"]
    encryptor: Encryptor = ctx.worker.services["encryptor"]
    conn = billing_repository.get_connection_by_app_pk(ctx.db, app_pk)
    key = billing_service.connected_key(encryptor, conn)
    if key is None:
        return None
    return billing_service.make_provider(settings, key, timeout=timeout, retries=retries)


@registry.handler("mirror.apply_event", max_attempts=5)
def apply_event(ctx: JobContext) -> None:
    app_pk = ctx.job.app_pk
    if app_pk is None:
        raise PermanentFailure("mirror.apply_event needs an app")
    service.apply_event(ctx.db, app_pk, int(ctx.payload["event_pk"]))


@registry.handler("mirror.refresh_subscription", max_attempts=8)
def refresh_subscription(ctx: JobContext) -> None:
    app_pk = ctx.job.app_pk
    if app_pk is None:
        raise PermanentFailure("mirror.refresh_subscription needs an app")
    provider = _provider(ctx, app_pk, billing_settings().stripe_backfill_timeout, 1)
    if provider is None:
        return  # disconnected since: nothing to read with
    try:
        fetched = provider.retrieve_subscription(str(ctx.payload["subscription_id"]))
    except BillingObjectMissing:
        return
    except BillingUnavailable as exc:
        raise RetryLater(exc.message) from None
    except (BillingAuthenticationFailed, BillingPermissionDenied) as exc:
        raise PermanentFailure(exc.message) from None
    service.store_live(ctx.db, app_pk, fetched.raw)


@registry.handler("mirror.backfill", max_attempts=10)
def backfill(ctx: JobContext) -> None:
    """Store up to BACKFILL_PAGES_PER_JOB pages, then hand over to a follow-up job."""
    app_pk = ctx.job.app_pk
    if app_pk is None:
        raise PermanentFailure("mirror.backfill needs an app")
    provider = _provider(ctx, app_pk, billing_settings().stripe_backfill_timeout, 2)
    state = repository.get_backfill(ctx.db, app_pk)
    if provider is None or state is None:
        raise PermanentFailure("the app is not connected to Stripe or has no backfill started")
    try:
        for _ in range(service.BACKFILL_PAGES_PER_JOB):
            state = service.backfill_page(ctx.db, app_pk, provider)
            if state.status == "done":
                return
    except BillingUnavailable as exc:
        # Nothing of this job commits; the retry resumes from the cursor last committed.
        raise RetryLater(exc.message) from None
    except BillingError as exc:
        raise PermanentFailure(exc.message) from None
    jobs.enqueue(
        ctx.db,
        "mirror.backfill",
        {},
        app_pk=app_pk,
        unique_key=f"mirror.backfill:{app_pk}:{state.started_at.timestamp()}:{state.pages}",
    )
