"""The cancel flow in a real browser: Debian's Chromium driven by Playwright.

A host page on http://localhost:<port> (the business) carries the snippet from
stayflow on http://127.0.0.1:<port> (another origin, so CORS is real). These
tests run on SQLite only: they exercise the browser, the snippet and the page,
whose database work the API tests already cover on both backends, and one
backend keeps the suite fast.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from sqlalchemy import select

from stayflow.app import create_app
from stayflow.apps import service as apps_service
from stayflow.cancel_sessions.models import CancelSession
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, transaction
from stayflow.jobs.models import Job
from stayflow.settings import Settings
from tests.cancel_flow.helpers import FLOWS_YAML, sign
from tests.conftest import TEST_SECRET_KEY, _clean

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'


def _browser_missing(reason: str) -> None:
    if os.environ.get("STAYFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"STAYFLOW_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("the playwright package is not installed")
    if not CHROMIUM.exists():
        _browser_missing(f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Stayflow:
    url: str
    session_factory: Any
    app_id: str = ""
    app_secret: str = ""
    api_key: str = ""
    server: Any = None  # the uvicorn server, for a test that stops it
    thread: Any = None


@pytest.fixture
def stayflow(request: pytest.FixtureRequest) -> Iterator[Stayflow]:
    """The real app under uvicorn on 127.0.0.1, in a thread, on the test SQLite database."""
    db_url: str = request.getfixturevalue("_sqlite_url")
    port = free_port()
    settings = Settings(
        database_url=db_url,
        secret_key=TEST_SECRET_KEY,
        base_url=f"http://127.0.0.1:{port}",
        log_json=False,
        log_level="WARNING",
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    engine = make_engine(settings)
    try:
        wait_for_port(port)
        yield Stayflow(
            settings.base_url, make_session_factory(engine), server=server, thread=thread
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        _clean(engine)
        engine.dispose()


class HostSite:
    """The business's site: a host page with the snippet, and where the flow lands."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://localhost:{self.port}"
        self.host_page = "<p>no page yet</p>"
        self.extra_pages: dict[str, str] = {}  # more paths, e.g. another origin's page
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                pages = {
                    "/": site.host_page,
                    "/account": "<h1>Your account</h1><p id='landed'>account</p>",
                    "/goodbye": "<h1>Goodbye</h1><p id='landed'>goodbye</p>",
                    "/fallback": "<h1>Cancel by email</h1><p id='landed'>fallback</p>",
                    **site.extra_pages,
                }
                body = pages.get(path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page_with_snippet(
        self,
        snippet_url: str,
        data: dict[str, Any],
        *,
        alias: str = "Stayflow",
        marker: str = 'id="bb-cancel"',
    ) -> None:
        # As a business's server would: "</" escaped so data cannot end the script element.
        payload = json.dumps(data).replace("</", "<" + chr(92) + "/")
        self.host_page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme: your plan</title></head>
<body>
<h1>Acme Pro</h1>
<p>Your plan renews on 1 December.</p>
<a {marker} href="/fallback">Cancel subscription</a>
<script src="{snippet_url}"></script>
<script>window.{alias}.handleData({payload});</script>
</body></html>"""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


@pytest.fixture
def tenant(stayflow: Stayflow, host: HostSite) -> Stayflow:
    with transaction(stayflow.session_factory) as db:
        created = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "Acme")
    stayflow.app_id, stayflow.app_secret, stayflow.api_key = (
        created.app.app_id,
        created.app_secret,
        created.api_key,
    )
    headers = {"Authorization": f"Bearer {created.api_key}"}
    with httpx.Client(base_url=stayflow.url, headers=headers, timeout=10) as api:
        api.patch(
            "/api/v1/cancel-flow/settings", json={"allowed_origins": [host.origin]}
        ).raise_for_status()
        api.put("/api/v1/flows", json=yaml.safe_load(FLOWS_YAML)).raise_for_status()
    return stayflow


def snippet_data(tenant: Stayflow, host: HostSite, **extra: Any) -> dict[str, Any]:
    sub = extra.pop("subscription_id", "sub_K1Vhej7WAk7k7Z")
    return {
        "app_id": tenant.app_id,
        "subscription_id": sub,
        "auth_hash": sign(tenant.app_secret, sub),
        "email": "ada@example.com",
        "first_name": "Ada",
        "save_return_url": f"{host.origin}/account",
        "cancel_confirmation_url": f"{host.origin}/goodbye",
        "account": {"internal_id": "42"},
        "custom": {"seats": 3},
        **extra,
    }


@dataclass
class Shots:
    folder: Path
    count: int = 0
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Any, name: str, *, full_page: bool = True) -> None:
        # full_page=False for fixed overlays: a full-page shot grows the viewport, and the
        # overlay and its frame with it, so it would not show what the subscriber sees.
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)


@pytest.fixture
def page(browser: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.requests = []  # type: ignore[attr-defined]
    page.on("request", lambda r: page.requests.append(r.url))  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return Shots(folder)


def only_our_origins(page: Any, *origins: str) -> None:
    strangers = [
        u for u in page.requests if not u.startswith(origins) and not u.startswith("data:")
    ]
    assert strangers == [], f"requests to third parties: {strangers}"


def outcome_of(tenant: Stayflow) -> CancelSession:
    with tenant.session_factory() as db:
        [cs] = db.scalars(select(CancelSession)).all()
        return cs


def billing_jobs(tenant: Stayflow) -> list[str]:
    with tenant.session_factory() as db:
        return list(db.scalars(select(Job.name).where(Job.name.like("billing.%"))))


def test_accept_an_offer_lands_on_save_return_url(page, tenant, host, shots):
    host.page_with_snippet(f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    shots.take(page, "host-page")
    page.click("#bb-cancel")
    page.wait_for_url(f"{tenant.url}/c/*")
    assert page.locator("h1").inner_text() == "We're sorry to see you go"
    shots.take(page, "reason")
    page.get_by_label("It's too expensive").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("text=Stay for 20% off, Ada")
    # Cancelling is still one click away on the offers step.
    assert page.get_by_role("button", name="No thanks, cancel my subscription").is_visible()
    shots.take(page, "offers")
    page.get_by_role("button", name="Take 20% off").click()
    page.wait_for_url(f"{host.origin}/account")
    assert page.locator("#landed").inner_text() == "account"
    shots.take(page, "saved")
    cs = outcome_of(tenant)
    assert (cs.outcome, cs.reason_id, cs.offer_accepted_id) == (
        "saved",
        "too_expensive",
        "twenty_off",
    )
    assert billing_jobs(tenant) == ["billing.apply_offer"]
    only_our_origins(page, tenant.url, host.origin)
    assert all(p.stat().st_size > 5_000 for p in shots.taken)


def test_cancel_lands_on_the_confirmation_url_on_a_phone(browser, tenant, host, shots):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        # The Brightback names: a drop-in move is a script swap.
        host.page_with_snippet(
            f"{tenant.url}/js/stayflow.js",
            snippet_data(tenant, host, locale="fr"),
            alias="Brightback",
        )
        page.goto(host.origin + "/")
        page.click("#bb-cancel")
        page.wait_for_url(f"{tenant.url}/c/*")
        assert page.locator("html").get_attribute("lang") == "fr"
        # Readable on a phone: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shots.take(page, "reason-phone-fr")
        page.get_by_label("I'm not using it enough").check()
        page.get_by_label("Voulez-vous ajouter quelque chose\u202f?").fill("Pas le temps")
        # Straight from the first step: the cancel button is on every step.
        page.get_by_role("button", name="Résilier l'abonnement").click()
        page.wait_for_url(f"{host.origin}/goodbye")
        shots.take(page, "goodbye")
    finally:
        context.close()
    cs = outcome_of(tenant)
    assert (cs.outcome, cs.reason_id, cs.reason_comment) == (
        "canceled",
        "not_using",
        "Pas le temps",
    )
    assert billing_jobs(tenant) == ["billing.cancel_subscription"]


def test_never_mind_lands_on_save_return_url(page, tenant, host, shots):
    host.page_with_snippet(
        f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host), marker="data-stayflow-cancel"
    )
    page.goto(host.origin + "/")
    page.click("[data-stayflow-cancel]")
    page.wait_for_url(f"{tenant.url}/c/*")
    page.get_by_label("I'm not using it enough").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("text=Pause for 2 months instead")
    shots.take(page, "offers-pause")
    page.get_by_role("button", name="Never mind, keep my subscription").click()
    page.wait_for_url(f"{host.origin}/account")
    assert outcome_of(tenant).outcome == "deflected"
    assert billing_jobs(tenant) == []


def test_fallback_href_when_the_service_is_down(page, tenant, host, shots):
    dead = free_port()  # nothing listens here: the snippet cannot even load
    host.page_with_snippet(f"http://127.0.0.1:{dead}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{host.origin}/fallback")
    shots.take(page, "fallback-down")


def test_fallback_href_on_an_invalid_answer(page, tenant, host):
    data = snippet_data(tenant, host, auth_hash="0" * 64)
    host.page_with_snippet(f"{tenant.url}/js/stayflow.js", data)
    page.goto(host.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{host.origin}/fallback")
    with tenant.session_factory() as db:
        assert db.scalars(select(CancelSession)).all() == []


def test_fallback_href_when_precancel_hangs(page, tenant, host):
    """A server that serves the snippet but never answers precancel: 3 s, then the href.

    The page runs on Playwright's fake clock (an injected clock, not a stopwatch): the test
    moves it past 2.9 s (still waiting) and then past 3 s (the fallback)."""
    snippet = httpx.get(f"{tenant.url}/js/stayflow.js").text
    release = threading.Event()
    arrived = threading.Event()

    class Hanging(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.end_headers()
            self.wfile.write(snippet.encode())

        def do_POST(self) -> None:
            arrived.set()
            release.wait(timeout=30)  # bounded; the test releases it when done

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Hanging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host.page_with_snippet(
            f"http://127.0.0.1:{port}/js/stayflow.js", snippet_data(tenant, host)
        )
        # Installed, the fake clock still follows real time; paused, it moves only when told.
        page.clock.install(time=datetime(2026, 1, 1, tzinfo=UTC))
        # The snippet gives up by aborting its fetch: report it to the test (a navigation is
        # asynchronous, so neither the URL nor the page's own state can say "not yet").
        gave_up: list[bool] = []
        page.expose_function("stayflowTestGaveUp", lambda: gave_up.append(True))
        page.add_init_script(
            "(() => { const abort = AbortController.prototype.abort;"
            " AbortController.prototype.abort = function () {"
            " window.stayflowTestGaveUp(); return abort.apply(this, arguments); }; })()"
        )
        page.goto(host.origin + "/")
        page.clock.pause_at(datetime(2026, 1, 1, 1, tzinfo=UTC))
        page.click("#bb-cancel")
        assert arrived.wait(timeout=10)  # the precancel request is in flight
        page.clock.run_for(2_900)
        page.evaluate("() => 1")  # a round trip: any report sent so far has arrived
        assert gave_up == []  # still waiting at 2.9 s
        page.clock.run_for(200)
        page.wait_for_url(f"{host.origin}/fallback", timeout=10_000)
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _tab_to(page: Any, selector: str, limit: int = 25) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(sel) => document.activeElement.matches(sel)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only_completion(page, tenant, host, shots):
    host.page_with_snippet(f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    _tab_to(page, "#bb-cancel")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{tenant.url}/c/*")
    _tab_to(page, "input[name=reason_id]")
    page.keyboard.press("ArrowDown")  # the second reason; arrows move within a radio group
    assert page.evaluate("document.activeElement.value") == "not_using"
    assert page.is_checked("input[value=not_using]")
    _tab_to(page, "button.primary")
    shots.take(page, "keyboard-focus")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Pause for 2 months instead")
    _tab_to(page, "form[action$='/accept'] button")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{host.origin}/account")
    cs = outcome_of(tenant)
    assert (cs.outcome, cs.offer_accepted_id) == ("saved", "pause_2m")


def test_xss_in_custom_fields_is_inert(page, tenant, host, shots):
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    flows = yaml.safe_load(FLOWS_YAML)
    flows["experiences"][1]["title"] = "Hello {{ custom.note }}"
    flows["offers"][0]["headline"] = "An offer for {{ first_name }}"
    httpx.put(f"{tenant.url}/api/v1/flows", json=flows, headers=headers).raise_for_status()
    data = snippet_data(tenant, host, first_name=XSS, custom={"note": XSS})
    host.page_with_snippet(f"{tenant.url}/js/stayflow.js", data)
    page.goto(host.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{tenant.url}/c/*")
    assert page.locator("h1").inner_text() == f"Hello {XSS}"
    page.get_by_label("It's too expensive").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("h2")
    assert page.locator("h2").first.inner_text() == f"An offer for {XSS}"
    shots.take(page, "xss-inert")
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("main script").count() == 0
    only_our_origins(page, tenant.url, host.origin)


def test_the_comment_box_shows_only_for_reasons_that_ask(page, tenant, host):
    host.page_with_snippet(f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{tenant.url}/c/*")
    comment = page.locator("#comment")
    assert not comment.is_visible()
    page.get_by_label("It's too expensive").check()
    assert not comment.is_visible()
    page.get_by_label("I'm not using it enough").check()  # this reason asks for a comment
    assert comment.is_visible()
    page.get_by_label("It's too expensive").check()
    assert not comment.is_visible()


# --- the last step on the default serve, with Stripe answering in 300 ms -------------------


@pytest.fixture
def serve_with_stripe(request: pytest.FixtureRequest, host: HostSite) -> Iterator[Stayflow]:
    """As `stayflow serve` runs by default: SQLite, the in-process worker, connected to the
    Stripe sandbox through the connect API (whose webhooks keep the mirror fresh)."""
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
        found.app_id, found.app_secret, found.api_key = (
            created.app.app_id,
            created.app_secret,
            created.api_key,
        )
        headers = {"Authorization": f"Bearer {created.api_key}"}
        client = sandbox.client()
        coupon = client.v1.coupons.create(
            {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
        ).id
        flows = yaml.safe_load(FLOWS_YAML.replace("SAVE20", coupon))
        with httpx.Client(base_url=found.url, headers=headers, timeout=30) as api:
            api.patch(
                "/api/v1/cancel-flow/settings", json={"allowed_origins": [host.origin]}
            ).raise_for_status()
            api.put(
                "/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}
            ).raise_for_status()
            api.put(
                "/api/v1/billing/stripe/setup",
                json={"offers": True, "cancels": True, "cancel": {"at_period_end": True}},
            ).raise_for_status()
            api.put("/api/v1/flows", json=flows).raise_for_status()
        yield found
    finally:
        sandbox.set_latency(0)
        server.should_exit = True
        thread.join(timeout=10)
        _clean(engine)
        engine.dispose()


def test_journeys_end_saying_what_happened(page, serve_with_stripe, host, sandbox):
    """Each journey lands on the business's page, and its link then shows what happened;
    never the 'processing' page while Stripe answers (in 300 ms). One journey of each kind
    here (the 20-run sample is bench/journey.py, on the `stayflow serve` command itself)."""
    tenant = serve_with_stripe
    client = sandbox.client()
    customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {"currency": "usd", "unit_amount": 2000, "recurring": {"interval": "month"}}
        | {"product_data": {"name": "Pro"}}
    ).id
    subs = [
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price}]}).id
        for _ in range(3)
    ]
    sandbox.set_latency(300)
    landed: list[str] = []
    for index, sub_id in enumerate(subs):
        host.page_with_snippet(
            f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host, subscription_id=sub_id)
        )
        page.goto(host.origin + "/")
        page.click("#bb-cancel")
        page.wait_for_url(f"{tenant.url}/c/*")
        link = page.url
        choice = index % 3
        if choice == 0:
            page.get_by_label("It's too expensive").check()
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("button", name="Take 20% off").click()
            expected = ("/account", "20% off is applied to your next 3 invoices")
        elif choice == 1:
            page.get_by_label("I'm not using it enough").check()
            page.get_by_role("button", name="Continue").click()
            page.get_by_role("button", name="Pause my subscription").click()
            expected = ("/account", "Your subscription is paused until ")
        else:
            page.get_by_label("It's too expensive").check()
            page.get_by_role("button", name="Cancel subscription").click()
            expected = ("/goodbye", "you keep access until then. No further charge will be made.")
        page.wait_for_url(f"{host.origin}{expected[0]}")
        landed.append(expected[0])
        page.goto(link)
        assert page.locator("#result").get_attribute("data-state") == "done"
        assert expected[1] in page.locator("#result-message").inner_text()
    assert landed == ["/account", "/account", "/goodbye"]
