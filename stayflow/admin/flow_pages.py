"""The cancel flow in the admin: the editor (each kind of item, or the whole document as
YAML), drafts and publishing, the history of versions with diffs and restore, and the live
preview of the real cancel page.

Thin routes: every change goes through ``stayflow.flows.service`` / ``versions`` exactly as
the API's do (same validation, same versions), with the signed-in user's email as the author.
Viewers read everything; changing anything needs the editor role (checked here, on the server).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from stayflow.admin import flow_forms
from stayflow.admin.i18n import Message
from stayflow.admin.models import EDITOR
from stayflow.admin.web import AdminPageError, AppPage, CurrentAppPage, check_csrf, redirect, render
from stayflow.billing.actions.validation import offer_catalog, offer_check
from stayflow.billing.provider import BillingError, OfferCatalog
from stayflow.cancel_sessions.settings import read as read_cancel_settings
from stayflow.db import utcnow
from stayflow.deps import DB
from stayflow.enrichment import service as enrichment
from stayflow.errors import StayflowError
from stayflow.flows import fileformat, service, versions
from stayflow.flows.schemas import FEEDBACK_VALUES, KINDS, FlowsDocument
from stayflow.offers.schemas import OFFER_TYPES
from stayflow.page import preview as page_preview

router = APIRouter(prefix="/admin/apps/{app_id}/flow", include_in_schema=False)

MAX_FORM_FIELDS = 400
MAX_SAMPLE_CHARS = 4000
PREVIEW_LANGUAGES = ("en", "fr", "de")
PREVIEW_WIDTHS = {"phone": 390, "laptop": 1280}
# Suggested in the audience builder besides the app's mapped fields and a sample's fields.
COMMON_FIELDS = (
    "subscription.status",
    "subscription.plan.interval",
    "subscription.plan.amount",
    "subscription.currency",
    "subscription.created",
    "customer.email",
    "signed.plan_tier",
)
SINGULAR = {
    "reasons": "reason",
    "offers": "offer",
    "audiences": "audience",
    "experiences": "experience",
    "experiments": "experiment",
}


async def posted(request: Request) -> dict[str, list[str]]:
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    found: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            found.setdefault(key, []).append(value)
    return found


Posted = Annotated[dict[str, list[str]], Depends(posted)]


def _base(page: AppPage) -> str:
    return f"/admin/apps/{page.access.app.app_id}/flow"


def _editor(request: Request, page: AppPage, form: Posted) -> None:
    """Every change: a form from this site (CSRF), by an editor or owner."""
    check_csrf(request, page.viewer.session_hash, flow_forms.one(form, "csrf"))
    page.require(EDITOR)


def _conflict_message(error: StayflowError) -> str:
    """A refused save because someone else saved first: say what to do (nothing is lost)."""
    if isinstance(error, service.FlowsChanged):
        return Message(
            "Someone else saved a change here since you opened this page. Yours is not saved "
            "and is still below: compare it with the current version (open the page again in "
            "another tab), then save again to replace theirs."
        )
    return error.message


def _check(request: Request) -> service.OfferCheck:
    return offer_check(request.app.state.services)


def _state(db: Session, page: AppPage) -> dict[str, Any]:
    app = page.access.app
    document, has_draft = service.working(db, app)
    _, live = service.current(db, app)
    return {
        "doc": document,
        "draft": versions.find_draft(db, app) if has_draft else None,
        "live_version": live,
        "can_edit": page.access.allows(EDITOR),
        "base": _base(page),
        "section": "flow",
    }


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise AdminPageError(404, Message("There is no such page."))
    return kind


def _find(doc: dict[str, Any], kind: str, item_id: str) -> dict[str, Any] | None:
    for item in doc.get(kind, []):
        if item.get("id") == item_id:
            return dict(item)
    return None


def _catalog(db: Session, request: Request, page: AppPage) -> tuple[OfferCatalog | None, str]:
    """The app's coupons, promotion codes and prices for the pickers (and why not, if not)."""
    try:
        found = offer_catalog(db, page.access.app, request.app.state.services)
    except BillingError as exc:
        return None, Message("Stripe did not list them: %(reason)s", reason=exc.message)
    if found is None:
        return None, Message("Connect Stripe (with offers on) to pick them from your account.")
    return found, ""


def _fields(db: Session, page: AppPage) -> list[str]:
    app = page.access.app
    mapped = [m.field for m in enrichment.list_mappings(db, app.id)]
    samples = enrichment.sample_subscriptions(db, app.id, limit=1)
    sample = enrichment.mirrored_fields(db, app.id, samples[0].subscription_id) if samples else None
    from_sample = sorted(k for k in (sample or {}) if not k.startswith("enrichment."))
    return list(dict.fromkeys([*mapped, *COMMON_FIELDS, *from_sample]))


def _item_page(
    db: Session,
    request: Request,
    page: AppPage,
    kind: str,
    item: dict[str, Any],
    *,
    new: bool,
    error: StayflowError | None = None,
    base: str | None = None,
) -> Response:
    state = _state(db, page)
    if base is None:  # what the form starts from: the stored item now
        base = service.fingerprint(None if new else _find(state["doc"], kind, item.get("id", "")))
    catalog, catalog_note = _catalog(db, request, page) if kind == "offers" else (None, "")
    rule = flow_forms.conditions_of(item.get("rule")) if kind == "audiences" else None
    return render(
        f"flow_{SINGULAR[kind]}.html",
        error.status_code if error else 200,
        **page.context(
            **state,
            kind=kind,
            item=item,
            new=new,
            error=_conflict_message(error) if error else None,
            item_base=base,
            error_details=(error.details or {}).get("errors", []) if error else [],
            catalog=catalog,
            catalog_note=catalog_note,
            offer_types=OFFER_TYPES,
            feedback_values=FEEDBACK_VALUES,
            copy_languages=flow_forms.LANGUAGES,
            ops=flow_forms.OPS,
            rule=rule,
            nested_rule=kind == "audiences" and not new and rule is None,
            condition_rows=flow_forms.CONDITION_ROWS,
            variant_rows=flow_forms.VARIANT_ROWS,
            shown_value=flow_forms.shown_value,
            fields=_fields(db, page) if kind == "audiences" else [],
            allow_unsigned=read_cancel_settings(page.access.app).allow_unsigned_targeting,
        ),
    )


@router.get("", response_class=HTMLResponse)
def overview(db: DB, page: CurrentAppPage) -> Response:
    return render("flow.html", **page.context(**_state(db, page), notice=None))


@router.get("/yaml", response_class=HTMLResponse)
def yaml_page(db: DB, page: CurrentAppPage) -> Response:
    state = _state(db, page)
    text = fileformat.dump(state["doc"], as_json=False) if state["doc"] else ""
    return render(
        "flow_yaml.html",
        **page.context(
            **state, text=text, error=None, details=[], doc_base=service.fingerprint(state["doc"])
        ),
    )


def _save(
    db: Session,
    page: AppPage,
    form: Posted,
    change: Callable[[bool, str | None], service.Applied],
) -> service.Applied:
    """Save into the draft; with "publish", make the draft live at once (one version)."""
    message = flow_forms.one(form, "message") or None
    publish = flow_forms.one(form, "save") == "publish"
    result = change(True, message)
    if publish:
        result = versions.publish(db, page.access.app, author=page.viewer.user.email)
    return result


@router.post("/yaml")
def save_yaml(request: Request, db: DB, page: CurrentAppPage, form: Posted) -> Response:
    _editor(request, page, form)
    text = flow_forms.one(form, "document")
    app = page.access.app
    try:
        data = fileformat.parse(text, name="the document")
        _save(
            db,
            page,
            form,
            lambda draft, message: service.apply(
                db,
                app,
                data,
                offer_check=_check(request),
                author=page.viewer.user.email,
                message=message,
                draft=draft,
                expected=flow_forms.one(form, "base") or None,
            ),
        )
    except (fileformat.FlowsFileError, StayflowError) as exc:
        db.rollback()
        message = _conflict_message(exc) if isinstance(exc, StayflowError) else str(exc)
        details = exc.details.get("errors", []) if isinstance(exc, StayflowError) else []
        state = _state(db, page)
        conflict = isinstance(exc, service.FlowsChanged)
        base = service.fingerprint(state["doc"]) if conflict else flow_forms.one(form, "base")
        return render(
            "flow_yaml.html",
            409 if conflict else 400,
            **page.context(**state, text=text, error=message, details=details, doc_base=base),
        )
    return redirect(_base(page))


@router.post("/publish")
def publish(request: Request, db: DB, page: CurrentAppPage, form: Posted) -> Response:
    _editor(request, page, form)
    try:
        versions.publish(
            db,
            page.access.app,
            author=page.viewer.user.email,
            message=flow_forms.one(form, "message") or None,
            offer_check=_check(request),
        )
    except StayflowError as exc:
        raise AdminPageError(
            exc.status_code, Message("Not published: %(reason)s", reason=exc.message)
        ) from exc
    return redirect(_base(page) + "/history")


@router.post("/discard")
def discard(request: Request, db: DB, page: CurrentAppPage, form: Posted) -> Response:
    _editor(request, page, form)
    try:
        versions.discard_draft(db, page.access.app)
    except StayflowError as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc
    return redirect(_base(page))


# --- history ---------------------------------------------------------------------------


@router.get("/history", response_class=HTMLResponse)
def history(
    db: DB, page: CurrentAppPage, before: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    rows = versions.list_versions(db, page.access.app, limit=50, before=before)
    return render("flow_history.html", **page.context(**_state(db, page), rows=rows))


def _version(db: Session, page: AppPage, number: int) -> Any:
    try:
        return versions.get_version(db, page.access.app, number)
    except StayflowError as exc:
        raise AdminPageError(404, Message("There is no such version.")) from exc


@router.get("/history/{number}", response_class=HTMLResponse)
def version_page(
    db: DB, page: CurrentAppPage, number: Annotated[int, Path(ge=1, le=2_147_483_647)]
) -> Response:
    found = _version(db, page, number)
    text = fileformat.dump(service.canonical(found.document), as_json=False)
    return render("flow_version.html", **page.context(**_state(db, page), version=found, text=text))


@router.post("/history/{number}/restore")
def restore(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    form: Posted,
    number: Annotated[int, Path(ge=1, le=2_147_483_647)],
) -> Response:
    _editor(request, page, form)
    _version(db, page, number)
    draft = flow_forms.one(form, "draft") == "1"
    try:
        versions.restore(
            db,
            page.access.app,
            number,
            author=page.viewer.user.email,
            draft=draft,
            offer_check=_check(request),
        )
    except StayflowError as exc:
        raise AdminPageError(
            exc.status_code, Message("Not restored: %(reason)s", reason=exc.message)
        ) from exc
    return redirect(_base(page) + ("" if draft else "/history"))


# --- preview ---------------------------------------------------------------------------


def _document_for(db: Session, page: AppPage, source: str) -> tuple[FlowsDocument, str]:
    app = page.access.app
    if source == "draft":
        found = versions.find_draft(db, app)
        if found is not None:
            return FlowsDocument.model_validate(found.document), "draft"
    elif source.isdigit():
        version = _version(db, page, int(source))
        try:
            return FlowsDocument.model_validate(version.document), source
        except ValidationError as exc:
            raise AdminPageError(
                400, Message("This version can no longer be shown: %(reason)s", reason=str(exc))
            ) from exc
    doc, _ = service.current(db, app)
    return doc, "live"


def _sample_fields(text: str, what: str, errors: list[str]) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text[:MAX_SAMPLE_CHARS])
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        errors.append(
            Message("%(what)s: write one field per line (a name, a colon, a value).", what=what)
        )
        return {}
    # JSON-like values only (YAML would make dates of 2026-01-31).
    return {
        str(k): v if isinstance(v, str | int | float | bool | list | dict) else str(v)
        for k, v in data.items()
    }


class PreviewQuery:
    def __init__(
        self,
        source: Annotated[str, Query(max_length=20)] = "live",
        subscription: Annotated[str, Query(max_length=255)] = "",
        stripe_fields: Annotated[str, Query(max_length=MAX_SAMPLE_CHARS)] = "",
        request_fields: Annotated[str, Query(max_length=MAX_SAMPLE_CHARS)] = "",
        lang: Annotated[str, Query(max_length=10)] = "en",
        width: Annotated[str, Query(max_length=10)] = "laptop",
        reason: Annotated[str, Query(max_length=100)] = "",
    ) -> None:
        self.source = source
        self.subscription = subscription.strip()
        self.stripe_fields = stripe_fields
        self.request_fields = request_fields
        self.lang = lang if lang in PREVIEW_LANGUAGES else "en"
        self.width = width if width in PREVIEW_WIDTHS else "laptop"
        self.reason = reason

    def query(self) -> str:
        return urlencode(
            {
                "source": self.source,
                "subscription": self.subscription,
                "stripe_fields": self.stripe_fields,
                "request_fields": self.request_fields,
                "lang": self.lang,
                "width": self.width,
                "reason": self.reason,
            }
        )


def _render_preview(
    db: Session, page: AppPage, q: PreviewQuery
) -> tuple[page_preview.Preview | None, str, list[str]]:
    errors: list[str] = []
    stripe_fields = _sample_fields(q.stripe_fields, Message("Fields from Stripe"), errors)
    request_fields = _sample_fields(q.request_fields, Message("Fields the snippet sends"), errors)
    document, label = _document_for(db, page, q.source)
    if errors:
        return None, label, errors
    shown = page_preview.render(
        db,
        page.access.app,
        document,
        subscription_id=q.subscription,
        stripe_fields=stripe_fields,
        request_fields=request_fields,
        locale=q.lang,
        reason_id=q.reason or None,
        now=utcnow(),
    )
    return shown, label, errors


@router.get("/preview", response_class=HTMLResponse)
def preview(db: DB, page: CurrentAppPage, q: Annotated[PreviewQuery, Depends()]) -> Response:
    shown, label, errors = _render_preview(db, page, q)
    state = _state(db, page)
    document, _ = _document_for(db, page, q.source)
    return render(
        "flow_preview.html",
        400 if errors else 200,
        **page.context(
            **state,
            q=q,
            shown=shown,
            label=label,
            errors=errors,
            reasons=[r.id for r in document.reasons],
            samples=enrichment.sample_subscriptions(db, page.access.app.id, limit=50),
            versions_list=versions.list_versions(db, page.access.app, limit=20),
            preview_languages=PREVIEW_LANGUAGES,
            widths=PREVIEW_WIDTHS,
            frame_url=f"{_base(page)}/preview/frame?{q.query()}",
        ),
    )


@router.get("/preview/frame", response_class=HTMLResponse)
def preview_frame(db: DB, page: CurrentAppPage, q: Annotated[PreviewQuery, Depends()]) -> Response:
    """The real cancel page for the sample, framed by the preview page (and only by it)."""
    shown, _, errors = _render_preview(db, page, q)
    if shown is None:
        raise AdminPageError(400, errors[0])
    return HTMLResponse(shown.html, headers=page_preview.security_headers(shown.nonce))


# --- items -----------------------------------------------------------------------------


@router.get("/{kind}/new", response_class=HTMLResponse)
def new_item(request: Request, db: DB, page: CurrentAppPage, kind: str) -> Response:
    _kind(kind)
    start: dict[str, Any] = {"type": "discount"} if kind == "offers" else {}
    return _item_page(db, request, page, kind, start, new=True)


@router.get("/{kind}/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, db: DB, page: CurrentAppPage, kind: str, item_id: str) -> Response:
    doc, _ = service.working(db, page.access.app)
    found = _find(doc, _kind(kind), item_id)
    if found is None:
        raise AdminPageError(404, Message("There is no such item."))
    return _item_page(db, request, page, kind, found, new=False)


@router.post("/{kind}/{item_id}")
def save_item(
    request: Request, db: DB, page: CurrentAppPage, kind: str, item_id: str, form: Posted
) -> Response:
    _editor(request, page, form)
    app = page.access.app
    doc, _ = service.working(db, app)
    new = item_id == "new"
    existing = {} if new else _find(doc, _kind(kind), item_id)
    if existing is None:
        raise AdminPageError(404, Message("There is no such item."))
    if new:
        item_id = flow_forms.one(form, "id")
    item = flow_forms.BUILDERS[_kind(kind)](existing, form)
    item["id"] = item_id
    try:
        if new and _find(doc, kind, item_id) is not None:
            raise service.InvalidFlows(f"there is already a {SINGULAR[kind]} {item_id!r}")
        if not item_id:
            raise service.InvalidFlows("give it an id (letters, digits, _ . -)")
        _save(
            db,
            page,
            form,
            lambda draft, message: service.put_item(
                db,
                app,
                kind,
                item_id,
                item,
                offer_check=_check(request),
                author=page.viewer.user.email,
                message=message,
                draft=draft,
                expected=None if new else (flow_forms.one(form, "base") or None),
            ),
        )
    except StayflowError as exc:
        db.rollback()
        # After a conflict the form starts from the item as it is now (saving again replaces
        # it knowingly); after any other error, from what the editor started from.
        kept = None if isinstance(exc, service.FlowsChanged) else flow_forms.one(form, "base")
        return _item_page(db, request, page, kind, item, new=new, error=exc, base=kept or None)
    return redirect(_base(page))


@router.post("/{kind}/{item_id}/delete")
def delete_item(
    request: Request, db: DB, page: CurrentAppPage, kind: str, item_id: str, form: Posted
) -> Response:
    _editor(request, page, form)
    try:
        _save(
            db,
            page,
            form,
            lambda draft, message: service.delete_item(
                db,
                page.access.app,
                _kind(kind),
                item_id,
                author=page.viewer.user.email,
                message=message,
                draft=draft,
                expected=flow_forms.one(form, "base") or None,
            ),
        )
    except StayflowError as exc:
        raise AdminPageError(
            exc.status_code, Message("Not deleted: %(reason)s", reason=exc.message)
        ) from exc
    return redirect(_base(page))


@router.post("/reasons/{item_id}/move")
def move_reason(
    request: Request, db: DB, page: CurrentAppPage, item_id: str, form: Posted
) -> Response:
    """Up or down one place in the reasons' order (saved into the draft)."""
    _editor(request, page, form)
    app = page.access.app
    doc, _ = service.working(db, app)
    reasons = list(doc.get("reasons", []))
    index = next((i for i, r in enumerate(reasons) if r.get("id") == item_id), None)
    if index is None:
        raise AdminPageError(404, Message("There is no such reason."))
    other = index - 1 if flow_forms.one(form, "direction") == "up" else index + 1
    if 0 <= other < len(reasons):
        reasons[index], reasons[other] = reasons[other], reasons[index]
        try:
            service.apply(
                db,
                app,
                {**doc, "reasons": reasons},
                author=page.viewer.user.email,
                message=f"moved reason {item_id}",
                draft=True,
            )
        except StayflowError as exc:
            raise AdminPageError(exc.status_code, exc.message) from exc
    return redirect(_base(page))
