"""What every admin page needs: templates, the clock, the signed-in user, CSRF and roles."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from stayflow.admin import i18n, service
from stayflow.admin.i18n import N_, Message
from stayflow.admin.models import EDITOR, OWNER, VIEWER, User
from stayflow.db import utcnow
from stayflow.deps import DB
from stayflow.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "stayflow_admin"
LOGIN_COOKIE = "stayflow_admin_login"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


ROLE_NAMES = {OWNER: N_("owner"), EDITOR: N_("editor"), VIEWER: N_("viewer")}
OUTCOME_NAMES = {
    "open": N_("open"),
    "saved": N_("saved"),
    "deflected": N_("deflected"),
    "canceled": N_("canceled"),
    "redirected": N_("redirected"),
    "abandoned": N_("abandoned"),
}


@lru_cache(maxsize=len(i18n.LANGUAGES))
def environment(language: str) -> Environment:
    """The templates in one language.

    Every visible string in a template goes through `_()` (new-style gettext:
    `_("Hello %(name)s", name=x)`); `tr(text)` shows a message made in Python
    (an :class:`i18n.Message` or a marked constant) in the page's language.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language), newstyle=True
    )
    env.globals["tr"] = lambda text: i18n.translate(text, language)
    env.globals["language"] = language
    env.globals["languages"] = i18n.LANGUAGE_NAMES
    env.globals["pretty"] = _pretty
    env.globals["role_names"] = ROLE_NAMES
    env.globals["outcome_names"] = OUTCOME_NAMES
    return env


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
}


class AdminPageError(Exception):
    """Answered as an HTML page with this status (403, 404, ...).

    ``message`` is shown translated when it is an :class:`i18n.Message`.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page in the signed-in user's language, else the browser's (see ``i18n``)."""
    viewer = context.get("viewer")
    language = i18n.page_language(viewer.user.language if viewer is not None else None)
    context.setdefault("here", i18n.request_path())
    html = environment(language).get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def admin_now() -> datetime:
    """The clock of the admin pages (tests override this dependency)."""
    return utcnow()


Now = Annotated[datetime, Depends(admin_now)]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def secure_cookies(settings: Settings) -> bool:
    """Secure cookies unless stayflow is served over plain http on this machine."""
    parts = urlsplit(settings.base_url)
    return not (parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"))


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/admin", httponly=True, samesite="lax", secure=secure_cookies(settings)
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Viewer:
    """The signed-in user of this request."""

    user: User
    session_hash: str
    csrf: str
    apps: list[service.AppAccess]


def _viewer(request: Request, db: Session, now: datetime) -> Viewer | None:
    found = service.user_of_session(db, request.cookies.get(SESSION_COOKIE), now)
    if found is None:
        return None
    user, session_hash = found
    secret = settings_of(request).secret_key
    return Viewer(user, session_hash, service.csrf_token(secret, session_hash), [])


def current_viewer(request: Request, db: DB, now: Now) -> Viewer:
    viewer = _viewer(request, db, now)
    if viewer is None:
        raise SignInRequired(request.url.path)
    viewer.apps = service.apps_of(db, viewer.user)
    return viewer


def optional_viewer(request: Request, db: DB, now: Now) -> Viewer | None:
    return _viewer(request, db, now)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
OptionalViewer = Annotated[Viewer | None, Depends(optional_viewer)]


@dataclass
class AppPage:
    """The signed-in user inside one of their apps (any other app is a 404)."""

    viewer: Viewer
    access: service.AppAccess

    def require(self, role: str) -> None:
        if not self.access.allows(role):
            raise AdminPageError(
                403, Message("Your role (%(role)s) cannot do this.", role=self.access.role)
            )

    def context(self, **extra: Any) -> dict[str, Any]:
        return {
            "viewer": self.viewer,
            "current": self.access,
            "csrf": self.viewer.csrf,
            **extra,
        }


def app_page(app_id: str, viewer: CurrentViewer) -> AppPage:
    for entry in viewer.apps:
        if entry.app.app_id == app_id:
            return AppPage(viewer, entry)
    raise AdminPageError(404, Message("There is no such page."))


CurrentAppPage = Annotated[AppPage, Depends(app_page)]


def check_csrf(request: Request, binding: str | None, given: str) -> None:
    if not service.csrf_valid(settings_of(request).secret_key, binding, given):
        raise AdminPageError(
            403,
            Message(
                "This form has expired or did not come from this site. Reload it and try again."
            ),
        )


def new_login_binding() -> str:
    return secrets.token_urlsafe(24)


def login_csrf(request: Request) -> tuple[str, str]:
    """(CSRF token, binding) for a form shown before signing in; the binding goes in the
    ``stayflow_admin_login`` cookie (set it on the response)."""
    binding = request.cookies.get(LOGIN_COOKIE) or new_login_binding()
    return service.csrf_token(settings_of(request).secret_key, binding), binding
