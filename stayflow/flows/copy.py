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
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

log = logging.getLogger("stayflow.flows.copy")

SAFE_FILTERS = ("default", "d", "upper", "lower", "title", "capitalize", "trim", "round", "int")
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


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=False, auto_reload=False, cache_size=0)
    env.filters = {name: env.filters[name] for name in SAFE_FILTERS}
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


def render_copy(source: str | None, fields: Mapping[str, Any]) -> str:
    """Fill merge fields from ``fields``; a missing field renders empty unless defaulted."""
    if not source:
        return ""
    if "{{" not in source:
        return source
    try:
        validate_copy(source)
        return _compiled(source).render(dict(fields))
    except Exception:  # a bad template must never break the cancel page
        log.warning("flows.copy.render_failed")
        return _MERGE_TAG.sub("", source)


def check_language_tags(translations: Mapping[str, Any]) -> None:
    for tag in translations:
        if not _LANGUAGE_TAG.match(tag):
            raise ValueError(f"{tag!r} is not a language tag like 'fr' or 'pt-BR'")
