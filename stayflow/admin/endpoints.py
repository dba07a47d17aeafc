"""The admin web app's pages: thin routes over ``service`` and ``views``.

Every page under /admin/apps/{app_id} resolves the app through the signed-in user's
memberships (a 404 for any other app) and every form carries a CSRF token.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from stayflow.admin import (
    endpoints_members,
    endpoints_settings,
    endpoints_webhooks,
    flow_pages,
    i18n,
    service,
    views,
)
from stayflow.admin.i18n import N_, Message
from stayflow.admin.service import SESSION_LIFETIME
from stayflow.admin.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    STATIC,
    AdminPageError,
    CurrentAppPage,
    CurrentViewer,
    Now,
    OptionalViewer,
    SignInRequired,
    check_csrf,
    clear_cookie,
    client_address,
    login_csrf,
    redirect,
    render,
    set_cookie,
    settings_of,
)
from stayflow.deps import DB
from stayflow.errors import StayflowError

router = APIRouter(prefix="/admin", include_in_schema=False)

FormStr = Annotated[str, Form()]

LANGUAGE_COOKIE_AGE = 365 * 24 * 3600

# The sign-in page's notices, named in its URL (never text from the URL itself).
NOTICES = {
    "signed-out": N_("You are signed out."),
    "everywhere": N_("You are signed out on every device."),
}


def _safe_next(value: str) -> str:
    """Only a path inside the admin app (never another site) after signing in."""
    if value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


def _login_page(
    request: Request, next_path: str, error: str | None = None, status_code: int = 200
) -> Response:
    csrf, binding = login_csrf(request)
    settings = settings_of(request)
    response = render(
        "login.html",
        status_code,
        csrf=csrf,
        next_path=_safe_next(next_path),
        error=error,
        notice=NOTICES.get(request.query_params.get("notice", "")),
        viewer=None,
    )
    set_cookie(response, settings, LOGIN_COOKIE, binding, max_age=3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, viewer: OptionalViewer, next: str = "/admin") -> Response:
    if viewer is not None:
        return redirect(_safe_next(next))
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    db: DB,
    now: Now,
    email: FormStr = "",
    password: FormStr = "",
    csrf: FormStr = "",
    next: FormStr = "/admin",
) -> Response:
    check_csrf(request, request.cookies.get(LOGIN_COOKIE), csrf)
    if not email.strip() or not password:
        return _login_page(request, next, Message("Enter your email and your password."), 400)
    try:
        user = service.authenticate(db, email, password, client_address(request), now)
    except StayflowError as exc:
        return _login_page(request, next, exc.message, exc.status_code)
    token = service.start_session(db, user, now)
    response = redirect(_safe_next(next))
    settings = settings_of(request)
    set_cookie(response, settings, SESSION_COOKIE, token, int(SESSION_LIFETIME.total_seconds()))
    clear_cookie(response, settings, LOGIN_COOKIE)
    if user.language:
        # The user's own setting follows them to this browser (and its error pages).
        set_cookie(response, settings, i18n.LANGUAGE_COOKIE, user.language, LANGUAGE_COOKIE_AGE)
    return response


@router.post("/language")
def change_language(
    request: Request,
    db: DB,
    viewer: OptionalViewer,
    csrf: FormStr = "",
    language: FormStr = "",
    next: FormStr = "/admin",
) -> Response:
    """The language switcher: remembered in a cookie, and as the user's setting when signed in."""
    binding = viewer.session_hash if viewer else request.cookies.get(LOGIN_COOKIE)
    check_csrf(request, binding, csrf)
    chosen = i18n.supported(language)
    if chosen is None or chosen != language:
        raise AdminPageError(
            400,
            Message(
                "Choose one of these languages: %(languages)s.", languages=", ".join(i18n.LANGUAGES)
            ),
        )
    if viewer is not None:
        service.set_language(db, viewer.user, chosen)
    response = redirect(_safe_next(next))
    set_cookie(response, settings_of(request), i18n.LANGUAGE_COOKIE, chosen, LANGUAGE_COOKIE_AGE)
    return response


@router.post("/logout")
def logout(
    request: Request, db: DB, viewer: CurrentViewer, csrf: FormStr = "", everywhere: FormStr = ""
) -> Response:
    check_csrf(request, viewer.session_hash, csrf)
    if everywhere:
        service.end_all_sessions(db, viewer.user)
        notice = "everywhere"
    else:
        service.end_session(db, viewer.session_hash)
        notice = "signed-out"
    response = redirect("/admin/login?notice=" + notice)
    clear_cookie(response, settings_of(request), SESSION_COOKIE)
    return response


@router.get("", response_class=HTMLResponse)
def index(viewer: CurrentViewer) -> Response:
    if len(viewer.apps) >= 1:
        return redirect(f"/admin/apps/{viewer.apps[0].app.app_id}")
    return render("no_apps.html", viewer=viewer, csrf=viewer.csrf, current=None)


@router.get("/switch")
def switch(viewer: CurrentViewer, app: str = "") -> Response:
    """The app switcher's form target (works without JavaScript)."""
    if any(a.app.app_id == app for a in viewer.apps):
        return redirect(f"/admin/apps/{app}")
    raise AdminPageError(404, Message("There is no such app."))


@router.get("/apps/{app_id}", response_class=HTMLResponse)
def home(request: Request, db: DB, page: CurrentAppPage, now: Now) -> Response:
    app = page.access.app
    settings = settings_of(request)
    return render(
        "home.html",
        **page.context(
            stripe=views.stripe_summary(db, app, settings),
            outcomes=views.outcomes_this_week(db, app, now),
            week_start=views.week_start(now),
            snippet=views.snippet(settings, app),
            signing_code=views.SIGNING_CODE,
            attention=views.attention(db, app),
        ),
    )


@router.get("/apps/{app_id}/sessions", response_class=HTMLResponse)
def sessions(
    db: DB,
    page: CurrentAppPage,
    outcome: Annotated[str, Query(max_length=20)] = "",
    reason: Annotated[str, Query(max_length=100)] = "",
    offer: Annotated[str, Query(max_length=100)] = "",
    experience: Annotated[str, Query(max_length=100)] = "",
    date_from: Annotated[str, Query(alias="from", max_length=20)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=20)] = "",
    subscription: Annotated[str, Query(max_length=255)] = "",
    customer: Annotated[str, Query(max_length=255)] = "",
    email: Annotated[str, Query(max_length=320)] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    filters, start, end = views.parse_filters(
        outcome,
        date_from,
        date_to,
        subscription,
        customer,
        reason=reason,
        offer=offer,
        experience=experience,
        email=email,
    )
    found = (
        views.SessionPage([], None)
        if filters.errors
        else views.search(db, page.access.app, filters, start, end, after_session=after)
    )
    return render(
        "sessions.html",
        400 if filters.errors else 200,
        **page.context(
            filters=filters,
            rows=found.rows,
            next_cursor=found.next_cursor,
            continued=bool(after),
            outcome_choices=views.OUTCOME_FILTERS,
            page_size=views.PAGE_SIZE,
        ),
    )


@router.get("/apps/{app_id}/sessions/{session_id}", response_class=HTMLResponse)
def session_story(db: DB, page: CurrentAppPage, session_id: str) -> Response:
    found = views.story(db, page.access.app, session_id)
    if found is None:
        raise AdminPageError(404, Message("There is no such session."))
    return render("session.html", **page.context(story=found, pretty=views.pretty))


def install(app: FastAPI) -> None:
    """Add the admin pages, their static files and their HTML error pages to the app."""
    app.include_router(router)
    app.include_router(endpoints_members.router)
    app.include_router(endpoints_settings.router)
    app.include_router(endpoints_webhooks.router)
    app.include_router(flow_pages.router)
    app.add_middleware(i18n.LanguageMiddleware)
    app.mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static")

    @app.exception_handler(AdminPageError)
    async def page_error(_request: Request, exc: AdminPageError) -> Response:
        return render("error.html", exc.status_code, message=exc.message, viewer=None)

    @app.exception_handler(SignInRequired)
    async def sign_in(_request: Request, exc: SignInRequired) -> Response:
        return redirect("/admin/login?next=" + quote(exc.next_path))
