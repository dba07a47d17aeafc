"""From the event log to deliveries: runs inside the transaction that writes the event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stayflow.db import utcnow
from stayflow.events.models import Event
from stayflow.events.schemas import WebhookTest
from stayflow.jobs import service as jobs_service
from stayflow.webhooks.models import EMAIL_DIGEST, WebhookDelivery, WebhookEndpoint

DELIVER_JOB = "webhooks.deliver"


def msg_id_for(event_id: int) -> str:
    """The ``webhook-id``: one per event, the same across endpoints, retries and resends."""
    return f"msg_{event_id}"


def subscribed(event_types: list[str], event_type: str) -> bool:
    return not event_types or event_type in event_types


def fan_out(db: Session, event: Event) -> int:
    """Queue the event for each enabled endpoint of its app that subscribes to its type."""
    if event.type == WebhookTest.event_type:
        return 0  # the test action queues it for one endpoint itself
    rows = db.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.app_pk == event.app_pk,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.kind != EMAIL_DIGEST,
        )
    ).all()
    queued = 0
    for endpoint_pk, event_types in rows:
        if subscribed(list(event_types or []), event.type):
            queue_delivery(db, event.app_pk, endpoint_pk, event.id)
            queued += 1
    return queued


def queue_delivery(
    db: Session, app_pk: int, endpoint_pk: int, event_id: int, now: datetime | None = None
) -> WebhookDelivery:
    now = now or utcnow()
    delivery = WebhookDelivery(
        app_pk=app_pk,
        endpoint_pk=endpoint_pk,
        event_id=event_id,
        msg_id=msg_id_for(event_id),
        next_attempt_at=now,
        created_at=now,
    )
    db.add(delivery)
    db.flush()
    ensure_job(db, app_pk, endpoint_pk)
    return delivery


def ensure_job(db: Session, app_pk: int, endpoint_pk: int) -> None:
    """Make sure one delivery job runs for the endpoint, and tell it there is more work.

    The UPDATE takes the endpoint's row lock, so this and a job deciding it is done (which
    clears ``pending_job_id`` only if ``enqueued_seq`` did not move) never miss each other.
    """
    row = db.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_pk)
        .values(enqueued_seq=WebhookEndpoint.enqueued_seq + 1)
        .returning(WebhookEndpoint.pending_job_id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None or row[0] is not None:
        return
    job = jobs_service.enqueue(db, DELIVER_JOB, {"endpoint_pk": endpoint_pk}, app_pk=app_pk)
    assert job is not None
    db.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_pk)
        .values(pending_job_id=job.id)
        .execution_options(synchronize_session=False)
    )
