from __future__ import annotations

import logging

from fastapi import APIRouter, Request, status
from starlette.concurrency import run_in_threadpool

from stayflow.billing import repository as billing_repository
from stayflow.billing.service import NotConnected
from stayflow.db import transaction
from stayflow.deps import DB, CurrentApp
from stayflow.errors import BadRequest, NotFound, StayflowError
from stayflow.jobs import service as jobs
from stayflow.mirror import repository, service
from stayflow.mirror.schemas import BackfillOut, BackfillStart, WebhookReceived

log = logging.getLogger("stayflow.mirror")
router = APIRouter(tags=["mirror"])

MAX_WEBHOOK_BYTES = 1_000_000


class PayloadTooLarge(BadRequest):
    status_code = 413
    error_type = "payload_too_large"


@router.post("/stripe/webhooks/{app_id}", response_model=WebhookReceived)
async def stripe_webhook(app_id: str, request: Request) -> WebhookReceived:
    """Stripe's events for one app: verified, stored once, applied by a job (answers at once)."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_WEBHOOK_BYTES:
            raise PayloadTooLarge("a Stripe event is never this large")
    signature = request.headers.get("stripe-signature")
    state = request.app.state

    # The session is opened here (not as a dependency) so the body is read first and the
    # database work stays one short transaction in a worker thread.
    def handle() -> service.ReceivedEvent:
        with transaction(state.session_factory) as db:
            return service.receive_webhook(db, state.encryptor, app_id, bytes(body), signature)

    try:
        received = await run_in_threadpool(handle)
    except StayflowError as exc:
        # Stripe retries anything but 2xx for days; the log says why it keeps coming.
        log.warning(
            "stripe.webhook.refused",
            extra={"app_id": app_id, "status": exc.status_code, "reason": exc.message},
        )
        raise
    return WebhookReceived(event_id=received.event_id, duplicate=received.duplicate)


@router.post(
    "/api/v1/billing/stripe/backfill",
    response_model=BackfillOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def start_backfill(body: BackfillStart, db: DB, app: CurrentApp) -> BackfillOut:
    conn = billing_repository.get_connection(db, app)
    if conn is None or not conn.connected:
        raise NotConnected("this app is not connected to Stripe")
    state = service.start_backfill(db, app, restart=body.restart)
    jobs.enqueue(
        db,
        "mirror.backfill",
        {},
        app_pk=app.id,
        unique_key=f"mirror.backfill:{app.id}:{state.started_at.timestamp()}:{state.pages}",
    )
    return BackfillOut.model_validate(state)


@router.get("/api/v1/billing/stripe/backfill", response_model=BackfillOut)
def get_backfill(db: DB, app: CurrentApp) -> BackfillOut:
    state = repository.get_backfill(db, app.id)
    if state is None:
        raise NotFound("no backfill has been started for this app")
    return BackfillOut.model_validate(state)
