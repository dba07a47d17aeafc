"""The cancel-flow editor in Debian's Chromium, against the Stripe sandbox.

An editor builds an offer with a sandbox coupon for an audience, previews the page as a
mirrored sample subscriber, publishes; a real cancel page then shows the offer; rolling back
to the previous version takes it away. A viewer sees no buttons and the server refuses their
POST (403); another app's flow pages are 404. Screenshots of every flow page at phone and
laptop widths go to the test's tmp dir. SQLite only (the pages' logic runs on both backends
in test_flow_pages.py).
"""

from __future__ import annotations

import re
import threading
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
from stayflow.enrichment import service as enrichment
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.admin.conftest import PASSWORD
from tests.billing.conftest import sandbox  # noqa: F401
from tests.cancel_flow.helpers import ORIGIN, precancel_body
from tests.cancel_flow.test_browser import browser, free_port, wait_for_port  # noqa: F401
from tests.conftest import TEST_SECRET_KEY, _clean

pytestmark = pytest.mark.browser

WIDTHS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}
START = """\
reasons:
  - {id: too_expensive, label: "It's too expensive", feedback: too_expensive}
  - {id: not_using, label: "I'm not using it enough", feedback: unused, comment: true}
experiences:
  - {id: default}
"""


@pytest.fixture
def served(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[tuple[str, Any, Settings]]:  # noqa: F811
    db_url: str = request.getfixturevalue("_sqlite_url")
    port = free_port()
    settings = Settings(
        database_url=db_url,
        secret_key=TEST_SECRET_KEY,
        base_url=f"http://127.0.0.1:{port}",
        stripe_api_base=sandbox.url,
        log_json=False,
        log_level="WARNING",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    engine = make_engine(settings)
    try:
        wait_for_port(port)
        yield settings.base_url, make_session_factory(engine), settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        _clean(engine)
        engine.dispose()


def _shoot(chromium: Any, cookies: list[dict[str, Any]], url: str, out: Path) -> None:
    for name, viewport in WIDTHS.items():
        context = chromium.new_context(viewport=viewport)
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto(url)
        page.screenshot(path=str(out.with_name(f"{out.stem}-{name}.png")), full_page=True)
        context.close()


def _sign_in(page: Any, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/admin/apps/.*"))


def _cancel_page_offers(page: Any, base_url: str, tenant: Any, subscription_id: str) -> list[str]:
    """A real precancel and cancel page: pick the reason, see what is offered."""
    with httpx.Client(base_url=base_url, timeout=10) as api:
        made = api.post(
            "/precancel",
            json=precancel_body(tenant, subscription_id, first_name="Ada"),
            headers={"Origin": ORIGIN},
        )
        made.raise_for_status()
    page.goto(made.json()["url"])
    page.get_by_label("It's too expensive").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    return [h.inner_text() for h in page.locator("section.offer h2").all()]


def test_build_preview_publish_roll_back_and_roles(
    browser: Any,  # noqa: F811
    served: tuple[str, Any, Settings],
    sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    base_url, factory, settings = served
    stripe = sandbox.client()
    with transaction(factory) as db:
        created = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "Acme")
        other = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "Other")
        for email, role in (("ed@example.com", "editor"), ("vi@example.com", "viewer")):
            admin_service.create_user(
                db, email, PASSWORD, app_id=created.app.app_id, role=role, now=utcnow()
            )
    app_id = created.app.app_id
    tenant = type("T", (), {"app_id": app_id, "app_secret": created.app_secret})
    headers = {"Authorization": f"Bearer {created.api_key}"}
    coupon = stripe.v1.coupons.create({"percent_off": 25, "duration": "once", "name": "Stay25"})
    product = stripe.v1.products.create({"name": "Pro"})
    price = stripe.v1.prices.create(
        {
            "product": product.id,
            "unit_amount": 1200,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    customer = stripe.v1.customers.create({"email": "ada@example.com", "name": "Ada"})
    pm = stripe.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    stripe.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    sub = stripe.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    with httpx.Client(base_url=base_url, headers=headers, timeout=20) as api:
        api.put("/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}).raise_for_status()
        api.patch(
            "/api/v1/cancel-flow/settings", json={"allowed_origins": [ORIGIN]}
        ).raise_for_status()
        api.put("/api/v1/flows?message=start", json=yaml.safe_load(START)).raise_for_status()
    with transaction(factory) as db:  # the sample subscriber, in the mirror
        found = enrichment.lookup_subscription(
            db, created.app.id, sub.id, settings, Encryptor(TEST_SECRET_KEY), require_enabled=False
        )
        assert found.subscription is not None

    shots = tmp_path / "screenshots"
    shots.mkdir()
    flow = f"{base_url}/admin/apps/{app_id}/flow"
    context = browser.new_context(viewport=WIDTHS["laptop"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    _sign_in(page, base_url, "ed@example.com")
    page.get_by_role("link", name="Cancel flow").click()
    page.wait_for_url(flow)
    assert page.get_by_role("heading", name="Cancel flow").is_visible()
    assert page.get_by_text("Live: version 1. No draft.").is_visible()

    # An audience: monthly subscribers (a field from Stripe).
    page.get_by_role("link", name="Add an audience").click()
    page.get_by_label("Id").fill("monthly")
    page.get_by_label("Field of condition 1").fill("subscription.plan.interval")
    page.get_by_label("Value of condition 1").fill("month")
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(flow)
    assert page.get_by_text("A draft is waiting").is_visible()

    # An offer with the sandbox coupon, picked from the list, for that audience.
    page.get_by_role("link", name="Add an offer").click()
    page.get_by_label("Id").fill("stay25")
    page.get_by_label("Type").select_option("discount")
    # The script shows only the chosen type's fields.
    assert page.get_by_label("Duration").is_hidden()
    page.get_by_label("Coupon", exact=True).select_option(coupon.id)
    page.get_by_label("It's too expensive").check()
    page.get_by_label("Only for this audience").select_option("monthly")
    page.get_by_label("Headline", exact=True).fill(
        "Stay, {{ first_name | default('friend') }}: 25% off"
    )
    page.get_by_text("Copy in FR").click()  # a closed <details>
    page.get_by_label("Headline (FR)").fill("Restez, {{ first_name | default('ami') }} : -25 %")
    _shoot(browser, context.cookies(), page.url, shots / "02-offer-form.png")
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(flow)
    page.goto(f"{flow}/experiences/default")
    page.get_by_label("stay25 (discount)").check()
    page.get_by_label("Message (optional): why this change").fill("25% off for monthly")
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(flow)
    _shoot(browser, context.cookies(), flow, shots / "01-flow.png")
    _shoot(browser, context.cookies(), f"{flow}/audiences/monthly", shots / "03-audience.png")

    # Preview the draft as the mirrored subscriber, after the reason, in French and English.
    page.goto(f"{flow}/preview")
    page.get_by_label("Flow", exact=True).select_option("draft")
    page.get_by_label("Sample subscription").select_option(sub.id)
    page.get_by_label("Fields the snippet sends (one per line)").fill("first_name: Ada")
    page.get_by_label("After the reason").select_option("too_expensive")
    page.get_by_label("Page language").select_option("fr")
    page.get_by_label("Width").select_option("phone")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    frame = page.frame_locator("iframe")
    assert frame.get_by_role("heading", name="Restez, Ada : -25 %").is_visible()
    assert page.locator("iframe.preview-phone").bounding_box()["width"] == 390
    _shoot(browser, context.cookies(), page.url, shots / "04-preview-phone-frame.png")
    page.get_by_label("Page language").select_option("en")
    page.get_by_label("Width").select_option("laptop")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert (
        page.frame_locator("iframe").get_by_role("heading", name="Stay, Ada: 25% off").is_visible()
    )
    _shoot(browser, context.cookies(), page.url, shots / "05-preview-laptop-frame.png")
    # The live flow has no offer yet: the real page shows none.
    assert _cancel_page_offers(page, base_url, tenant, sub.id) == []

    # Publish.
    page.goto(flow)
    page.get_by_role("button", name="Publish the draft").click()
    page.wait_for_url(f"{flow}/history")
    assert page.get_by_role("row", name=re.compile("Version 2 live")).is_visible()
    assert (
        page.get_by_role("row", name=re.compile("Version 2"))
        .get_by_text("ed@example.com")
        .is_visible()
    )
    _shoot(browser, context.cookies(), page.url, shots / "06-history.png")
    _shoot(browser, context.cookies(), f"{flow}/history/2", shots / "07-version.png")
    assert _cancel_page_offers(page, base_url, tenant, sub.id) == ["Stay, Ada: 25% off"]

    # Roll back to version 1 in one step: the page loses the offer.
    page.goto(f"{flow}/history")
    page.get_by_role("button", name="Restore version 1").click()
    page.wait_for_url(f"{flow}/history")
    assert page.get_by_role("row", name=re.compile("Version 3 live")).is_visible()
    assert _cancel_page_offers(page, base_url, tenant, sub.id) == []

    # A user of this app cannot reach another app's flow pages.
    for path in ("", "/history", "/preview", "/yaml"):
        response = page.goto(f"{base_url}/admin/apps/{other.app.app_id}/flow{path}")
        assert response is not None and response.status == 404
    context.close()

    # A viewer: reads, no buttons, and the server refuses a forged POST.
    viewer = browser.new_context(viewport=WIDTHS["phone"])
    vpage = viewer.new_page()
    _sign_in(vpage, base_url, "vi@example.com")
    vpage.goto(f"{flow}/offers/stay25")  # gone after the rollback
    vpage.goto(f"{flow}/history/2")
    assert vpage.get_by_role("button", name="Restore this version (live now)").count() == 0
    vpage.goto(flow)
    assert vpage.get_by_role("button", name="Save as draft").count() == 0
    html = vpage.content()
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    for path in ("/history/2/restore", "/publish", "/yaml"):
        refused = vpage.request.post(
            f"{flow}{path}",
            form={"csrf": token.group(1), "document": "reasons: []", "save": "publish"},
        )
        assert refused.status == 403, path
    viewer.close()
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as api:
        assert api.get("/api/v1/flows").json()["version"] == 3

    taken = sorted(p.name for p in shots.iterdir())
    assert len(taken) == 14, taken
    print(f"screenshots in {shots}")
