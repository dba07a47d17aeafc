"""The page's own words, from gettext catalogs shipped as .po files.

The .po files are compiled in memory (with Babel) the first time a language is
used, so a plain ``pip install`` works with no build step. English is the
source language (the msgids).
"""

from __future__ import annotations

import gettext
import io
import re
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "stayflow"
DEFAULT_LANGUAGE = "en"
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$")


@lru_cache(maxsize=1)
def available_languages() -> tuple[str, ...]:
    found = sorted(
        p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po") if p.is_file()
    )
    return (DEFAULT_LANGUAGE, *[lang for lang in found if lang != DEFAULT_LANGUAGE])


@lru_cache(maxsize=32)
def translations(language: str) -> gettext.NullTranslations:
    if language == DEFAULT_LANGUAGE or language not in available_languages():
        return gettext.NullTranslations()
    return compile_catalog(LOCALES_DIR, language, DOMAIN)


def compile_catalog(locales: Path, language: str, domain: str) -> Translations:
    """A .po catalog compiled in memory (nothing is built at install time)."""
    path = locales / language / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=domain)


def N_(message: str) -> str:
    """Marks a message for the catalogs where it is translated later (at render time)."""
    return message


def _match(tag: str) -> str | None:
    tag = tag.strip().replace("_", "-").lower()
    if not tag or not _TAG.match(tag):
        return None
    languages = available_languages()
    if tag in languages:
        return tag
    primary = tag.split("-", 1)[0]
    return primary if primary in languages else None


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags from an Accept-Language header, best first (q=0 dropped)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(requested: str | None, accept_language: str | None) -> str:
    """The snippet's ``locale`` wins, then the browser's Accept-Language, then English."""
    for candidate in [requested or "", *parse_accept_language(accept_language)]:
        found = _match(candidate)
        if found:
            return found
    return DEFAULT_LANGUAGE
