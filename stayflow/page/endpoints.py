"""The hosted cancel page ``/c/<token>``: HTML for browsers, JSON for headless clients.

The HTML page posts its forms to the same action endpoints a native app calls
with JSON, so the two never drift. Every action needs the page's CSRF token.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from stayflow.billing.actions import inline as billing_inline
from stayflow.billing.actions import service as billing_service
from stayflow.cancel_sessions import service as sessions
from stayflow.cancel_sessions.models import REDIRECTED
from stayflow.cancel_sessions.settings import read as read_settings
from stayflow.db import utcnow
from stayflow.deps import DB, SettingsDep
from stayflow.errors import BadRequest, Forbidden, StayflowError
from stayflow.page import i18n, rendering
from stayflow.page import service as page_service
from stayflow.page.i18n import N_
from stayflow.page.schemas import ActionBody, ActionResultOut, PageModel, ResultOut
from stayflow.webhooks import passthru

router = APIRouter(tags=["cancel page"])
FRAME_SCRIPT = Path(__file__).parent / "static" / "frame.js"

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


def _security_headers(
    nonce: str, form_targets: list[str], frame_origin: str | None = None
) -> dict[str, str]:
    """The page's CSP. Framed only by the page that opened it in a modal (``frame_origin``,
    one of the app's allowed origins); then its one script (the frame's messages) runs."""
    origins = sorted({_origin(u) for u in form_targets if _origin(u)})
    if any(u.startswith("mailto:") for u in form_targets):
        origins.append("mailto:")
    script = f"script-src 'nonce-{nonce}'; " if frame_origin else ""
    ancestors = frame_origin or "'none'"
    headers = {
        "Content-Security-Policy": (
            "default-src 'none'; "
            f"{script}style-src 'nonce-{nonce}'; img-src data:; "
            f"form-action 'self' {' '.join(origins)}; "
            f"base-uri 'none'; frame-ancestors {ancestors}"
        ).replace("  ", " "),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    if not frame_origin:
        headers["X-Frame-Options"] = "DENY"
    return headers


def _embed(
    request: Request, state: page_service.PageState | None, step: str
) -> rendering.Embed | None:
    """What the framed page's script needs, when this session's page may be framed."""
    if state is None:
        return None
    origin = sessions.embed_origin(state.cs, state.settings)
    if origin is None:
        return None
    secret_key = request.app.state.settings.secret_key
    return rendering.Embed(
        origin=origin,
        nonce=sessions.embed_nonce(secret_key, state.cs.token_hash),
        session_id=state.cs.session_id,
        step=step,
    )


def _cors_headers(request: Request, state: page_service.PageState | None) -> dict[str, str]:
    """CORS for the JSON API: a headless client on one of the app's allowed origins."""
    origin = request.headers.get("origin")
    headers = {"Vary": "Origin"}
    allowed = state.settings.allowed_origins if state is not None else []
    if origin and origin.rstrip("/").lower() in allowed:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def _json_error(
    request: Request, exc: StayflowError, state: page_service.PageState | None
) -> JSONResponse:
    return JSONResponse(exc.to_body(), exc.status_code, headers=_cors_headers(request, state))


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
    # Brightback's per-offer return URLs (offer_accept_url, offer_<n>_url), checked at precancel.
    custom = state.cs.request_fields.get("custom")
    per_offer = sessions.offer_return_urls(
        state.cs.request_fields, custom if isinstance(custom, dict) else {}
    )
    urls += [u for u in per_offer.values() if isinstance(u, str)]
    return [u for u in urls if u]


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
    request: Request,
    state: page_service.PageState,
    page: PageModel,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    embed = _embed(request, state, page.step)
    body = rendering.render_page(
        page, state.gettext, state.ngettext, nonce=nonce, error=error, embed=embed
    )
    frame_origin = embed.origin if embed else None
    return HTMLResponse(
        body, status, headers=_security_headers(nonce, _targets(state), frame_origin)
    )


def _html_message(
    request: Request,
    status: int,
    heading: str,
    message: str,
    *,
    locale: str | None = None,
    link: tuple[str, str] | None = None,
    state: page_service.PageState | None = None,
) -> HTMLResponse:
    locale = locale or i18n.negotiate(None, request.headers.get("accept-language"))
    nonce = secrets.token_urlsafe(16)
    # In a modal the message shows in the frame (its link opens in the top window).
    embed = _embed(request, state, "message")
    body = rendering.render_message(
        locale, nonce=nonce, heading=heading, message=message, link=link, embed=embed
    )
    frame_origin = embed.origin if embed else None
    return HTMLResponse(body, status, headers=_security_headers(nonce, [], frame_origin))


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
    embed = _embed(request, state, "finished")
    if embed is not None:
        # In a modal the host page gets the outcome (stayflow:complete) and decides; the
        # URL the subscriber goes on to is the pass-thru URL when the business set one.
        next_url = (
            passthru.destination_for(
                state.cs,
                state.app,
                state.settings,
                request.app.state.encryptor,
                destination or "",
                utcnow(),
            )
            or None
        )
        embed.complete = rendering.Completion(
            outcome=state.cs.outcome,
            offer_id=state.cs.offer_accepted_id,
            session_id=state.cs.session_id,
            result=state.result.model_dump(mode="json"),
            next_url=next_url,
            # Leave the business's page only where the subscriber must go on: a pass-thru
            # URL (the business acts on its token) or an offer that is a link elsewhere.
            navigate=bool(next_url) and (next_url != destination or state.cs.outcome == REDIRECTED),
        )
        destination = next_url
    body = rendering.render_result(
        state.locale,
        nonce=nonce,
        result=state.result,
        link=(gettext("Continue"), destination) if destination else None,
        brand=page_service.branding(state.snap),
        embed=embed,
    )
    frame_origin = embed.origin if embed else None
    return HTMLResponse(
        body, status, headers=_security_headers(nonce, [destination or ""], frame_origin)
    )


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
    back_url = state.cs.save_return_url if state else None
    back = (gettext("Back to your account"), back_url) if back_url else None
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
            state=state,
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
            state=state,
        )
    return _html_message(
        request,
        404,
        gettext("This link is not valid"),
        gettext(
            "We could not find this cancel request. Please go back to your account and try again."
        ),
        locale=locale,
        state=state,
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
        return JSONResponse(
            page.model_dump(mode="json", by_alias=True), headers=_cors_headers(request, state)
        )
    if page.step == "expired":
        return _html_problem(request, sessions.SessionExpired("expired"), state)
    if page.step == "finished":
        return _html_result(request, state)
    return _html_page(request, state, page)


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
        if as_json:
            return _json_error(request, exc, state)
        if state is None:
            raise
        page = _page(request, state, secret_key)
        return _html_page(
            request, state, page, error=state.gettext(_friendly(exc)), status=exc.status_code
        )
    except StayflowError as exc:
        if as_json:
            return _json_error(request, exc, state)
        return _html_problem(request, exc, state)
    # Nowhere to send the subscriber (no URL from the request or the app): the finished
    # page of this session is stayflow's result page.
    result_page = f"/c/{token}"
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
        # "" (no URL): still none after it, so the flow ends on stayflow's result page.
        result = dataclasses.replace(
            result,
            redirect_url=passthru.destination_for(
                state.cs,
                state.app,
                state.settings,
                request.app.state.encryptor,
                result.redirect_url or "",
                now,
            )
            or None,
        )
    if as_json:
        page = _page(request, state, secret_key)
        out = ActionResultOut(
            outcome=result.outcome if result else None,
            redirect_url=(
                (result.redirect_url or f"{request.app.state.settings.base_url}{result_page}")
                if result
                else None
            ),
            replayed=result.replayed if result else False,
            billing=billing,
            page=page,
        )
        return JSONResponse(
            out.model_dump(mode="json", by_alias=True), headers=_cors_headers(request, state)
        )
    if refused:
        page = _page(request, state, secret_key)
        message = state.gettext(
            "Sorry, this offer is no longer available. Please choose another option, or "
            "cancel if you prefer."
        )
        return _html_page(request, state, page, error=message, status=200)
    if result is None:
        return RedirectResponse(f"/c/{token}", status_code=303)
    if billing in ("processing", "failed", "refused"):
        # Stripe did not confirm within the request: the job goes on retrying (or the
        # business is told it failed). Say what will happen, with no button that could
        # send it twice, and let the subscriber go on.
        return _html_result(request, state)
    if not result.redirect_url or _embed(request, state, "finished") is not None:
        # No business page to go back to: the last step is ours (/c/{token}, finished).
        # In a modal too: the framed result page tells the host page the outcome.
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


_PREFLIGHT_HEADERS = "Accept, Accept-Language, Content-Type, X-CSRF-Token"


def _preflight(request: Request, db: DB, token: str, methods: str) -> Response:
    """CORS preflight for the JSON API: allowed for the session's app's allowed origins.

    Reads the session only (no flow assignment, no enrichment): an OPTIONS request must not
    change anything.
    """
    origin = request.headers.get("origin")
    headers = {"Vary": "Origin, Access-Control-Request-Headers"}
    allowed = False
    if origin:
        try:
            cs = sessions.find_by_token(db, token)
        except sessions.SessionNotFound:
            cs = None
        if cs is not None:
            settings = read_settings(sessions.app_of(db, cs))
            allowed = origin.rstrip("/").lower() in settings.allowed_origins
    if allowed and origin:
        headers.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": _PREFLIGHT_HEADERS,
                "Access-Control-Max-Age": "600",
            }
        )
    return Response(status_code=204, headers=headers)


@router.options("/c/{token}", include_in_schema=False)
def preflight_page(token: TOKEN_PATH, request: Request, db: DB) -> Response:
    return _preflight(request, db, token, "GET")


@router.options("/c/{token}/{action}", include_in_schema=False)
def preflight_action(token: TOKEN_PATH, action: str, request: Request, db: DB) -> Response:
    return _preflight(request, db, token, "POST")


@lru_cache(maxsize=1)
def _frame_script() -> str:
    return FRAME_SCRIPT.read_text(encoding="utf-8")


@router.get(
    "/js/stayflow-frame.js",
    summary="The framed cancel page's script (a modal's messages to the page that framed it)",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
def frame_script() -> Response:
    return Response(
        _frame_script(),
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
