"""Attribution jobs: a sync per app (events since the cursor), and the scheduled passes.

- ``attribution.sync_all`` (hourly): one ``attribution.sync`` per app connected to Stripe.
- ``attribution.judge_all`` (every 5 minutes): re-judge, without asking Stripe, what the
  webhooks changed and the windows that ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from stayflow.attribution import repository, service, sync
from stayflow.attribution.models import AttributionState
from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.config import billing_settings
from stayflow.billing.models import BillingConnection
from stayflow.billing.provider import (
    BillingAuthenticationFailed,
    BillingError,
    BillingPermissionDenied,
    BillingProvider,
    BillingUnavailable,
)
from stayflow.crypto import Encryptor
from stayflow.db import transaction, utcnow
from stayflow.jobs import service as jobs
from stayflow.jobs.registry import registry
from stayflow.jobs.worker import JobContext, PermanentFailure, RetryLater
from stayflow.settings import Settings

log = logging.getLogger("stayflow.attribution")


def _now(ctx: JobContext) -> datetime:
    """The worker's injected clock (``services["clock"]``, tests: the sandbox's), else UTC now."""
    clock: Callable[[], datetime] | None = ctx.worker.services.get("clock")
    return clock() if clock is not None else utcnow()


SYNC_EVERY_SECONDS = 3600
JUDGE_EVERY_SECONDS = 300


def ensure_state(factory: sessionmaker[Session], app_pk: int) -> None:
    """The app's state row, created and committed before the sync's long transaction.

    Created inside that transaction, its uncommitted INSERT would hold the row's unique key
    for as long as Stripe takes to answer; a second sync of the same app (or this one's
    failure record, written in its own transaction) then waited on it with no end on
    PostgreSQL. A short transaction of its own, before the job's session touches the
    database (on SQLite that session holds the write lock from its first statement).
    """
    try:
        with transaction(factory) as own:
            repository.get_or_create_state(own, app_pk)
    except IntegrityError:
        pass  # created at the same moment by another sync: it exists now


def refresh_webhook_endpoint(
    factory: sessionmaker[Session], app_pk: int, provider: BillingProvider
) -> int:
    """Bring stayflow's own webhook endpoint up to today's list of events, before the sync's
    transaction: the POST to Stripe outside any transaction, what was asked recorded in a
    short one (no lock on the connection row while Stripe answers). Requests made: 0 or 1."""
    with factory() as db:
        stale = billing_service.stale_endpoint(
            billing_repository.get_connection_by_app_pk(db, app_pk)
        )
    if stale is None:
        return 0
    if billing_service.update_endpoint_events(provider, stale) is not None:
        with transaction(factory) as db:
            billing_service.record_endpoint_events(
                db, app_pk, stale.endpoint_id, billing_service.WEBHOOK_EVENTS
            )
    return 1


@registry.handler("attribution.sync", max_attempts=5)
def sync_app(ctx: JobContext) -> None:
    app_pk = ctx.job.app_pk
    if app_pk is None:
        raise PermanentFailure("attribution.sync needs an app")
    factory = ctx.worker.session_factory
    ensure_state(factory, app_pk)
    settings: Settings = ctx.worker.services["settings"]
    encryptor: Encryptor = ctx.worker.services["encryptor"]
    with factory() as db:  # read apart too: the job's session has not touched the database
        key = billing_service.connected_key(
            encryptor, billing_repository.get_connection_by_app_pk(db, app_pk)
        )
    if key is None:
        return  # disconnected: nothing to read with
    provider = billing_service.make_provider(
        settings, key, timeout=billing_settings().stripe_backfill_timeout, retries=2
    )
    requests = refresh_webhook_endpoint(factory, app_pk, provider)
    now = _now(ctx)
    try:
        sync.sync(ctx.db, app_pk, provider, now, requests_before=requests)
    except BillingError as exc:
        # Nothing of this job's work commits (dropped here first, so SQLite's write lock is
        # free); the failure is recorded in its own transaction for the data card.
        ctx.db.rollback()
        with transaction(factory) as db:
            sync.record_failure(db, app_pk, now, exc.message, provider.calls)
        if isinstance(exc, BillingUnavailable):
            raise RetryLater(exc.message) from None
        if isinstance(exc, BillingAuthenticationFailed | BillingPermissionDenied):
            raise PermanentFailure(exc.message) from None
        raise PermanentFailure(exc.message) from None


@registry.handler("attribution.sync_all")
def sync_all(ctx: JobContext) -> None:
    bucket = int(utcnow().timestamp() // SYNC_EVERY_SECONDS)
    for app_pk in ctx.db.scalars(
        select(BillingConnection.app_pk).where(BillingConnection.connected_at.is_not(None))
    ).all():
        jobs.enqueue(
            ctx.db,
            "attribution.sync",
            {},
            app_pk=app_pk,
            unique_key=f"attribution.sync:{app_pk}:scheduled:{bucket}",
        )


@registry.handler("attribution.judge_all")
def judge_all(ctx: JobContext) -> None:
    now = _now(ctx)
    for app_pk in ctx.db.scalars(select(AttributionState.app_pk)).all():
        service.judge_changed(ctx.db, app_pk, now)


registry.schedule("attribution.sync_all", "attribution.sync_all", every_seconds=SYNC_EVERY_SECONDS)
registry.schedule(
    "attribution.judge_all", "attribution.judge_all", every_seconds=JUDGE_EVERY_SECONDS
)
