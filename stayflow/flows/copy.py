"""Business copy with merge fields, rendered in a locked-down Jinja sandbox.

Copy such as ``"Stay for 20% off, {{ first_name | default('friend') }}"`` may
only contain ``{{ ... }}`` expressions made of names, attribute or item
look-ups, constants and a few harmless filters. Statements, calls and
operators are refused when the flows are saved, so rendering is cheap and
cannot be abused. Rendering yields plain text; the page escapes it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from babel import UnknownLocaleError
from babel import dates as babel_dates
from jinja2 import Template, TemplateSyntaxError, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

log = logging.getLogger("stayflow.flows.copy")

SAFE_FILTERS = (
    "default",
    "d",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "round",
    "int",
    "date",
)
# The render context's locale, for the ``date`` filter (a name copy itself cannot use).
LOCALE_KEY = "_locale"
DATE_FORMATS = ("short", "medium", "long", "full")
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Filter,
    nodes.Const,
)
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_MERGE_TAG = re.compile(r"\{\{.*?\}\}", re.S)


def as_date(value: Any) -> date | None:
    """A merge field as a date: Stripe's epoch seconds, an ISO string, a date or datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return as_date(int(text))
        try:
            return as_date(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def format_date(value: Any, locale: str, style: str = "long") -> str:
    """``value`` as the locale writes a date (Babel); empty when it is not a date."""
    found = as_date(value)
    if found is None:
        return ""
    style = style if style in DATE_FORMATS else "long"
    try:
        return babel_dates.format_date(found, format=style, locale=locale.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return babel_dates.format_date(found, format=style, locale="en")


@pass_context
def _date_filter(context: Context, value: Any, style: str = "long") -> str:
    return format_date(value, str(context.get(LOCALE_KEY) or "en"), str(style))


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=False, auto_reload=False, cache_size=0)
    env.filters = {name: env.filters[name] for name in SAFE_FILTERS if name != "date"}
    env.filters["date"] = _date_filter
    env.tests = {}
    env.globals = {}
    return env


_ENV = _make_env()


class CopyError(ValueError):
    pass


def _check_nodes(node: nodes.Node) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise CopyError(
            f"merge fields may only use names, '.', constants and filters; "
            f"found {type(node).__name__.lower()}"
        )
    if isinstance(node, nodes.Filter) and node.name not in SAFE_FILTERS:
        raise CopyError(
            f"filter {node.name!r} is not allowed; use one of {', '.join(SAFE_FILTERS)}"
        )
    attribute = getattr(node, "attr", None) if isinstance(node, nodes.Getattr) else None
    if isinstance(node, nodes.Name):
        attribute = node.name
    if attribute is not None and attribute.startswith("_"):
        raise CopyError("merge field names may not start with '_'")
    for child in node.iter_child_nodes():
        _check_nodes(child)


def validate_copy(source: str | None) -> str | None:
    """Raise ValueError when ``source`` is not acceptable copy; return it unchanged."""
    if source is None:
        return None
    if "{%" in source or "{#" in source:
        raise CopyError("copy may contain {{ merge fields }} only, not {% statements %}")
    if "{{" not in source:
        return source
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise CopyError(f"merge field syntax error: {exc.message}") from exc
    _check_nodes(tree)
    return source


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def render_copy(source: str | None, fields: Mapping[str, Any], locale: str = "en") -> str:
    """Fill merge fields from ``fields``; a missing field renders empty unless defaulted.

    ``locale`` is the page's language, for ``{{ subscription.current_period_end | date }}``.
    """
    if not source:
        return ""
    if "{{" not in source:
        return source
    try:
        validate_copy(source)
        return _compiled(source).render({**fields, LOCALE_KEY: locale})
    except Exception:  # a bad template must never break the cancel page
        log.warning("flows.copy.render_failed")
        return _MERGE_TAG.sub("", source)


def check_language_tags(translations: Mapping[str, Any]) -> None:
    for tag in translations:
        if not _LANGUAGE_TAG.match(tag):
            raise ValueError(f"{tag!r} is not a language tag like 'fr' or 'pt-BR'")
