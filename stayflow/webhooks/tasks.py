"""The ``webhooks.deliver`` job: one endpoint's queue (see ``delivery.py``)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.db import utcnow
from stayflow.jobs.registry import registry
from stayflow.jobs.worker import ClaimedJob, JobContext, PermanentFailure
from stayflow.webhooks import digest, fanout
from stayflow.webhooks.delivery import DeliveryConfig, deliver_endpoint
from stayflow.webhooks.models import EMAIL_DIGEST, PENDING, WebhookDelivery, WebhookEndpoint

# The worker's services may carry a clock (tests move time without sleeping).
CLOCK_SERVICE = "webhooks.clock"


def _on_dead(factory: sessionmaker[Session], job: ClaimedJob, error: str) -> None:
    """A delivery job that died (a bug, a lost database) hands the endpoint to a new one."""
    endpoint_pk = int(job.payload.get("endpoint_pk", 0))
    with factory() as db:
        ep = db.get(WebhookEndpoint, endpoint_pk)
        if ep is None or ep.pending_job_id != job.id:
            return
        ep.pending_job_id = None
        db.flush()
        waiting = db.scalar(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.endpoint_pk == endpoint_pk, WebhookDelivery.status == PENDING)
            .limit(1)
        )
        if waiting is not None and ep.enabled:
            fanout.ensure_job(db, ep.app_pk, endpoint_pk)
        db.commit()


@registry.handler(
    fanout.DELIVER_JOB,
    max_attempts=20,
    backoff_base=5.0,
    backoff_max=600.0,
    on_dead=_on_dead,
    # Each endpoint's job on its own thread: a slow endpoint delays no other one.
    lane=True,
)
def deliver(ctx: JobContext) -> None:
    endpoint_pk = ctx.payload.get("endpoint_pk")
    if not isinstance(endpoint_pk, int):
        raise PermanentFailure("webhooks.deliver needs an endpoint_pk")
    services = ctx.worker.services
    clock = services.get(CLOCK_SERVICE)
    kwargs = {"clock": clock} if clock is not None else {}
    deliver_endpoint(
        ctx.worker.session_factory,
        endpoint_pk,
        config=DeliveryConfig.from_settings(services["settings"]),
        encryptor=services["encryptor"],
        job_id=ctx.job.id,
        **kwargs,
    )


@registry.handler(digest.SCAN_DIGESTS_JOB, max_attempts=3)
def scan_digests(ctx: JobContext) -> None:
    if ctx.worker.services["settings"].smtp_url:
        digest.enqueue_due(ctx.db, utcnow())


@registry.handler(digest.SEND_DIGEST_JOB, max_attempts=10, backoff_base=60.0, backoff_max=3600.0)
def send_digest(ctx: JobContext) -> None:
    smtp_url = ctx.worker.services["settings"].smtp_url
    if not smtp_url:
        raise PermanentFailure("STAYFLOW_SMTP_URL is not set")
    try:
        target = digest.SmtpTarget.parse(smtp_url)
    except digest.SmtpNotConfigured as exc:
        raise PermanentFailure(str(exc)) from None
    ep = ctx.db.get(WebhookEndpoint, int(ctx.payload.get("endpoint_pk", 0)))
    if ep is None or not ep.enabled or ep.kind != EMAIL_DIGEST:
        return
    message = digest.compose(ctx.db, ep, date.fromisoformat(str(ctx.payload["day"])))
    ctx.db.rollback()  # no transaction open while talking to the mail server
    target.send(message)


registry.schedule(digest.SCAN_DIGESTS_JOB, digest.SCAN_DIGESTS_JOB, every_seconds=3600)
