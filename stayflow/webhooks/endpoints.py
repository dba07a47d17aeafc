"""Admin API: an app's webhook endpoints, their delivery logs, and the event log."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response, status

from stayflow.deps import DB, CurrentApp, EncryptorDep, SettingsDep
from stayflow.events import service as events_service
from stayflow.webhooks import service
from stayflow.webhooks.models import WebhookEndpoint
from stayflow.webhooks.schemas import (
    AttemptList,
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    EndpointCreate,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventList,
    EventOut,
    ResendRequest,
    ResendResult,
    RotateSecret,
    TestEventResult,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def _out(ep: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        id=ep.endpoint_id,
        kind=ep.kind,
        url=ep.url,
        description=ep.description,
        event_types=list(ep.event_types or []),
        enabled=ep.enabled,
        legacy_signature=ep.legacy_signature,
        disabled_reason=ep.disabled_reason,
        disabled_at=ep.disabled_at,
        failing_since=ep.failing_since,
        previous_secret_expires_at=ep.previous_secret_expires_at,
        created_at=ep.created_at,
    )


def _with_secret(found: service.EndpointWithSecret) -> EndpointWithSecret:
    return EndpointWithSecret(**_out(found.endpoint).model_dump(), secret=found.secret)


@router.post(
    "/webhook-endpoints", response_model=EndpointWithSecret, status_code=status.HTTP_201_CREATED
)
def create_endpoint(
    body: EndpointCreate, db: DB, app: CurrentApp, encryptor: EncryptorDep, settings: SettingsDep
) -> EndpointWithSecret:
    return _with_secret(
        service.create(db, encryptor, app.id, body, allow_private=settings.webhooks_allow_private)
    )


@router.get("/webhook-endpoints", response_model=EndpointList)
def list_endpoints(db: DB, app: CurrentApp) -> EndpointList:
    return EndpointList(data=[_out(ep) for ep in service.list_endpoints(db, app.id)])


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(endpoint_id: str, db: DB, app: CurrentApp) -> EndpointOut:
    return _out(service.get(db, app.id, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, db: DB, app: CurrentApp, settings: SettingsDep
) -> EndpointOut:
    return _out(
        service.update(db, app.id, endpoint_id, body, allow_private=settings.webhooks_allow_private)
    )


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(endpoint_id: str, db: DB, app: CurrentApp) -> Response:
    service.delete(db, app.id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
def rotate_secret(
    endpoint_id: str, body: RotateSecret, db: DB, app: CurrentApp, encryptor: EncryptorDep
) -> EndpointWithSecret:
    found = service.rotate_secret(db, encryptor, app.id, endpoint_id, body.overlap_seconds)
    return _with_secret(found)


@router.post("/webhook-endpoints/{endpoint_id}/resend", response_model=ResendResult)
def resend(endpoint_id: str, body: ResendRequest, db: DB, app: CurrentApp) -> ResendResult:
    return ResendResult(queued=service.resend(db, app.id, endpoint_id, body))


@router.post("/webhook-endpoints/{endpoint_id}/test", response_model=TestEventResult)
def send_test_event(endpoint_id: str, db: DB, app: CurrentApp) -> TestEventResult:
    return TestEventResult(event_id=service.send_test_event(db, app.id, endpoint_id))


@router.get("/webhook-endpoints/{endpoint_id}/attempts", response_model=AttemptList)
def list_attempts(
    endpoint_id: str,
    db: DB,
    app: CurrentApp,
    before_id: int | None = Query(None, ge=1, le=2**62),
    limit: int = Query(50, ge=1, le=200),
) -> AttemptList:
    rows = service.list_attempts(db, app.id, endpoint_id, before_id=before_id, limit=limit + 1)
    return AttemptList(
        data=[AttemptOut.model_validate(r) for r in rows[:limit]], has_more=len(rows) > limit
    )


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    endpoint_id: str,
    db: DB,
    app: CurrentApp,
    status_: Literal["pending", "succeeded", "failed"] | None = Query(None, alias="status"),
    before_id: int | None = Query(None, ge=1, le=2**62),
    limit: int = Query(50, ge=1, le=200),
) -> DeliveryList:
    rows = service.list_deliveries(
        db, app.id, endpoint_id, status=status_, before_id=before_id, limit=limit + 1
    )
    return DeliveryList(
        data=[DeliveryOut.model_validate(r) for r in rows[:limit]], has_more=len(rows) > limit
    )


@router.get("/events", response_model=EventList)
def list_events(
    db: DB,
    app: CurrentApp,
    after_id: int | None = Query(None, ge=0, le=2**62),
    type_: str | None = Query(None, alias="type", max_length=60),
    limit: int = Query(100, ge=1, le=500),
) -> EventList:
    rows = events_service.list_events(
        db, app.id, after_id=after_id, types=[type_] if type_ else None, limit=limit + 1
    )
    return EventList(
        data=[EventOut.model_validate(r) for r in rows[:limit]], has_more=len(rows) > limit
    )
