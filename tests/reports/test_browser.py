"""The reports in Debian's Chromium, with sessions run through the hosted page against the
Stripe sandbox: an experiment with a holdout (its subscribers go straight to the cancel
confirmation), the figures, a filter kept in the URL, a drill-down, a CSV download and its
rows; then generated sessions take the experiment to significance, and the owner ends it
and promotes the winner. Screenshots at phone and laptop widths.

SQLite only, like the other browser tests (the queries run on both databases elsewhere).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from stayflow.admin import service as admin_service
from stayflow.db import transaction, utcnow
from stayflow.flows.assignment import variant_bucket
from tests.admin.conftest import PASSWORD
from tests.cancel_flow.test_browser import (  # noqa: F401
    HostSite,
    Stayflow,
    browser,
    host,
    page,
    serve_with_stripe,
    snippet_data,
)
from tests.reports.test_experiments import _run

pytestmark = pytest.mark.browser

WIDTHS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


def _shoot(browser: Any, cookies: list[dict[str, Any]], url: str, out: Path) -> None:  # noqa: F811
    for name, viewport in WIDTHS.items():
        context = browser.new_context(viewport=viewport)
        context.add_cookies(cookies)
        shot = context.new_page()
        shot.goto(url)
        shot.screenshot(path=str(out.with_name(f"{out.stem}-{name}.png")), full_page=True)
        context.close()


def _subscriptions(sandbox: Any, app_id: str, per_variant: int) -> dict[str, list[str]]:
    """Sandbox subscriptions, sorted by the variant the experiment will give them."""
    client = sandbox.client()
    customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {"currency": "usd", "unit_amount": 2000, "recurring": {"interval": "month"}}
        | {"product_data": {"name": "Pro"}}
    ).id
    found: dict[str, list[str]] = {"holdout": [], "b": []}
    for _ in range(40):  # bounded: each new subscription lands in either arm with p = 1/2
        if all(len(v) >= per_variant for v in found.values()):
            break
        sub = client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": price}]}
        ).id
        arm = "holdout" if variant_bucket(app_id, "exp1", sub, 2) == 0 else "b"
        if len(found[arm]) < per_variant:
            found[arm].append(sub)
    assert all(len(v) == per_variant for v in found.values()), found
    return found


def test_reports_experiment_holdout_filter_drill_down_csv_end_and_promote(
    browser: Any,  # noqa: F811
    page: Any,  # noqa: F811
    serve_with_stripe: Stayflow,  # noqa: F811
    host: HostSite,  # noqa: F811
    sandbox: Any,
    tmp_path: Path,
) -> None:
    tenant = serve_with_stripe
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.Client(base_url=tenant.url, headers=headers, timeout=30) as api:
        flows = api.get("/api/v1/flows").json()["flows"]
        flows["experiments"] = [
            {
                "id": "exp1",
                "variants": [
                    {"id": "holdout", "holdout": True},
                    {"id": "b", "experience": "default"},
                ],
            }
        ]
        api.put("/api/v1/flows", json=flows).raise_for_status()
    with transaction(tenant.session_factory) as db:
        admin_service.create_user(
            db, "olga@example.com", PASSWORD, app_id=tenant.app_id, role="owner", now=utcnow()
        )
    subs = _subscriptions(sandbox, tenant.app_id, 2)
    for arm, sub_ids in subs.items():
        for index, sub_id in enumerate(sub_ids):
            host.page_with_snippet(
                f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host, subscription_id=sub_id)
            )
            page.goto(host.origin + "/")
            page.click("#bb-cancel")
            page.wait_for_url(f"{tenant.url}/c/*")
            if arm == "holdout":
                # No question and no offer: the cancel confirmation at once.
                assert page.locator("input[name=reason_id]").count() == 0
                page.get_by_role("button", name="Cancel subscription").click()
                page.wait_for_url(f"{host.origin}/goodbye")
            elif index == 0:
                page.get_by_label("It's too expensive").check()
                page.get_by_role("button", name="Continue").click()
                page.get_by_role("button", name="Take 20% off").click()
                page.wait_for_url(f"{host.origin}/account")
            else:
                page.get_by_label("I'm not using it enough").check()
                page.locator("#comment").fill("Too busy this quarter")
                page.get_by_role("button", name="Continue").click()
                page.get_by_role("button", name="No thanks, cancel my subscription").click()
                page.wait_for_url(f"{host.origin}/goodbye")

    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(viewport=WIDTHS["laptop"], accept_downloads=True)
    admin = context.new_page()
    admin.set_default_timeout(15_000)
    admin.goto(f"{tenant.url}/admin/login")
    admin.get_by_label("Email").fill("olga@example.com")
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Sign in").click()
    admin.wait_for_url(f"{tenant.url}/admin/apps/{tenant.app_id}")
    admin.get_by_role("link", name="Reports", exact=True).click()
    admin.wait_for_url(f"**/admin/apps/{tenant.app_id}/reports")
    usd = admin.locator("table.figures").first
    assert usd.locator("td[data-figure=sessions]").inner_text() == "4"
    assert usd.locator("td[data-figure=saves]").inner_text() == "1"
    assert usd.locator("td[data-figure=cancels]").inner_text() == "3"
    assert admin.get_by_text("Too busy this quarter").is_visible()
    chart = admin.locator("img[src*='charts/outcomes.svg']")
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
    cookies = context.cookies()
    _shoot(browser, cookies, admin.url, shots / "01-reports.png")

    # A filter, kept in the URL; every figure follows it.
    admin.locator("#r-variant").select_option("exp1/b")
    admin.get_by_role("button", name="Show").click()
    admin.wait_for_url("**variant=exp1%2Fb**")
    assert usd.locator("td[data-figure=sessions]").inner_text() == "2"
    # The drill-down behind "Cancels", then its CSV.
    admin.locator("tr", has_text="Cancels").first.get_by_role("link", name="Sessions").click()
    admin.wait_for_url("**/reports/sessions?figure=cancels**")
    assert admin.locator("code").all_inner_texts() == [subs["b"][1]]
    _shoot(browser, cookies, admin.url, shots / "02-drill-down.png")
    with admin.expect_download() as download:
        admin.get_by_role("link", name="Download these sessions (CSV)").click()
    path = download.value.path()
    rows = list(csv.DictReader(Path(path).open(encoding="utf-8")))
    assert [(r["subscription_id"], r["outcome"], r["variant_id"]) for r in rows] == [
        (subs["b"][1], "canceled", "b")
    ]
    assert rows[0]["reason_id"] == "not_using" and rows[0]["comment"] == "Too busy this quarter"
    assert rows[0]["currency"] == "usd"

    # Generated sessions take the experiment to significance.
    from tests.reports.helpers import app_pk

    with transaction(tenant.session_factory) as db:
        pk = app_pk(db, tenant.app_id)
        rng = random.Random(9)
        _run(db, pk, rng, "holdout", 150, 0, 1000)
        _run(db, pk, rng, "b", 150, 0.35, 1000)
    admin.goto(f"{tenant.url}/admin/apps/{tenant.app_id}/reports")
    admin.get_by_role("link", name="exp1").click()
    admin.wait_for_url("**/reports/experiments/exp1")
    verdict = admin.locator(".verdict").inner_text()
    assert verdict.startswith("Variant b keeps more MRR per session than holdout: +"), verdict
    _shoot(browser, context.cookies(), admin.url, shots / "03-experiment.png")
    admin.get_by_role("button", name="End and make b the default").click()
    admin.wait_for_url("**/reports/experiments/exp1")
    assert admin.get_by_text("Ended.").is_visible()
    assert admin.get_by_role("button", name="End and make b the default").count() == 0
    with httpx.Client(base_url=tenant.url, headers=headers, timeout=30) as api:
        after = api.get("/api/v1/flows").json()["flows"]
    assert after["experiments"][0]["active"] is False
    assert after["experiences"][0]["id"] == "default"
    context.close()
    taken = sorted(p.name for p in shots.iterdir())
    assert len(taken) == 6, taken
    print(f"screenshots in {shots}")
