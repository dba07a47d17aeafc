"""The billing action jobs: ``billing.apply_offer`` and ``billing.cancel_subscription``.

Enqueued by the cancel flow in the same transaction as the session's outcome. A transient
failure hands the job back with backoff (Stripe's Retry-After when it sent one); a failure
no retry can fix kills the job at once, with the action marked failed and an event emitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing.actions import service
from stayflow.billing.actions.config import action_settings
from stayflow.billing.actions.models import APPLY_OFFER, CANCEL
from stayflow.jobs.registry import registry
from stayflow.jobs.worker import ClaimedJob, JobContext, PermanentFailure, RetryLater

APPLY_OFFER_JOB = "billing.apply_offer"
CANCEL_SUBSCRIPTION_JOB = "billing.cancel_subscription"
INLINE_WORKER_PREFIX = "inline:"

_cfg = action_settings()


def _run(
    ctx: JobContext, kind: str, work: Callable[[service.Context, dict[str, Any]], str]
) -> None:
    app_pk = ctx.job.app_pk
    if app_pk is None or not ctx.payload.get("session_id"):
        raise PermanentFailure(f"{kind} needs an app and a session")
    factory: sessionmaker[Session] = ctx.worker.session_factory
    inline = ctx.worker.worker_id.startswith(INLINE_WORKER_PREFIX)
    context = service.load_context(
        ctx.db,
        factory,
        app_pk,
        ctx.worker.services["settings"],
        ctx.worker.services["encryptor"],
        inline=inline,
    )
    try:
        work(context, ctx.payload)
    except service.OfferRefused as exc:
        action_id = _action_id(factory, ctx.payload, kind)
        if action_id is not None:
            service.mark_refused(factory, action_id, str(exc), exc.scope, session_goes_on=inline)
        raise PermanentFailure(str(exc)) from None
    except service.ActionFailed as exc:
        action_id = _action_id(factory, ctx.payload, kind)
        if action_id is not None:
            service.mark_failed(factory, action_id, str(exc))
        raise PermanentFailure(str(exc)) from None
    except service.TransientFailure as exc:
        action_id = _action_id(factory, ctx.payload, kind)
        last = ctx.job.attempts >= ctx.job.max_attempts
        if action_id is not None:
            if last:
                service.mark_failed(factory, action_id, f"gave up after retries: {exc}")
            else:
                service.note_error(factory, action_id, str(exc))
        raise RetryLater(str(exc), exc.retry_after) from None
    except Exception as exc:
        # A bug or a database hiccup: the runner retries it; on the last attempt the action
        # is marked failed here, since the job dies without another word.
        if ctx.job.attempts >= ctx.job.max_attempts:
            action_id = _action_id(factory, ctx.payload, kind)
            if action_id is not None:
                service.mark_failed(factory, action_id, f"gave up: {exc!r}")
        raise


def _action_id(factory: sessionmaker[Session], payload: dict[str, Any], kind: str) -> int | None:
    from sqlalchemy import select

    from stayflow.billing.actions.models import BillingAction

    with factory() as db:
        return db.scalar(
            select(BillingAction.id).where(
                BillingAction.session_id == str(payload.get("session_id")),
                BillingAction.kind == kind,
            )
        )


def _on_dead(kind: str) -> Callable[[sessionmaker[Session], ClaimedJob, str], None]:
    def on_dead(factory: sessionmaker[Session], job: ClaimedJob, error: str) -> None:
        # The handler marks its own last failure; this catches the deaths it never sees
        # (a worker that died on the last attempt), so no action stays pending for ever.
        action_id = _action_id(factory, job.payload, kind)
        if action_id is not None:
            service.mark_failed_if_pending(factory, action_id, f"job dead: {error}")

    return on_dead


@registry.handler(
    APPLY_OFFER_JOB,
    max_attempts=_cfg.max_attempts,
    backoff_base=_cfg.backoff_base,
    backoff_max=_cfg.backoff_max,
    on_dead=_on_dead(APPLY_OFFER),
)
def apply_offer(ctx: JobContext) -> None:
    _run(ctx, APPLY_OFFER, service.apply_offer)


@registry.handler(
    CANCEL_SUBSCRIPTION_JOB,
    max_attempts=_cfg.max_attempts,
    backoff_base=_cfg.backoff_base,
    backoff_max=_cfg.backoff_max,
    on_dead=_on_dead(CANCEL),
)
def cancel_subscription(ctx: JobContext) -> None:
    _run(ctx, CANCEL, service.cancel_subscription)
