"""Settings: Stripe (connect, permission report, re-check, disconnect, use cases and cancel
options), the app's cancel-flow settings, and field mappings."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from stayflow.admin import views_settings as views
from stayflow.admin.i18n import Message
from stayflow.admin.models import EDITOR, OWNER
from stayflow.admin.web import (
    AppPage,
    CurrentAppPage,
    check_csrf,
    redirect,
    render,
    settings_of,
)
from stayflow.attribution import repository as attribution_repository
from stayflow.attribution import service as attribution_service
from stayflow.billing import service as billing_service
from stayflow.billing.schemas import CancelOptions, StripeSetupPatch
from stayflow.cancel_sessions import settings as flow_settings
from stayflow.deps import DB
from stayflow.enrichment import service as enrichment_service
from stayflow.enrichment.schemas import FieldMappingIn
from stayflow.errors import StayflowError

router = APIRouter(prefix="/admin", include_in_schema=False)
FormStr = Annotated[str, Form()]
Checkbox = Annotated[str, Form()]


def _encryptor(request: Request) -> Any:
    return request.app.state.encryptor


# --- Stripe ------------------------------------------------------------------------------


def _stripe_page(
    request: Request, db: DB, page: AppPage, *, error: str | None = None, status_code: int = 200
) -> Response:
    app = page.access.app
    return render(
        "stripe.html",
        status_code,
        **page.context(
            section="settings",
            report=views.stripe_page(db, app, settings_of(request)),
            use_case_text=views.USE_CASES,
            cancel_text=views.CANCEL_OPTIONS,
            error=error,
        ),
    )


@router.get("/apps/{app_id}/settings/stripe", response_class=HTMLResponse)
def stripe_settings(request: Request, db: DB, page: CurrentAppPage) -> Response:
    return _stripe_page(request, db, page)


@router.post("/apps/{app_id}/settings/stripe/connect")
def stripe_connect(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    csrf: FormStr = "",
    api_key: FormStr = "",
    webhook_secret: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    try:
        billing_service.connect(
            db,
            page.access.app,
            settings_of(request),
            _encryptor(request),
            api_key=api_key[:300],
            webhook_secret=webhook_secret.strip()[:300] or None,
        )
    except billing_service.InvalidStripeKey as exc:
        refused = "refused" in exc.message
        text = (
            Message("Stripe refused this key (invalid, expired or revoked); nothing was stored.")
            if refused
            else Message(
                "Paste a restricted key (rk_test_ or rk_live_) or a secret key "
                "(sk_test_ or sk_live_)."
            )
        )
        return _stripe_page(request, db, page, error=text, status_code=400)
    except StayflowError as exc:
        return _stripe_page(request, db, page, error=exc.message, status_code=exc.status_code)
    return redirect(f"/admin/apps/{page.access.app.app_id}/settings/stripe")


@router.post("/apps/{app_id}/settings/stripe/recheck")
def stripe_recheck(request: Request, db: DB, page: CurrentAppPage, csrf: FormStr = "") -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    try:
        billing_service.recheck(db, page.access.app, settings_of(request), _encryptor(request))
    except StayflowError as exc:
        return _stripe_page(request, db, page, error=exc.message, status_code=exc.status_code)
    return redirect(f"/admin/apps/{page.access.app.app_id}/settings/stripe")


@router.post("/apps/{app_id}/settings/stripe/disconnect")
def stripe_disconnect(
    request: Request, db: DB, page: CurrentAppPage, csrf: FormStr = ""
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    try:
        billing_service.disconnect(db, page.access.app, settings_of(request), _encryptor(request))
    except StayflowError as exc:
        return _stripe_page(request, db, page, error=exc.message, status_code=exc.status_code)
    return redirect(f"/admin/apps/{page.access.app.app_id}/settings/stripe")


@router.post("/apps/{app_id}/settings/stripe/setup")
def stripe_setup(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    csrf: FormStr = "",
    enrichment: Checkbox = "",
    attribution: Checkbox = "",
    offers: Checkbox = "",
    cancels: Checkbox = "",
    timing: FormStr = "period_end",
    invoice_now: Checkbox = "",
    prorate: Checkbox = "",
    all_subscriptions: Checkbox = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    if timing not in ("period_end", "now"):
        return _stripe_page(
            request, db, page, error=Message("Choose when to cancel."), status_code=400
        )
    try:
        patch = StripeSetupPatch(
            enrichment=bool(enrichment),
            attribution=bool(attribution),
            offers=bool(offers),
            cancels=bool(cancels),
            cancel=CancelOptions(
                at_period_end=timing == "period_end",
                invoice_now=bool(invoice_now),
                prorate=bool(prorate),
                all_subscriptions=bool(all_subscriptions),
            ),
        )
    except ValidationError:
        return _stripe_page(
            request,
            db,
            page,
            error=Message(
                "Invoice now and prorate apply to an immediate cancel only: choose Now, "
                "or turn them off."
            ),
            status_code=400,
        )
    billing_service.update_setup(db, page.access.app, patch)
    return redirect(f"/admin/apps/{page.access.app.app_id}/settings/stripe")


# --- the app's cancel-flow settings ---------------------------------------------------------


def _app_settings_page(
    db: DB,
    page: AppPage,
    *,
    error: str | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> Response:
    app = page.access.app
    state = attribution_repository.get_state(db, app.id)
    return render(
        "app_settings.html",
        status_code,
        **page.context(
            section="settings",
            flow=flow_settings.read(app),
            window_days=state.window_days if state else attribution_service.DEFAULT_WINDOW_DAYS,
            error=error,
            saved=saved,
        ),
    )


@router.get("/apps/{app_id}/settings", response_class=HTMLResponse)
def app_settings(db: DB, page: CurrentAppPage, saved: str = "") -> Response:
    return _app_settings_page(db, page, saved=saved == "1")


@router.post("/apps/{app_id}/settings")
def save_app_settings(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    csrf: FormStr = "",
    allowed_origins: FormStr = "",
    allowed_redirect_domains: FormStr = "",
    save_return_url: FormStr = "",
    cancel_confirmation_url: FormStr = "",
    cancel_pass_thru_url: FormStr = "",
    reason_required: Checkbox = "",
    allow_unsigned_precancel: Checkbox = "",
    allow_unsigned_targeting: Checkbox = "",
    signed_fields_max_age_seconds: FormStr = "",
    session_expiry_minutes: FormStr = "",
    abandon_after_minutes: FormStr = "",
    pass_thru_expiry_minutes: FormStr = "",
    window_days: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    app = page.access.app
    patch: dict[str, Any] = {
        "allowed_origins": views.lines(allowed_origins),
        "allowed_redirect_domains": views.lines(allowed_redirect_domains),
        "save_return_url": save_return_url.strip() or None,
        "cancel_confirmation_url": cancel_confirmation_url.strip() or None,
        "cancel_pass_thru_url": cancel_pass_thru_url.strip() or None,
        "reason_required": bool(reason_required),
        "allow_unsigned_precancel": bool(allow_unsigned_precancel),
        "allow_unsigned_targeting": bool(allow_unsigned_targeting),
    }
    numbers = {
        "signed_fields_max_age_seconds": signed_fields_max_age_seconds,
        "session_expiry_minutes": session_expiry_minutes,
        "abandon_after_minutes": abandon_after_minutes,
        "pass_thru_expiry_minutes": pass_thru_expiry_minutes,
    }
    for name, raw in numbers.items():
        if raw.strip():
            patch[name] = raw.strip()[:12]
    try:
        days = int(window_days.strip() or attribution_service.DEFAULT_WINDOW_DAYS)
        flow_settings.write(app, patch)
        attribution_service.set_window(db, app.id, days)
    except ValidationError as exc:
        db.rollback()
        return _app_settings_page(db, page, error=views.validation_message(exc), status_code=400)
    except ValueError:
        db.rollback()
        return _app_settings_page(
            db,
            page,
            error=Message("Validation window: a whole number of days (1 to 365)."),
            status_code=400,
        )
    except StayflowError as exc:
        db.rollback()
        return _app_settings_page(db, page, error=exc.message, status_code=exc.status_code)
    # Commit now, then drop precancel's cached copy, so it never re-reads the old settings.
    db.commit()
    cache = getattr(request.app.state, "precancel_apps", None)
    if cache is not None:
        cache.invalidate(app.app_id)
    return redirect(f"/admin/apps/{app.app_id}/settings?saved=1")


# --- field mappings ---------------------------------------------------------------------------


def _fields_url(page: AppPage, subscription: str) -> str:
    query = urlencode({"subscription": subscription.strip()[:255]})
    return f"/admin/apps/{page.access.app.app_id}/fields?{query}"


def _fields_page(
    request: Request,
    db: DB,
    page: AppPage,
    subscription: str,
    *,
    draft: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    app = page.access.app
    data = views.fields_page(db, app, subscription, settings_of(request), _encryptor(request))
    preview: tuple[str, Any] | None = None
    if draft and draft.get("source") and data.fields and not error:
        preview = views.converted(
            draft.get("field") or "preview",
            draft["source"],
            draft.get("type") or "text",
            draft.get("currency_source") or None,
            data.fields,
        )
    return render(
        "fields.html",
        status_code,
        **page.context(
            section="fields",
            data=data,
            draft=draft or {},
            preview=preview,
            error=error,
        ),
    )


@router.get("/apps/{app_id}/fields", response_class=HTMLResponse)
def fields(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    subscription: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    return _fields_page(request, db, page, subscription)


@router.post("/apps/{app_id}/fields/preview", response_class=HTMLResponse)
def preview_field(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    csrf: FormStr = "",
    subscription: FormStr = "",
    field: FormStr = "",
    source: FormStr = "",
    type: FormStr = "",
    currency_source: FormStr = "",
) -> Response:
    """The form again with the chosen source converted to the chosen type (nothing saved)."""
    check_csrf(request, page.viewer.session_hash, csrf)
    draft = {
        "field": field.strip()[:64],
        "source": source.strip()[:300],
        "type": type[:20],
        "currency_source": currency_source.strip()[:300],
    }
    return _fields_page(request, db, page, subscription, draft=draft)


@router.post("/apps/{app_id}/fields")
def save_field(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    csrf: FormStr = "",
    subscription: FormStr = "",
    field: FormStr = "",
    source: FormStr = "",
    type: FormStr = "",
    currency_source: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    draft = {"field": field, "source": source, "type": type, "currency_source": currency_source}
    try:
        body = FieldMappingIn(
            field=field.strip()[:64],
            source=source.strip()[:300],
            type=type,
            currency_source=currency_source.strip()[:300] or None,
        )
    except ValidationError as exc:
        return _fields_page(
            request,
            db,
            page,
            subscription,
            draft=draft,
            error=views.validation_message(exc),
            status_code=400,
        )
    enrichment_service.upsert_mapping(db, page.access.app.id, body)
    return redirect(_fields_url(page, subscription))


@router.post("/apps/{app_id}/fields/{field_name}/delete")
def delete_field(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    field_name: str,
    csrf: FormStr = "",
    subscription: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(EDITOR)
    try:
        enrichment_service.delete_mapping(db, page.access.app.id, field_name[:64])
    except StayflowError as exc:
        return _fields_page(
            request, db, page, subscription, error=exc.message, status_code=exc.status_code
        )
    return redirect(_fields_url(page, subscription))
