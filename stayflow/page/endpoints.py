"""The hosted cancel page ``/c/<token>``: HTML for browsers, JSON for headless clients.

The HTML page posts its forms to the same action endpoints a native app calls
with JSON, so the two never drift. Every action needs the page's CSRF token.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from stayflow.billing.actions import inline as billing_inline
from stayflow.billing.actions import service as billing_service
from stayflow.cancel_sessions import service as sessions
from stayflow.db import utcnow
from stayflow.deps import DB, SettingsDep
from stayflow.errors import BadRequest, Forbidden, StayflowError
from stayflow.page import i18n, rendering
from stayflow.page import service as page_service
from stayflow.page.i18n import N_
from stayflow.page.schemas import ActionBody, ActionResultOut, PageModel, ResultOut
from stayflow.webhooks import passthru

router = APIRouter(tags=["cancel page"])

MAX_ACTION_BYTES = 16_384
TOKEN_PATH = Annotated[str, "the page token from the precancel URL"]
_ACTION_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": ActionBody.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": ActionBody.model_json_schema()},
        },
    }
}
_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ActionResultOut, "description": "With Accept: application/json."},
    303: {"description": "For a browser form: on to the next step or the business's URL."},
}


class CsrfFailed(Forbidden):
    error_type = "csrf_failed"


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    content_type = request.headers.get("content-type", "")
    if "text/html" in accept:
        return False
    return "application/json" in accept or content_type.startswith("application/json")


async def action_body(request: Request) -> ActionBody:
    content_type = request.headers.get("content-type", "")
    data: Any = {}
    if content_type.startswith("application/json"):
        raw = await request.body()
        if len(raw) > MAX_ACTION_BYTES:
            raise BadRequest("the body is too large")
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("the body must be a JSON object") from exc
    elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form(max_files=0, max_fields=20)
        data = {k: v for k, v in form.items() if isinstance(v, str)}
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        return ActionBody.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        raise BadRequest(f"{where}: {error.get('msg', 'invalid')}") from exc


Body = Annotated[ActionBody, Depends(action_body)]


def _security_headers(nonce: str, form_targets: list[str]) -> dict[str, str]:
    origins = sorted({_origin(u) for u in form_targets if _origin(u)})
    if any(u.startswith("mailto:") for u in form_targets):
        origins.append("mailto:")
    return {
        "Content-Security-Policy": (
            "default-src 'none'; "
            f"style-src 'nonce-{nonce}'; img-src data:; "
            f"form-action 'self' {' '.join(origins)}; "
            "base-uri 'none'; frame-ancestors 'none'"
        ).replace("  ", " "),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _origin(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _targets(state: page_service.PageState) -> list[str]:
    urls = [state.cs.save_return_url, state.cs.cancel_confirmation_url]
    urls += [o.url for o in state.snap.offers if o.type == "redirect"]
    return urls


def _page(
    request: Request, state: page_service.PageState, secret_key: str, step: str | None = None
) -> PageModel:
    return page_service.build(
        state,
        csrf_token=sessions.csrf_token(secret_key, state.cs),
        base_path=f"/c/{request.path_params['token']}",
        now=utcnow(),
        wanted_step=step,
    )


def _html_page(
    state: page_service.PageState, page: PageModel, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = rendering.render_page(page, state.gettext, state.ngettext, nonce=nonce, error=error)
    return HTMLResponse(body, status, headers=_security_headers(nonce, _targets(state)))


def _html_message(
    request: Request,
    status: int,
    heading: str,
    message: str,
    *,
    locale: str | None = None,
    link: tuple[str, str] | None = None,
) -> HTMLResponse:
    locale = locale or i18n.negotiate(None, request.headers.get("accept-language"))
    nonce = secrets.token_urlsafe(16)
    body = rendering.render_message(
        locale, nonce=nonce, heading=heading, message=message, link=link
    )
    return HTMLResponse(body, status, headers=_security_headers(nonce, []))


def _html_result(
    request: Request, state: page_service.PageState, status: int = 200
) -> HTMLResponse:
    """The last step, branded like the flow: what happened, and on to the business if it
    gave a URL. A reopened finished link shows the same."""
    gettext = state.gettext
    if state.result is None:
        state.result = result_of(request, state)
    destination = sessions.destination(state.cs, state.snap)
    nonce = secrets.token_urlsafe(16)
    body = rendering.render_result(
        state.locale,
        nonce=nonce,
        result=state.result,
        link=(gettext("Continue"), destination) if destination else None,
        brand=page_service.branding(state.snap),
    )
    return HTMLResponse(body, status, headers=_security_headers(nonce, [destination or ""]))


def result_of(request: Request, state: page_service.PageState) -> ResultOut:
    from stayflow.page.result import describe

    with request.app.state.session_factory() as db:
        return describe(db, state.cs, state.locale)


def _html_problem(
    request: Request, exc: StayflowError, state: page_service.PageState | None
) -> HTMLResponse:
    """A polite page for a session that cannot go on."""
    locale = state.locale if state else None
    _ = i18n.translations(locale or i18n.negotiate(None, request.headers.get("accept-language")))
    gettext = _.gettext
    back = (gettext("Back to your account"), state.cs.save_return_url) if state else None
    if isinstance(exc, sessions.SessionExpired):
        return _html_message(
            request,
            410,
            gettext("This link has expired"),
            gettext(
                "For your security, cancel links only work for a while. Go back to your "
                "account and choose Cancel again; it only takes a moment."
            ),
            locale=locale,
            link=back,
        )
    if isinstance(exc, sessions.SessionFinished) and state is not None:
        return _html_result(request, state, 409)
    if isinstance(exc, CsrfFailed):
        return _html_message(
            request,
            403,
            gettext("This page is out of date"),
            gettext("Please reload the page and try again."),
            locale=locale,
        )
    return _html_message(
        request,
        404,
        gettext("This link is not valid"),
        gettext(
            "We could not find this cancel request. Please go back to your account and try again."
        ),
        locale=locale,
    )


@router.get(
    "/c/{token}",
    summary="The cancel page (HTML), or its model with Accept: application/json",
    response_model=PageModel,
    responses={200: {"content": {"text/html": {}}}, 404: {}, 410: {}},
)
def show_page(
    token: TOKEN_PATH,
    request: Request,
    db: DB,
    settings: SettingsDep,
    step: str | None = Query(None, pattern="^reason$", description="'reason' to change it."),
) -> Response:
    as_json = wants_json(request)
    state = None
    # Enrichment's live Stripe read (if any) before this request's transaction begins, so
    # no database lock is held while Stripe answers (see StripeEnricher.prefetch_for_token).
    prefetch = getattr(request.app.state.services.get("enricher"), "prefetch_for_token", None)
    if prefetch is not None:
        prefetch(token)
    try:
        state = page_service.load(
            db, token, request.app.state.services, request.headers.get("accept-language"), utcnow()
        )
    except sessions.SessionNotFound as exc:
        if as_json:
            raise
        return _html_problem(request, exc, None)
    page = _page(request, state, settings.secret_key, step)
    if as_json:
        return JSONResponse(page.model_dump(mode="json", by_alias=True))
    if page.step == "expired":
        return _html_problem(request, sessions.SessionExpired("expired"), state)
    if page.step == "finished":
        return _html_result(request, state)
    return _html_page(state, page)


def _run_action(
    action: str,
    token: str,
    request: Request,
    db: DB,
    secret_key: str,
    body: ActionBody,
) -> Response:
    as_json = wants_json(request)
    now = utcnow()
    state: page_service.PageState | None = None
    try:
        state = page_service.load(
            db, token, request.app.state.services, request.headers.get("accept-language"), now
        )
        given = body.csrf_token or request.headers.get("x-csrf-token")
        if not sessions.csrf_valid(secret_key, state.cs, given):
            raise CsrfFailed("missing or wrong csrf_token; take it from the page")
        result: sessions.ActionResult | None = None
        if action == "reason":
            sessions.record_reason(db, state.cs, state.snap, body.reason_id, body.comment, now)
        elif action == "accept":
            if body.offer_id in state.hidden_offers:
                # Refused by Stripe before (or to this subscriber): not on offer any more.
                raise sessions.UnknownChoice("that offer is not available in this session")
            result = sessions.accept_offer(db, state.cs, state.snap, body.offer_id, now)
        elif action == "deflect":
            result = sessions.deflect(db, state.cs, state.snap, now)
        else:
            result = sessions.cancel(
                db, state.cs, state.snap, state.settings, body.reason_id, body.comment, now
            )
    except (sessions.ReasonRequired, sessions.UnknownChoice, BadRequest) as exc:
        if as_json or state is None:
            raise
        page = _page(request, state, secret_key)
        return _html_page(state, page, error=state.gettext(_friendly(exc)), status=exc.status_code)
    except StayflowError as exc:
        if as_json:
            raise
        return _html_problem(request, exc, state)
    billing = None
    refused = False
    if result is not None:
        # Commits the outcome and its job (claimed by this request), runs the billing
        # action's attempt, or waits for it when another request owns it.
        billing = billing_inline.after_outcome(
            db,
            request.app.state.session_factory,
            request.app.state.services,
            state.cs.session_id,
            action,
            replayed=result.replayed,
        )
        if billing == "refused" and action == "accept":
            # Stripe refused the offer itself: nothing is saved, back to the offers.
            offer_id = billing_service.release_refused_offer(db, state.cs.session_id)
            refused = offer_id is not None and sessions.reopen_after_refusal(db, state.cs, offer_id)
        page_service.refresh(db, state)
    if refused:
        result = None
    elif result is not None:
        # A pass-thru URL (webhooks), if the business set one for this outcome, replaces
        # the destination: the subscriber arrives there with a signed token.
        result = dataclasses.replace(
            result,
            redirect_url=passthru.destination_for(
                state.cs,
                state.app,
                state.settings,
                request.app.state.encryptor,
                result.redirect_url,
                now,
            ),
        )
    if as_json:
        page = _page(request, state, secret_key)
        out = ActionResultOut(
            outcome=result.outcome if result else None,
            redirect_url=(result.redirect_url or None) if result else None,
            replayed=result.replayed if result else False,
            billing=billing,
            page=page,
        )
        return JSONResponse(out.model_dump(mode="json", by_alias=True))
    if refused:
        page = _page(request, state, secret_key)
        message = state.gettext(
            "Sorry, this offer is no longer available. Please choose another option, or "
            "cancel if you prefer."
        )
        return _html_page(state, page, error=message, status=200)
    if result is None:
        return RedirectResponse(f"/c/{token}", status_code=303)
    if billing in ("processing", "failed", "refused"):
        # Stripe did not confirm within the request: the job goes on retrying (or the
        # business is told it failed). Say what will happen, with no button that could
        # send it twice, and let the subscriber go on.
        return _html_result(request, state)
    if not result.redirect_url:
        # No business page to go back to: the last step is ours (/c/{token}, finished).
        return RedirectResponse(f"/c/{token}", status_code=303)
    return RedirectResponse(result.redirect_url, status_code=303)


def _friendly(exc: StayflowError) -> str:
    if isinstance(exc, sessions.ReasonRequired):
        return N_("Please choose a reason before you cancel.")
    if isinstance(exc, sessions.UnknownChoice):
        return N_("Please choose one of the options shown.")
    return N_("Something in the form was not right. Please try again.")


@router.post(
    "/c/{token}/reason",
    summary="Record the reason (reason_id, comment)",
    responses=_ACTION_RESPONSES,
    openapi_extra=_ACTION_BODY,
    response_class=Response,
)
def post_reason(
    token: TOKEN_PATH, request: Request, db: DB, settings: SettingsDep, body: Body
) -> Response:
    return _run_action("reason", token, request, db, settings.secret_key, body)


@router.post(
    "/c/{token}/accept",
    summary="Accept an offer (offer_id): outcome saved, billing job enqueued",
    responses=_ACTION_RESPONSES,
    openapi_extra=_ACTION_BODY,
    response_class=Response,
)
def post_accept(
    token: TOKEN_PATH, request: Request, db: DB, settings: SettingsDep, body: Body
) -> Response:
    return _run_action("accept", token, request, db, settings.secret_key, body)


@router.post(
    "/c/{token}/deflect",
    summary="Never mind: outcome deflected, back to save_return_url",
    responses=_ACTION_RESPONSES,
    openapi_extra=_ACTION_BODY,
    response_class=Response,
)
def post_deflect(
    token: TOKEN_PATH, request: Request, db: DB, settings: SettingsDep, body: Body
) -> Response:
    return _run_action("deflect", token, request, db, settings.secret_key, body)


@router.post(
    "/c/{token}/cancel",
    summary="Cancel (optionally with reason_id, comment): outcome canceled, billing job enqueued",
    responses=_ACTION_RESPONSES,
    openapi_extra=_ACTION_BODY,
    response_class=Response,
)
def post_cancel(
    token: TOKEN_PATH, request: Request, db: DB, settings: SettingsDep, body: Body
) -> Response:
    return _run_action("cancel", token, request, db, settings.secret_key, body)
