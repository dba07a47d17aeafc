"""Members and invitations: an owner invites by email and role with a one-time link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from stayflow.admin import invites, service
from stayflow.admin.i18n import Message
from stayflow.admin.models import OWNER, ROLES, Invite
from stayflow.admin.service import SESSION_LIFETIME
from stayflow.admin.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    AdminPageError,
    AppPage,
    CurrentAppPage,
    Now,
    OptionalViewer,
    check_csrf,
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


def _members_page(
    db: DB,
    page: AppPage,
    now: Now,
    *,
    status_code: int = 200,
    new_link: str | None = None,
    new_invite: Invite | None = None,
    error: str | None = None,
    form_email: str = "",
) -> Response:
    app = page.access.app
    return render(
        "members.html",
        status_code,
        **page.context(
            members=service.members(db, app),
            invites=invites.pending(db, app, now) if page.access.allows(OWNER) else [],
            roles=ROLES,
            new_link=new_link,
            new_invite=new_invite,
            error=error,
            form_email=form_email,
        ),
    )


@router.get("/apps/{app_id}/members", response_class=HTMLResponse)
def members(db: DB, page: CurrentAppPage, now: Now) -> Response:
    return _members_page(db, page, now)


@router.post("/apps/{app_id}/members/remove")
def remove_member(
    request: Request, db: DB, page: CurrentAppPage, csrf: FormStr = "", email: FormStr = ""
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    try:
        service.remove_member(db, page.access.app, email)
    except StayflowError as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc
    return redirect(f"/admin/apps/{page.access.app.app_id}/members")


@router.post("/apps/{app_id}/invites", response_class=HTMLResponse)
def create_invite(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    now: Now,
    csrf: FormStr = "",
    email: FormStr = "",
    role: FormStr = "",
) -> Response:
    """Answers with the members page showing the new link, once (it is not stored)."""
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    try:
        made = invites.create_invite(
            db, page.access.app, email, role, invited_by=page.viewer.user, now=now
        )
    except StayflowError as exc:
        text = exc.message
        if isinstance(exc, service.InvalidEmail):
            text = Message("Enter an email address like ada@example.com.")
        elif isinstance(exc, service.InvalidRole):
            text = Message("Choose a role: owner, editor or viewer.")
        return _members_page(
            db, page, now, status_code=exc.status_code, error=text, form_email=email[:320]
        )
    link = f"{settings_of(request).base_url.rstrip('/')}/admin/invite/{made.token}"
    return _members_page(db, page, now, new_link=link, new_invite=made.invite)


@router.post("/apps/{app_id}/invites/{invite_id}/revoke")
def revoke_invite(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    now: Now,
    invite_id: int,
    csrf: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    try:
        invites.revoke_invite(db, page.access.app, invite_id, now)
    except StayflowError as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc
    return redirect(f"/admin/apps/{page.access.app.app_id}/members")


def _invite_page(
    request: Request,
    found: invites.OpenInvite,
    viewer: OptionalViewer,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    csrf, binding = login_csrf(request)
    response = render(
        "invite.html",
        status_code,
        csrf=csrf,
        invite=found.invite,
        app=found.app,
        existing=found.existing_user is not None,
        error=error,
        viewer=viewer,
        current=None,
    )
    set_cookie(response, settings_of(request), LOGIN_COOKIE, binding, max_age=3600)
    return response


def _open(db: DB, token: str, now: Now) -> invites.OpenInvite:
    try:
        return invites.open_invite(db, token[:100], now)
    except StayflowError as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc


@router.get("/invite/{token}", response_class=HTMLResponse)
def invite_form(request: Request, db: DB, now: Now, viewer: OptionalViewer, token: str) -> Response:
    return _invite_page(request, _open(db, token, now), viewer)


@router.post("/invite/{token}")
def accept_invite(
    request: Request,
    db: DB,
    now: Now,
    viewer: OptionalViewer,
    token: str,
    csrf: FormStr = "",
    password: FormStr = "",
    password_again: FormStr = "",
) -> Response:
    check_csrf(request, request.cookies.get(LOGIN_COOKIE), csrf)
    found = _open(db, token, now)
    if found.existing_user is None and password != password_again:
        return _invite_page(
            request,
            found,
            viewer,
            error=Message("The two passwords differ. Type the same password twice."),
            status_code=400,
        )
    try:
        user, app = invites.accept_invite(
            db, token[:100], password, address=client_address(request), now=now
        )
    except invites.InviteGone as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc
    except StayflowError as exc:
        text = exc.message
        if isinstance(exc, service.WeakPassword):
            text = Message(
                "Choose a password of at least %(count)s characters.",
                count=service.MIN_PASSWORD_LENGTH,
            )
        return _invite_page(request, found, viewer, error=text, status_code=exc.status_code)
    session = service.start_session(db, user, now)
    response = redirect(f"/admin/apps/{app.app_id}")
    settings = settings_of(request)
    set_cookie(response, settings, SESSION_COOKIE, session, int(SESSION_LIFETIME.total_seconds()))
    return response
