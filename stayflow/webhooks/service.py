"""Webhook endpoints: create, change, rotate, delete; resend and test. Never commits."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.crypto import Encryptor
from stayflow.db import utcnow
from stayflow.errors import BadRequest, NotFound
from stayflow.events import service as events_service
from stayflow.events.schemas import WebhookTest
from stayflow.webhooks import fanout, signing, transport
from stayflow.webhooks.models import (
    EMAIL_DIGEST,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from stayflow.webhooks.schemas import (
    EndpointCreate,
    EndpointUpdate,
    ResendRequest,
    check_kind_url,
)

MAX_ENDPOINTS_PER_APP = 50
MAX_RESEND = 10_000


class EndpointNotFound(NotFound):
    pass


class EventNotFound(NotFound):
    pass


class TooManyEndpoints(BadRequest):
    pass


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str


def get(db: Session, app_pk: int, endpoint_id: str) -> WebhookEndpoint:
    ep = db.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.app_pk == app_pk, WebhookEndpoint.endpoint_id == endpoint_id[:40]
        )
    )
    if ep is None:
        raise EndpointNotFound("no such webhook endpoint")
    return ep


def list_endpoints(db: Session, app_pk: int) -> Sequence[WebhookEndpoint]:
    return db.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.app_pk == app_pk).order_by(WebhookEndpoint.id)
    ).all()


def check_destination(kind: str, url: str, *, allow_private: bool) -> None:
    """Refuse, when saved, a URL that names a private place outright (an IP or localhost).

    The real guard is at connect time on the resolved address (``transport``), which also
    catches a name that resolves there later; this only says so at once, where the
    business can read it, instead of in a failed delivery.
    """
    if allow_private or kind == "email_digest":
        return
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        private = True
    else:
        try:
            private = not transport.address_allowed(host)
        except ValueError:  # a name, not an address: judged when connecting
            return
    if private:
        raise BadRequest(
            f"url: {host} is a private, loopback or link-local address; stayflow does not "
            "send webhooks there (the operator can allow it with "
            "STAYFLOW_WEBHOOKS_ALLOW_PRIVATE=1)"
        )


def create(
    db: Session,
    encryptor: Encryptor,
    app_pk: int,
    body: EndpointCreate,
    *,
    allow_private: bool,
) -> EndpointWithSecret:
    check_destination(body.kind, body.url, allow_private=allow_private)
    if len(list_endpoints(db, app_pk)) >= MAX_ENDPOINTS_PER_APP:
        raise TooManyEndpoints(f"an app has at most {MAX_ENDPOINTS_PER_APP} webhook endpoints")
    secret = signing.new_secret()
    now = utcnow()
    ep = WebhookEndpoint(
        endpoint_id="we_" + secrets.token_hex(12),
        app_pk=app_pk,
        kind=body.kind,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        enabled=body.enabled,
        legacy_signature=body.legacy_signature,
        secret_encrypted=encryptor.encrypt(secret),
        enqueued_seq=0,
        failure_strikes=0,
        created_at=now,
        updated_at=now,
    )
    db.add(ep)
    db.flush()
    return EndpointWithSecret(ep, secret)


def update(
    db: Session, app_pk: int, endpoint_id: str, body: EndpointUpdate, *, allow_private: bool
) -> WebhookEndpoint:
    ep = get(db, app_pk, endpoint_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        try:
            check_kind_url(ep.kind, changes["url"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        check_destination(ep.kind, changes["url"], allow_private=allow_private)
    for name in ("url", "description", "event_types", "legacy_signature"):
        if changes.get(name) is not None:
            setattr(ep, name, changes[name])
    if changes.get("enabled") is True and not ep.enabled:
        ep.enabled = True
        ep.disabled_reason = None
        ep.disabled_at = None
        ep.failing_since = None
        ep.failure_strikes = 0
        ep.last_strike_at = None
        db.flush()
        if _has_pending(db, ep.id):
            fanout.ensure_job(db, app_pk, ep.id)
    elif changes.get("enabled") is False:
        ep.enabled = False
    db.flush()
    return ep


def delete(db: Session, app_pk: int, endpoint_id: str) -> None:
    ep = get(db, app_pk, endpoint_id)
    db.delete(ep)
    db.flush()


def rotate_secret(
    db: Session, encryptor: Encryptor, app_pk: int, endpoint_id: str, overlap_seconds: int
) -> EndpointWithSecret:
    """A new secret signs from now on; the old one also signs for ``overlap_seconds``."""
    ep = get(db, app_pk, endpoint_id)
    secret = signing.new_secret()
    if overlap_seconds > 0:
        ep.previous_secret_encrypted = ep.secret_encrypted
        ep.previous_secret_expires_at = utcnow() + timedelta(seconds=overlap_seconds)
    else:
        ep.previous_secret_encrypted = None
        ep.previous_secret_expires_at = None
    ep.secret_encrypted = encryptor.encrypt(secret)
    db.flush()
    return EndpointWithSecret(ep, secret)


def _per_event(ep: WebhookEndpoint) -> WebhookEndpoint:
    if ep.kind == EMAIL_DIGEST:
        raise BadRequest("an email_digest endpoint gets a daily email, not single events")
    return ep


def _has_pending(db: Session, endpoint_pk: int) -> bool:
    found = db.scalar(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.endpoint_pk == endpoint_pk, WebhookDelivery.status == PENDING)
        .limit(1)
    )
    return found is not None


def resend(db: Session, app_pk: int, endpoint_id: str, body: ResendRequest) -> int:
    """Queue again one event, or every delivery that failed since a time (same webhook-id)."""
    ep = _per_event(get(db, app_pk, endpoint_id))
    if (body.event_id is None) == (body.failed_since is None):
        raise BadRequest("give exactly one of event_id and failed_since")
    if body.event_id is not None:
        event = events_service.get_event(db, app_pk, body.event_id)
        if event is None:
            raise EventNotFound("no such event in this app")
        fanout.queue_delivery(db, app_pk, ep.id, event.id)
        return 1
    since = body.failed_since
    assert since is not None
    if since.tzinfo is None:
        raise BadRequest("failed_since needs a time zone (e.g. 2026-12-01T00:00:00Z)")
    event_ids = db.scalars(
        select(WebhookDelivery.event_id)
        .where(
            WebhookDelivery.endpoint_pk == ep.id,
            WebhookDelivery.status == FAILED,
            WebhookDelivery.finished_at >= since,
        )
        .order_by(WebhookDelivery.event_id)
        .distinct()
        .limit(MAX_RESEND)
    ).all()
    for event_id in event_ids:
        fanout.queue_delivery(db, app_pk, ep.id, event_id)
    return len(event_ids)


def send_test_event(db: Session, app_pk: int, endpoint_id: str) -> int:
    """A ``webhook.test`` event in the log, queued for this endpoint only."""
    ep = _per_event(get(db, app_pk, endpoint_id))
    event = events_service.emit(
        db,
        app_pk,
        WebhookTest(endpoint_id=ep.endpoint_id, message="A test event from stayflow."),
    )
    fanout.queue_delivery(db, app_pk, ep.id, event.id)
    return event.id


def list_attempts(
    db: Session, app_pk: int, endpoint_id: str, *, before_id: int | None, limit: int
) -> Sequence[WebhookAttempt]:
    ep = get(db, app_pk, endpoint_id)
    query = select(WebhookAttempt).where(WebhookAttempt.endpoint_pk == ep.id)
    if before_id is not None:
        query = query.where(WebhookAttempt.id < before_id)
    return db.scalars(query.order_by(WebhookAttempt.id.desc()).limit(limit)).all()


def list_deliveries(
    db: Session,
    app_pk: int,
    endpoint_id: str,
    *,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> Sequence[WebhookDelivery]:
    ep = get(db, app_pk, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_pk == ep.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    return db.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)).all()


def failing_since_of(ep: WebhookEndpoint) -> datetime | None:
    return ep.failing_since


def deliveries_of_events(
    db: Session, app_pk: int, event_ids: Sequence[int]
) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Every delivery of these events with its endpoint (the admin's session story)."""
    if not event_ids:
        return []
    rows = db.execute(
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_pk)
        .where(WebhookDelivery.app_pk == app_pk, WebhookDelivery.event_id.in_(list(event_ids)))
        .order_by(WebhookDelivery.id)
    ).all()
    return [(d, e) for d, e in rows]


def failing_endpoints(db: Session, app_pk: int) -> list[WebhookEndpoint]:
    """Endpoints failing now, or switched off by stayflow after failing."""
    return [
        ep
        for ep in list_endpoints(db, app_pk)
        if ep.failing_since is not None or ep.disabled_reason is not None
    ]
