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


def test_french_high_punctuation_keeps_to_its_word():
    """French puts a space before ? ! : ; -- a narrow no-break one (U+202F), so the mark
    never wraps onto a line of its own. The catalogs are read at runtime (no .mo to build)."""
    import re

    path = PAGE / "locales" / "fr" / "LC_MESSAGES" / "stayflow.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            if re.search(r"(?<!\u202f)[?!:;]", text):
                wrong.append(text)
    assert wrong == []
    gettext = i18n.translations("fr").gettext
    assert gettext("Why are you cancelling?") == "Pourquoi résiliez-vous\u202f?"


def test_dates_in_merge_fields_follow_the_language():
    from stayflow.flows.copy import render_copy, validate_copy

    source = "Renews on {{ subscription.current_period_end | date }}"
    assert validate_copy(source) == source
    fields = {"subscription": {"current_period_end": 1801526400}}  # 2027-02-02 00:00 UTC
    assert render_copy(source, fields, "en") == "Renews on February 2, 2027"
    assert render_copy(source, fields, "fr") == "Renews on 2 février 2027"
    assert render_copy(source, fields, "de") == "Renews on 2. Februar 2027"
    short = "{{ subscription.current_period_end | date('short') }}"
    assert render_copy(short, fields, "de") == "02.02.27"
    # ISO strings too; anything else is left empty rather than breaking the page.
    assert render_copy("{{ d | date }}", {"d": "2027-01-15T10:00:00Z"}, "en") == "January 15, 2027"
    assert render_copy("{{ d | date }}", {"d": "soon"}, "en") == ""
    assert render_copy("{{ d | date }}", {}, "en") == ""
