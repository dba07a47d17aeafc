"""Catalogs: every message the page uses is translated in every shipped language."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from stayflow.flows.assignment import BUILTIN_REASONS
from stayflow.page import i18n

PAGE = Path(i18n.__file__).parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def used_messages() -> set[str]:
    found: set[str] = set()
    sources = [(p, "python") for p in PAGE.glob("*.py")]
    sources += [(p, "jinja2.ext:babel_extract") for p in (PAGE / "templates").glob("*.html")]
    for path, method in sources:
        for _line, message, _comments, _ctx in extract_from_file(
            method, str(path), keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    found.update(label for _id, label in BUILTIN_REASONS)
    return found


def test_extraction_finds_the_page_words():
    used = used_messages()
    assert {"Cancel subscription", "Never mind, keep my subscription", "%(num)d month"} <= used
    assert "Please choose a reason before you cancel." in used  # marked with N_
    assert len(used) > 50


@pytest.mark.parametrize("language", [lang for lang in i18n.available_languages() if lang != "en"])
def test_every_message_is_translated(language):
    path = PAGE / "locales" / language / "LC_MESSAGES" / "stayflow.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalog
        if m.id and not m.fuzzy and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    missing = sorted(used_messages() - translated)
    assert missing == [], f"{language}: untranslated {missing}"
    # Placeholders survive translation.
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for placeholder in ("%(num)d", "%(period)s", "%(days)s"):
            if placeholder in ids[0]:
                assert all(placeholder in s for s in strings), (language, message.id)


def test_languages_and_negotiation():
    assert set(i18n.available_languages()) >= {"en", "fr", "de"}
    assert i18n.translations("fr").gettext("Continue") == "Continuer"
    assert (
        i18n.translations("de").ngettext("%(num)d month", "%(num)d months", 2) == "%(num)d Monate"
    )
    assert i18n.negotiate("fr_CA", "de") == "fr"
    assert i18n.negotiate(None, "es, de;q=0.5") == "de"
    assert i18n.negotiate(None, "fr;q=0, de;q=0.1") == "de"
    assert i18n.negotiate("../../etc", None) == "en"
    assert i18n.negotiate(None, None) == "en"
