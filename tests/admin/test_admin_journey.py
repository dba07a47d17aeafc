"""The admin web app in Debian's Chromium, end to end, against the Stripe sandbox.

Sign in (a wrong password, then throttling), connect a restricted key and see the missing
permission named, map a field and see its converted sample, run a session through the
snippet and find it with its story, webhooks and invitations, the French UI; a viewer is
refused by the server; another app's pages are 404s. Screenshots of every page at phone
(390 px) and laptop (1280 px) widths go to the test's tmp dir (STAYFLOW_SHOTS=dir keeps them).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from stayflow.admin import service as admin_service
from stayflow.app import create_app
from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, transaction, utcnow
from stayflow.settings import Settings
from tests.admin.conftest import PASSWORD
from tests.cancel_flow.helpers import FLOWS_YAML
from tests.cancel_flow.test_browser import (  # noqa: F401
    HostSite,
    Stayflow,
    browser,
    free_port,
    host,
    snippet_data,
    wait_for_port,
)
from tests.conftest import TEST_SECRET_KEY, _clean

pytestmark = pytest.mark.browser

WIDTHS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


class Shots:
    def __init__(self, chromium: Any, folder: Path) -> None:
        self.browser, self.folder, self.taken = chromium, folder, []

    def both(self, cookies: list[dict[str, Any]], url: str, name: str) -> None:
        """The page at both widths, each in a fresh context with the session's cookies;
        at phone width nothing may be wider than the screen."""
        for width, viewport in WIDTHS.items():
            context = self.browser.new_context(viewport=viewport)
            context.add_cookies(cookies)
            page = context.new_page()
            page.goto(url)
            path = self.folder / f"{len(self.taken) + 1:02d}-{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            self.taken.append(path)
            if width == "phone":
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= viewport["width"] + 1, (name, scroll)
            context.close()

    def current(self, page: Any, name: str) -> None:
        """This page as it is now (e.g. a form's error answer), at both widths."""
        for width, viewport in WIDTHS.items():
            page.set_viewport_size(viewport)
            path = self.folder / f"{len(self.taken) + 1:02d}-{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            self.taken.append(path)
        page.set_viewport_size(WIDTHS["laptop"])


@pytest.fixture
def shots(browser: Any, tmp_path: Path) -> Iterator[Shots]:  # noqa: F811
    folder = tmp_path / "screenshots"
    folder.mkdir()
    found = Shots(browser, folder)
    yield found
    keep = os.environ.get("STAYFLOW_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for path in found.taken:
            shutil.copy(path, Path(keep) / path.name)


@pytest.fixture
def admin_serve(request: pytest.FixtureRequest, host: HostSite) -> Iterator[Stayflow]:  # noqa: F811
    """`stayflow serve` as it runs by default (SQLite, in-process worker), Stripe = sandbox;
    an app with flows whose offer uses a sandbox coupon, an owner and a viewer."""
    db_url: str = request.getfixturevalue("_sqlite_url")
    sandbox = request.getfixturevalue("sandbox")
    port = free_port()
    settings = Settings(
        database_url=db_url,
        secret_key=TEST_SECRET_KEY,
        base_url=f"http://127.0.0.1:{port}",
        stripe_api_base=sandbox.url,
        log_json=False,
        log_level="WARNING",
        webhooks_allow_private=True,
    )
    app = create_app(settings, run_worker=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    engine = make_engine(settings)
    try:
        wait_for_port(port)
        found = Stayflow(settings.base_url, make_session_factory(engine))
        with transaction(found.session_factory) as db:
            created = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "Acme")
            theirs = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "Globex")
            for email, role in (("olga@example.com", "owner"), ("vera@example.com", "viewer")):
                admin_service.create_user(
                    db, email, PASSWORD, app_id=created.app.app_id, role=role, now=utcnow()
                )
            admin_service.create_user(
                db,
                "gus@example.com",
                PASSWORD,
                app_id=theirs.app.app_id,
                role="owner",
                now=utcnow(),
            )
        found.app_id, found.app_secret, found.api_key = (
            created.app.app_id,
            created.app_secret,
            created.api_key,
        )
        found.other_app_id = theirs.app.app_id  # type: ignore[attr-defined]
        coupon = (
            sandbox.client()
            .v1.coupons.create(
                {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
            )
            .id
        )
        headers = {"Authorization": f"Bearer {created.api_key}"}
        with httpx.Client(base_url=found.url, headers=headers, timeout=30) as api:
            api.patch(
                "/api/v1/cancel-flow/settings", json={"allowed_origins": [host.origin]}
            ).raise_for_status()
            flows = yaml.safe_load(FLOWS_YAML.replace("SAVE20", coupon))
            api.put("/api/v1/flows", json=flows).raise_for_status()
        yield found
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        _clean(engine)
        engine.dispose()


def _sign_in(page: Any, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name=name, exact=True
    )


def _subscription(sandbox: Any) -> str:
    client = sandbox.client()
    customer = client.v1.customers.create(
        {"payment_method": "pm_card_visa", "email": "ada@example.com"}
    )
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {"currency": "usd", "unit_amount": 1999, "recurring": {"interval": "month"}}
        | {"product_data": {"name": "Pro"}}
    ).id
    return str(
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price}]}).id
    )


def test_owner_journey(browser, admin_serve, host, sandbox, shots):  # noqa: F811
    url, app_id = admin_serve.url, admin_serve.app_id
    context = browser.new_context(viewport=WIDTHS["laptop"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    # Sign in: a wrong password, then an account locked after five failures.
    page.goto(f"{url}/admin")
    assert "/admin/login" in page.url
    shots.both([], page.url, "login")
    _sign_in(page, url, "olga@example.com", "not-the-password")
    assert page.get_by_role("alert").inner_text() == "The email or the password is wrong."
    for _ in range(6):  # five failures lock the account; the sixth try is told so
        _sign_in(page, url, "mallory@example.com", "guessing-again")
    assert page.get_by_role("alert").inner_text() == (
        "Too many failed sign-ins for this account. Try again in 15 minutes."
    )
    shots.current(page, "login-throttled")
    _sign_in(page, url, "olga@example.com")
    page.wait_for_url(f"{url}/admin/apps/{app_id}")
    assert page.get_by_text("Not connected.").first.is_visible()
    cookies = context.cookies()

    # Settings → Stripe: a restricted key without prices:read is named as Stripe names it.
    _nav(page, "Settings").click()
    key = sandbox.create_restricted_key(
        {"subscriptions": "write", "customers": "read", "products": "read", "events": "read"}
    )
    page.get_by_label("Restricted key").fill(key)
    page.get_by_role("button", name="Connect", exact=True).click()
    page.wait_for_url(f"{url}/admin/apps/{app_id}/settings/stripe")
    assert page.get_by_text("Add Prices: Read to the key in Stripe.").first.is_visible()
    shots.both(cookies, page.url, "stripe-missing-permission")
    # Then a key with every permission: each use case is ready.
    page.get_by_label("Restricted key").fill(sandbox.secret_key)
    page.get_by_role("button", name="Connect", exact=True).click()
    page.wait_for_url(f"{url}/admin/apps/{app_id}/settings/stripe")
    assert page.locator(".badge.ok", has_text="ready").count() == 4
    page.get_by_role("link", name="App settings", exact=True).click()
    assert page.get_by_label("Allowed origins, one per line").input_value() == host.origin
    shots.both(cookies, page.url, "app-settings")

    # Field mappings: a sample subscription's source list, a money field converted.
    sub_id = _subscription(sandbox)
    _nav(page, "Field mappings").click()
    page.get_by_label("Sample subscription").fill(sub_id)
    page.get_by_role("button", name="Load its fields").click()
    page.get_by_label("Field name (letters, digits, _)").fill("plan_price")
    page.get_by_label("Source", exact=True).select_option("subscription.plan.amount")
    page.get_by_label("Type", exact=True).select_option("money")
    page.get_by_role("button", name="Preview the converted sample").click()
    preview = page.locator(".preview")
    assert "19.99" in preview.inner_text() and "usd" in preview.inner_text()
    page.get_by_role("button", name="Save the mapping").click()
    row = page.get_by_role("row", name=re.compile("plan_price"))
    assert "19.99" in row.inner_text()
    shots.both(cookies, page.url, "field-mappings")

    # A session through the snippet on the business's page: too expensive, take 20% off.
    host.page_with_snippet(
        f"{url}/js/stayflow.js", snippet_data(admin_serve, host, subscription_id=sub_id)
    )
    shop = context.new_page()
    shop.set_default_timeout(15_000)
    shop.goto(host.origin + "/")
    shop.click("#bb-cancel")
    shop.wait_for_url(f"{url}/c/*")
    shop.get_by_label("It's too expensive").check()
    shop.get_by_role("button", name="Continue").click()
    shop.get_by_role("button", name="Take 20% off").click()
    shop.wait_for_url(f"{host.origin}/account*")
    shop.close()

    # Found in the sessions list (filtered by offer), with its story.
    _nav(page, "Sessions").click()
    page.get_by_label("Offer id").fill("twenty_off")
    page.get_by_role("button", name="Show").click()
    assert page.get_by_text(sub_id).is_visible()
    shots.both(cookies, page.url, "sessions")
    page.get_by_role("row", name=re.compile(sub_id)).get_by_role("link").click()
    page.wait_for_url(f"{url}/admin/apps/{app_id}/sessions/*")
    story_url = page.url
    deadline = time.monotonic() + 20  # the in-process worker applies the offer in Stripe
    while time.monotonic() < deadline:
        if page.get_by_text("Stripe applied the billing action").count():
            break
        time.sleep(0.5)
        page.reload()
    story = page.locator(".story").inner_text()
    assert f"The snippet opened a session for {sub_id}" in story
    assert "Reason: It's too expensive" in story
    assert "Accepted the offer twenty_off (discount)" in story
    assert "Billing action: " in story and "Stripe applied the billing action" in story
    assert '"plan_price"' in page.locator("details", has_text="Mapped fields").inner_text()
    shots.both(cookies, story_url, "session-story")

    # Home: Stripe connected, this week's saved session, the snippet and signing code.
    _nav(page, "Home").click()
    assert page.get_by_text("Connected to acct_").is_visible()
    saved_row = page.get_by_role("row", name=re.compile("^saved"))
    assert saved_row.get_by_role("cell").inner_text() == "1"
    assert page.get_by_role("button", name="Copy the snippet").is_visible()  # JS enhanced
    assert (
        page.get_by_role("textbox", name="Node")
        .input_value()
        .startswith('const crypto = require("node:crypto")')
    )
    shots.both(cookies, page.url, "home")

    # Webhooks: an endpoint, its secret shown once; then its page.
    _nav(page, "Webhooks").click()
    page.get_by_label("URL", exact=True).fill("https://hooks.example.com/stayflow")
    page.get_by_role("button", name="Add the endpoint").click()
    assert page.get_by_role("textbox", name="Signing secret").input_value().startswith("whsec_")
    shots.both(cookies, f"{url}/admin/apps/{app_id}/webhooks", "webhooks")
    page.get_by_role("link", name="Open it", exact=True).click()
    shots.both(cookies, page.url, "webhook-endpoint")

    # Members: an invitation link, shown once.
    _nav(page, "Members").click()
    page.get_by_label("Email", exact=True).fill("nina@example.com")
    page.get_by_label("Role").select_option("editor")
    page.get_by_role("button", name="Create invitation link").click()
    link = page.get_by_role("textbox", name="Invitation link", exact=True).input_value()
    assert "/admin/invite/" in link
    shots.current(page, "members-invited")
    shots.both([], link, "invite-accept")

    # Keyboard: the skip link comes first and lands on the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # French: the switcher saves the user's language.
    page.get_by_label("Language").select_option("fr")
    page.get_by_role("button", name="Change language").click()
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("heading", name="Membres").is_visible()
    page.get_by_role("navigation", name="Rubriques").get_by_role("link", name="Accueil").click()
    assert page.get_by_role("heading", name="Sessions de la semaine").is_visible()
    shots.both(context.cookies(), page.url, "home-fr")
    context.close()

    assert all(u.startswith((url, host.origin, "data:")) for u in requests), requests
    assert len(shots.taken) == 2 * 13


def test_viewer_is_refused_by_the_server_and_other_apps_are_404(browser, admin_serve):  # noqa: F811
    url, app_id = admin_serve.url, admin_serve.app_id
    other = admin_serve.other_app_id
    context = browser.new_context(viewport=WIDTHS["laptop"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    _sign_in(page, url, "vera@example.com")
    page.wait_for_url(f"{url}/admin/apps/{app_id}")
    page.goto(f"{url}/admin/apps/{app_id}/settings/stripe")
    assert page.get_by_label("Restricted key").count() == 0
    assert page.get_by_text("Only an owner can change these.").is_visible()
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    # The server refuses what the page does not offer (a forged form post with a valid token).
    for path, form in (
        ("settings/stripe/connect", {"api_key": "sk_test_whatever"}),
        ("settings", {"allowed_origins": "https://evil.example"}),
        ("fields", {"field": "x", "source": "subscription.id", "type": "text"}),
        ("webhooks", {"url": "https://evil.example"}),
        ("invites", {"email": "eve@example.com", "role": "owner"}),
    ):
        answer = page.request.post(
            f"{url}/admin/apps/{app_id}/{path}", form={"csrf": token, **form}
        )
        assert answer.status == 403, path
    # Another app's pages and objects: 404 by URL.
    for path in ("", "/sessions", "/settings/stripe", "/fields", "/webhooks", "/members"):
        page.goto(f"{url}/admin/apps/{other}{path}")
        assert page.get_by_role("heading", name="Not possible").is_visible(), path
        assert "There is no such page." in page.content()
    answer = page.request.post(
        f"{url}/admin/apps/{other}/settings/stripe/disconnect", form={"csrf": token}
    )
    assert answer.status == 404
    context.close()
