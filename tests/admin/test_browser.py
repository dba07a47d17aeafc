"""The admin web app in Debian's Chromium: sign in, home, a session's story, sign out.

SQLite only (the page logic is covered on both databases by the other admin tests).
Screenshots of every page at phone and laptop widths go to the test's tmp dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from stayflow.admin import service as admin_service
from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import transaction, utcnow
from tests.admin.conftest import PASSWORD
from tests.cancel_flow.helpers import ORIGIN, precancel_body
from tests.cancel_flow.test_browser import Stayflow, browser, stayflow  # noqa: F401
from tests.conftest import TEST_SECRET_KEY

pytestmark = pytest.mark.browser

WIDTHS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


def _shoot(chromium: Any, url_cookies: list[dict[str, Any]], url: str, out: Path) -> None:
    """The page at both widths (a fresh context per width, with the session's cookies)."""
    for name, viewport in WIDTHS.items():
        context = chromium.new_context(viewport=viewport)
        context.add_cookies(url_cookies)
        page = context.new_page()
        page.goto(url)
        page.screenshot(path=str(out.with_name(f"{out.stem}-{name}.png")), full_page=True)
        context.close()


def test_sign_in_home_session_story_sign_out(
    browser: Any,  # noqa: F811
    stayflow: Stayflow,  # noqa: F811
    tmp_path: Path,
) -> None:
    with transaction(stayflow.session_factory) as db:
        created = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "Acme")
        admin_service.create_user(
            db, "ada@example.com", PASSWORD, app_id=created.app.app_id, role="owner", now=utcnow()
        )
    tenant = type("T", (), {"app_id": created.app.app_id, "app_secret": created.app_secret})
    headers = {"Authorization": f"Bearer {created.api_key}"}
    with httpx.Client(base_url=stayflow.url, headers=headers, timeout=10) as api:
        api.patch(
            "/api/v1/cancel-flow/settings", json={"allowed_origins": [ORIGIN]}
        ).raise_for_status()
        made = api.post(
            "/precancel",
            json=precancel_body(tenant, "sub_browser42"),
            headers={"Origin": ORIGIN},
        )
        made.raise_for_status()
        session_id = made.json()["session_id"]

    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(viewport=WIDTHS["laptop"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    page.goto(f"{stayflow.url}/admin")
    assert page.url.startswith(f"{stayflow.url}/admin/login")
    _shoot(browser, [], page.url, shots / "01-login.png")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(f"{stayflow.url}/admin/apps/{created.app.app_id}")
    assert page.get_by_role("heading", name="Acme").is_visible()
    assert page.get_by_text("Not connected.").is_visible()
    snippet = page.get_by_label("Snippet for Acme").input_value()
    assert f'app_id: "{created.app.app_id}"' in snippet
    cookies = context.cookies()
    session_cookie = next(c for c in cookies if c["name"] == "stayflow_admin")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
    _shoot(browser, cookies, page.url, shots / "02-home.png")

    page.get_by_role("link", name="Sessions", exact=True).click()
    page.wait_for_url(f"{stayflow.url}/admin/apps/{created.app.app_id}/sessions")
    assert page.get_by_text("sub_browser42").is_visible()
    _shoot(browser, cookies, page.url, shots / "03-sessions.png")

    page.get_by_role("row", name="sub_browser42").get_by_role("link").click()
    page.wait_for_url(f"**/sessions/{session_id}")
    assert page.get_by_role("heading", name=f"Session {session_id}").is_visible()
    assert (
        page.get_by_role("region", name="Request data")
        .get_by_text("What the snippet sent")
        .is_visible()
    )
    _shoot(browser, cookies, page.url, shots / "04-session.png")

    # Keyboard only: the skip link is the first stop and lands on the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url("**/admin/login?notice=*")
    assert page.get_by_text("You are signed out.").is_visible()
    page.goto(f"{stayflow.url}/admin/apps/{created.app.app_id}/sessions/{session_id}")
    assert "/admin/login" in page.url
    context.close()

    assert all(u.startswith(stayflow.url) for u in requests), requests
    taken = sorted(p.name for p in shots.iterdir())
    assert len(taken) == 8, taken
    print(f"screenshots in {shots}")
