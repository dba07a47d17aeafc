"""Webhooks: endpoints (Standard Webhooks, Slack, email digest), secrets shown once, the
delivery log, resend and test events; all through ``stayflow.webhooks.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from stayflow.admin.i18n import N_, Message
from stayflow.admin.models import EDITOR
from stayflow.admin.views_settings import validation_message
from stayflow.admin.web import (
    AdminPageError,
    AppPage,
    CurrentAppPage,
    check_csrf,
    redirect,
    render,
)
from stayflow.deps import DB
from stayflow.errors import StayflowError
from stayflow.events.schemas import EVENT_TYPES
from stayflow.webhooks import service as webhooks_service
from stayflow.webhooks.models import WebhookEndpoint
from stayflow.webhooks.schemas import EndpointCreate, EndpointUpdate, ResendRequest

router = APIRouter(prefix="/admin", include_in_schema=False)
FormStr = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]
LOG_SIZE = 50

KINDS = {
    "webhook": (
        N_("Webhook"),
        N_("Your server gets each event as a signed POST (Standard Webhooks)."),
    ),
    "slack": (
        N_("Slack alert"),
        N_("A Slack incoming-webhook URL gets one readable message per event."),
    ),
    "email_digest": (
        N_("Email digest"),
        N_("A daily email of the day's saves and cancels (url: mailto:you@example.com)."),
    ),
}


def _encryptor(request: Request) -> Any:
    return request.app.state.encryptor


def _endpoint(db: DB, page: AppPage, endpoint_id: str) -> WebhookEndpoint:
    try:
        return webhooks_service.get(db, page.access.app.id, endpoint_id)
    except StayflowError as exc:
        raise AdminPageError(404, Message("There is no such webhook endpoint.")) from exc


def _list_page(
    db: DB,
    page: AppPage,
    *,
    error: str | None = None,
    status_code: int = 200,
    new_secret: str | None = None,
    new_endpoint: WebhookEndpoint | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    return render(
        "webhooks.html",
        status_code,
        **page.context(
            section="webhooks",
            endpoints=webhooks_service.list_endpoints(db, page.access.app.id),
            kinds=KINDS,
            event_types=EVENT_TYPES,
            error=error,
            new_secret=new_secret,
            new_endpoint=new_endpoint,
            form=form
            or {
                "kind": "webhook",
                "url": "",
                "description": "",
                "event_types": [],
                "legacy_signature": False,
            },
        ),
    )


@router.get("/apps/{app_id}/webhooks", response_class=HTMLResponse)
def webhooks(db: DB, page: CurrentAppPage) -> Response:
    return _list_page(db, page)


@router.post("/apps/{app_id}/webhooks", response_class=HTMLResponse)
def create_endpoint(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    csrf: FormStr = "",
    kind: FormStr = "webhook",
    url: FormStr = "",
    description: FormStr = "",
    event_types: FormList = [],  # noqa: B006 - FastAPI copies the default
    legacy_signature: FormStr = "",
) -> Response:
    """Answers with the list showing the new signing secret, once."""
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    form = {
        "kind": kind[:20],
        "url": url[:2048],
        "description": description[:500],
        "event_types": event_types[:60],
        "legacy_signature": bool(legacy_signature),
    }
    try:
        body = EndpointCreate.model_validate(form)
        made = webhooks_service.create(
            db,
            _encryptor(request),
            page.access.app.id,
            body,
            allow_private=request.app.state.settings.webhooks_allow_private,
        )
    except ValidationError as exc:
        return _list_page(db, page, error=validation_message(exc), status_code=400, form=form)
    except StayflowError as exc:
        return _list_page(db, page, error=exc.message, status_code=exc.status_code, form=form)
    return _list_page(db, page, new_secret=made.secret, new_endpoint=made.endpoint)


def _detail_page(
    db: DB,
    page: AppPage,
    ep: WebhookEndpoint,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
    new_secret: str | None = None,
) -> Response:
    app_pk = page.access.app.id
    deliveries = webhooks_service.list_deliveries(
        db, app_pk, ep.endpoint_id, status=None, before_id=None, limit=LOG_SIZE
    )
    attempts = webhooks_service.list_attempts(
        db, app_pk, ep.endpoint_id, before_id=None, limit=LOG_SIZE
    )
    return render(
        "webhook.html",
        status_code,
        **page.context(
            section="webhooks",
            ep=ep,
            kinds=KINDS,
            event_types=EVENT_TYPES,
            deliveries=deliveries,
            attempts=attempts,
            log_size=LOG_SIZE,
            error=error,
            notice=notice,
            new_secret=new_secret,
        ),
    )


@router.get("/apps/{app_id}/webhooks/{endpoint_id}", response_class=HTMLResponse)
def endpoint_detail(db: DB, page: CurrentAppPage, endpoint_id: str, notice: str = "") -> Response:
    ep = _endpoint(db, page, endpoint_id)
    return _detail_page(db, page, ep, notice=NOTICES.get(notice))


NOTICES = {
    "saved": N_("Saved."),
    "test": N_("A test event is queued for this endpoint."),
    "resent": N_("The event is queued again."),
}


@router.post("/apps/{app_id}/webhooks/{endpoint_id}")
def update_endpoint(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    endpoint_id: str,
    csrf: FormStr = "",
    url: FormStr = "",
    description: FormStr = "",
    event_types: FormList = [],  # noqa: B006 - FastAPI copies the default
    enabled: FormStr = "",
    legacy_signature: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    ep = _endpoint(db, page, endpoint_id)
    try:
        body = EndpointUpdate(
            url=url[:2048],
            description=description[:500],
            event_types=event_types[:60],
            enabled=bool(enabled),
            legacy_signature=bool(legacy_signature),
        )
        webhooks_service.update(
            db,
            page.access.app.id,
            ep.endpoint_id,
            body,
            allow_private=request.app.state.settings.webhooks_allow_private,
        )
    except ValidationError as exc:
        db.rollback()
        ep = _endpoint(db, page, endpoint_id)
        return _detail_page(db, page, ep, error=validation_message(exc), status_code=400)
    except StayflowError as exc:
        db.rollback()
        ep = _endpoint(db, page, endpoint_id)
        return _detail_page(db, page, ep, error=exc.message, status_code=exc.status_code)
    return redirect(f"/admin/apps/{page.access.app.app_id}/webhooks/{ep.endpoint_id}?notice=saved")


@router.post("/apps/{app_id}/webhooks/{endpoint_id}/rotate", response_class=HTMLResponse)
def rotate_secret(
    request: Request, db: DB, page: CurrentAppPage, endpoint_id: str, csrf: FormStr = ""
) -> Response:
    """A new secret, shown once; the old one keeps signing for a day so receivers can switch."""
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    ep = _endpoint(db, page, endpoint_id)
    made = webhooks_service.rotate_secret(
        db, _encryptor(request), page.access.app.id, ep.endpoint_id, 86400
    )
    return _detail_page(db, page, made.endpoint, new_secret=made.secret)


@router.post("/apps/{app_id}/webhooks/{endpoint_id}/test")
def send_test(
    request: Request, db: DB, page: CurrentAppPage, endpoint_id: str, csrf: FormStr = ""
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    ep = _endpoint(db, page, endpoint_id)
    try:
        webhooks_service.send_test_event(db, page.access.app.id, ep.endpoint_id)
    except StayflowError as exc:
        return _detail_page(db, page, ep, error=exc.message, status_code=exc.status_code)
    return redirect(f"/admin/apps/{page.access.app.app_id}/webhooks/{ep.endpoint_id}?notice=test")


@router.post("/apps/{app_id}/webhooks/{endpoint_id}/resend")
def resend(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    endpoint_id: str,
    csrf: FormStr = "",
    event_id: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    ep = _endpoint(db, page, endpoint_id)
    try:
        body = ResendRequest(event_id=int(event_id))
        webhooks_service.resend(db, page.access.app.id, ep.endpoint_id, body)
    except (ValueError, ValidationError):
        return _detail_page(
            db, page, ep, error=Message("Choose an event to resend."), status_code=400
        )
    except StayflowError as exc:
        return _detail_page(db, page, ep, error=exc.message, status_code=exc.status_code)
    return redirect(f"/admin/apps/{page.access.app.app_id}/webhooks/{ep.endpoint_id}?notice=resent")


@router.post("/apps/{app_id}/webhooks/{endpoint_id}/delete")
def delete_endpoint(
    request: Request, db: DB, page: CurrentAppPage, endpoint_id: str, csrf: FormStr = ""
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    ep = _endpoint(db, page, endpoint_id)
    webhooks_service.delete(db, page.access.app.id, ep.endpoint_id)
    return redirect(f"/admin/apps/{page.access.app.app_id}/webhooks")
