"""The admin in English, French and German.

Every message the admin shows (``_()`` in templates, ``_``/``N_``/``Message`` in Python) has a
French and a German translation, placeholders survive, and pages render in the language the
user chose (their setting, then the switcher's cookie, then Accept-Language).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from stayflow.admin import i18n
from tests.admin.conftest import csrf_of, sign_in

ADMIN = Path(i18n.__file__).parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "Message": None}
JINJA_OPTIONS = {
    "extensions": "jinja2.ext.i18n",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
    "newstyle_gettext": "true",
}
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


def used_messages() -> set[str]:
    """Every message marked in the admin's Python files and templates."""
    found: set[str] = set()
    for path in sorted(ADMIN.rglob("*.py")):
        for _line, message, _c, _ctx in extract_from_file("python", str(path), keywords=KEYWORDS):
            found.add(message[0] if isinstance(message, tuple) else message)
    for path in sorted((ADMIN / "templates").rglob("*.html")):
        for _line, message, _c, _ctx in extract_from_file(
            "jinja2.ext:babel_extract", str(path), keywords=KEYWORDS, options=JINJA_OPTIONS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _catalog(language: str):
    with (ADMIN / "locales" / language / "LC_MESSAGES" / "admin.po").open("rb") as handle:
        return read_po(handle)


def test_extraction_finds_template_and_python_messages():
    used = used_messages()
    assert {"Sign in", "Sessions this week", "What the snippet sent"} <= used  # templates
    assert "The email or the password is wrong." in used  # Message(...) in the service
    assert "You are signed out." in used  # N_ in the endpoints
    assert len(used) > 80


@pytest.mark.parametrize("language", ["fr", "de"])
def test_every_admin_message_is_translated(language):
    catalog = _catalog(language)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = sorted(used_messages() - translated)
    assert missing == [], f"{language}: untranslated {missing}"
    for message in catalog:
        if message.id:
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
                PLACEHOLDER.findall(message.string)
            ), (language, message.id)


def test_french_high_punctuation_keeps_to_its_word():
    """A narrow no-break space before ? ! : ; ending a clause, so the mark never wraps alone
    (``https://`` and ``webhook_endpoints:write`` are not clauses)."""
    wrong = [
        m.string
        for m in _catalog("fr")
        if m.id and re.search(r"(?<!\u202f)[?!:;](?:\s|$)", m.string or "")
    ]
    assert wrong == []


def test_messages_made_in_python_translate_with_their_parameters():
    message = i18n.Message(
        "Too many failed sign-ins for this account. Try again in %(minutes)s minutes.", minutes=3
    )
    assert message == "Too many failed sign-ins for this account. Try again in 3 minutes."
    assert i18n.translate(message, "de") == (
        "Zu viele fehlgeschlagene Anmeldungen für dieses Konto. "
        "Versuchen Sie es in 3 Minuten erneut."
    )
    nested = i18n.Message("%(field)s: use a date like 2026-12-01.", field=i18n.Message("From"))
    assert i18n.translate(nested, "fr") == "Du\u202f: utilisez une date comme 2026-12-01."
    assert i18n.translate("Sign in", "fr") == "Se connecter"
    assert i18n.translate("text nobody marked", "fr") == "text nobody marked"


def test_negotiation():
    assert i18n.negotiate(None, "de-CH, fr;q=0.5") == "de"
    assert i18n.negotiate("fr", "de") == "fr"
    assert i18n.negotiate("xx", "es, fr;q=0.1") == "fr"
    assert i18n.negotiate("../../etc", None) == "en"
    assert i18n.negotiate(None, None) == "en"


def test_sign_in_page_follows_accept_language(browser_client):
    client = browser_client()
    french = client.get("/admin/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.text
    assert "Se connecter" in french.text and "Mot de passe" in french.text
    german = client.get("/admin/login", headers={"Accept-Language": "de"})
    assert "Anmelden" in german.text and "Passwort" in german.text
    english = client.get("/admin/login", headers={"Accept-Language": "es"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text


def test_wrong_password_and_throttling_messages_in_french(browser_client, add_user, owner):
    add_user("ada@example.com", owner.app_id)
    client = browser_client()
    client.headers["Accept-Language"] = "fr"
    wrong = sign_in(client, "ada@example.com", "not-the-password")
    assert wrong.status_code == 401
    assert "L\u2019e-mail ou le mot de passe est incorrect." in wrong.text
    for _ in range(5):
        locked = sign_in(client, "ada@example.com", "not-the-password")
    assert locked.status_code == 429
    assert "Trop d" in locked.text and "Réessayez dans 15 minutes." in locked.text


def test_switcher_cookie_then_users_setting_win(browser_client, add_user, owner, signed_in):
    add_user("ada@example.com", owner.app_id)
    # Before signing in: the switcher sets a cookie that beats Accept-Language.
    client = browser_client()
    form = client.get("/admin/login", headers={"Accept-Language": "de"})
    switched = client.post(
        "/admin/language",
        data={"csrf": csrf_of(form.text), "language": "fr", "next": "/admin/login"},
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/admin/login"
    assert "Se connecter" in client.get("/admin/login", headers={"Accept-Language": "de"}).text

    # Signed in: choosing German is saved as the user's setting ...
    ada = signed_in("ada@example.com")
    home = f"/admin/apps/{owner.app_id}"
    assert "Sessions this week" in ada.client.get(home).text
    changed = ada.client.post(
        "/admin/language", data={"csrf": ada.csrf(home), "language": "de", "next": home}
    )
    assert changed.status_code == 303 and changed.headers["location"] == home
    assert "Sitzungen dieser Woche" in ada.client.get(home).text
    # ... which wins over another browser's cookie and Accept-Language.
    other = browser_client()
    other.cookies.set(i18n.LANGUAGE_COOKIE, "fr", path="/admin")
    assert sign_in(other, "ada@example.com").status_code == 303
    page = other.get(home, headers={"Accept-Language": "fr"})
    assert '<html lang="de">' in page.text and "Sitzungen dieser Woche" in page.text
    # The error pages of that browser follow too (the sign-in set the cookie).
    missing = other.get(f"/admin/apps/{owner.app_id}/sessions/nope")
    assert missing.status_code == 404 and "Diese Sitzung gibt es nicht." in missing.text


def test_language_switch_refuses_bad_input(browser_client, add_user, owner, signed_in):
    add_user("ada@example.com", owner.app_id)
    ada = signed_in("ada@example.com")
    home = f"/admin/apps/{owner.app_id}"
    token = ada.csrf(home)
    bad = ada.client.post("/admin/language", data={"csrf": token, "language": "xx"})
    assert bad.status_code == 400 and "en, fr, de" in bad.text
    forged = ada.client.post("/admin/language", data={"csrf": "nope", "language": "fr"})
    assert forged.status_code == 403
    offsite = ada.client.post(
        "/admin/language", data={"csrf": token, "language": "fr", "next": "https://evil.test/"}
    )
    assert offsite.status_code == 303 and offsite.headers["location"] == "/admin"
    assert '<html lang="fr">' in ada.client.get(home).text
