"""The admin's words in English, French and German.

Catalogs are ``locales/<lang>/LC_MESSAGES/admin.po``, compiled in memory with Babel the
first time a language is used (no build step, so ``pip install .`` from a clone works).
English is the source language (the msgids).

The language of a page: the signed-in user's setting, else the ``stayflow_admin_lang``
cookie (the switcher sets it), else the browser's Accept-Language, else English. The
cookie and header are read by :class:`LanguageMiddleware` into a context variable, so
messages made in Python (:class:`Message`) can be translated wherever they are shown.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from stayflow.page.i18n import compile_catalog, parse_accept_language

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "admin"
DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "fr", "de")
# Each language named in itself, for the switcher.
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "de": "Deutsch"}
LANGUAGE_COOKIE = "stayflow_admin_lang"

_request_language: ContextVar[str] = ContextVar("admin_language", default=DEFAULT_LANGUAGE)
_request_path: ContextVar[str] = ContextVar("admin_path", default="/admin")


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return gettext.NullTranslations()
    return compile_catalog(LOCALES_DIR, language, DOMAIN)


def N_(message: str) -> str:
    """Marks a message for the catalogs; it is translated where it is shown."""
    return message


class Message(str):
    """A message made in Python and translated where it is shown.

    It is its English text (so logs, the CLI and JSON answers read as before) and keeps
    its msgid and parameters, so a page can show it in the reader's language.
    ``Message("Try again in %(minutes)s minutes.", minutes=3)``.
    """

    msgid: str
    params: Mapping[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Message:
        made = super().__new__(cls, msgid % params if params else msgid)
        made.msgid = msgid
        made.params = params
        return made

    def __reduce__(self) -> Any:
        return (_rebuild, (self.msgid, dict(self.params)))


def _rebuild(msgid: str, params: dict[str, Any]) -> Message:
    return Message(msgid, **params)


def translate(text: str, language: str) -> str:
    """``text`` in ``language``: a Message with its parameters, or a plain msgid."""
    gettext_ = translations(language).gettext
    if isinstance(text, Message):
        translated = gettext_(text.msgid)
        if not text.params:
            return translated
        params = {
            k: translate(v, language) if isinstance(v, Message) else v
            for k, v in text.params.items()
        }
        return translated % params
    return gettext_(text) if text else text


def supported(language: str | None) -> str | None:
    if not language:
        return None
    tag = language.strip().replace("_", "-").lower()
    if tag in LANGUAGES:
        return tag
    primary = tag.split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language, else the browser's first supported one, else English."""
    for candidate in [cookie or "", *parse_accept_language(accept_language)]:
        found = supported(candidate)
        if found:
            return found
    return DEFAULT_LANGUAGE


def request_language() -> str:
    """This request's language from its cookie and Accept-Language (not the user's setting)."""
    return _request_language.get()


def request_path() -> str:
    """This request's path and query (where the language switcher comes back to)."""
    return _request_path.get()


def page_language(user_language: str | None) -> str:
    """The user's own setting wins over the browser's."""
    return supported(user_language) or request_language()


def _referer_path(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"referer":
            parts = urlsplit(value.decode("latin-1"))
            host = next((v for n, v in scope.get("headers", []) if n == b"host"), b"")
            if parts.netloc.encode("latin-1") == host and parts.path.startswith("/admin"):
                return str(parts.path) + (f"?{parts.query}" if parts.query else "")
    return "/admin"


class LanguageMiddleware:
    """Reads the language of each /admin request before any route or error page runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/admin"):
            await self.app(scope, receive, send)
            return
        cookie_value: str | None = None
        accept: str | None = None
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                cookie_value = cookie_parser(value.decode("latin-1")).get(LANGUAGE_COOKIE)
            elif name == b"accept-language":
                accept = value.decode("latin-1")[:500]
        path = scope["path"]
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        if scope.get("method") not in ("GET", "HEAD"):
            # A page answering a form post: the switcher comes back to the page the form
            # was on (a same-site Referer), never to the post's own URL.
            path = _referer_path(scope)
        token = _request_language.set(negotiate(cookie_value, accept))
        path_token = _request_path.set(path)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_language.reset(token)
            _request_path.reset(path_token)
