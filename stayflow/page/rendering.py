"""Jinja rendering of the page (autoescape on: everything a business or subscriber gave is text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from stayflow.page import i18n
from stayflow.page.schemas import BrandingOut, PageModel, ResultOut

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass
class Completion:
    """What the framed result page tells the host page (``stayflow:complete``)."""

    outcome: str | None
    offer_id: str | None
    session_id: str
    result: dict[str, Any]
    next_url: str | None
    navigate: bool


@dataclass
class Embed:
    """The page is framed by ``origin`` (a modal): its script's settings."""

    origin: str
    nonce: str
    session_id: str
    step: str
    complete: Completion | None = field(default=None)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


def render_page(
    page: PageModel,
    gettext: Callable[[str], str],
    ngettext: Callable[[str, str, int], str],
    *,
    nonce: str,
    error: str | None,
    embed: Embed | None = None,
) -> str:
    titles = {
        "reason": page.copy_text.title,
        "offers": page.copy_text.offers_title,
        "confirm": page.copy_text.confirm_title,
    }
    return _env.get_template("page.html").render(
        page=page,
        brand=page.branding,
        locale=page.locale,
        nonce=nonce,
        error=error,
        embed=embed,
        document_title=titles.get(page.step, gettext("Cancel subscription")),
        _=gettext,
        ngettext=ngettext,
    )


def render_message(
    locale: str,
    *,
    nonce: str,
    heading: str,
    message: str,
    link: tuple[str, str] | None,
    brand: BrandingOut | None = None,
    embed: Embed | None = None,
) -> str:
    translations = i18n.translations(locale)
    return _env.get_template("message.html").render(
        brand=brand or BrandingOut(),
        locale=locale,
        nonce=nonce,
        embed=embed,
        document_title=heading,
        heading=heading,
        message=message,
        link_label=link[0] if link else None,
        link_url=link[1] if link else None,
        _=translations.gettext,
        ngettext=translations.ngettext,
    )


def render_result(
    locale: str,
    *,
    nonce: str,
    result: ResultOut,
    link: tuple[str, str] | None,
    brand: BrandingOut,
    embed: Embed | None = None,
) -> str:
    """The last step: what happened (``result``), branded like the flow."""
    translations = i18n.translations(locale)
    return _env.get_template("result.html").render(
        brand=brand,
        locale=locale,
        nonce=nonce,
        embed=embed,
        document_title=result.heading,
        result=result,
        link_label=link[0] if link else None,
        link_url=link[1] if link else None,
        _=translations.gettext,
        ngettext=translations.ngettext,
    )
