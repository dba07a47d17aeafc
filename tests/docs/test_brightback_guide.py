# ruff: noqa: F811  (the fixtures imported from test_browser are the test functions' parameters)
"""`docs/migrate-from-brightback.md`, run: its page written the Brightback way (placeholders
filled) works against stayflow in Chromium, and its flows file applies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cancel_flow.helpers import sign
from tests.cancel_flow.test_browser import (  # noqa: F401 (fixtures)
    HostSite,
    Stayflow,
    browser,
    host,
    page,
    stayflow,
    tenant,
)

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "migrate-from-brightback.md").read_text()


def block(language: str) -> str:
    [found] = re.findall(rf"```{language}\n(.*?)```", GUIDE, re.S)
    return found


@pytest.mark.browser
def test_the_guides_brightback_page_cancels_through_stayflow(
    page: Any, tenant: Stayflow, host: HostSite
) -> None:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    applied = httpx.put(
        f"{tenant.url}/api/v1/flows", json=yaml.safe_load(block("yaml")), headers=headers
    )
    assert applied.status_code == 200, applied.text
    subscription = "sub_FromBrightback1"
    html = block("html")
    for old, new in {
        "https://cancel.example.com": tenant.url,
        "https://app.example.com": host.origin,
        "APP_ID": tenant.app_id,
        "SUBSCRIPTION_ID": subscription,
        "AUTH_HASH": sign(tenant.app_secret, subscription),
    }.items():
        assert old in html, old
        html = html.replace(old, new)
    host.host_page = f'<!doctype html><html lang="en"><body>{html}</body></html>'

    page.goto(host.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{tenant.url}/c/*")
    assert page.locator("h1").inner_text() == "We're sorry to see you go"
    page.get_by_label("It's too expensive").check()
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_text("Stay for 20% off, Ada").is_visible()
    page.get_by_role("button", name="No thanks, cancel my subscription").click()
    page.wait_for_url(f"{host.origin}/goodbye")

    [session] = httpx.get(f"{tenant.url}/api/v1/cancel-sessions", headers=headers).json()["data"]
    assert (session["subscription_id"], session["outcome"]) == (subscription, "canceled")
    detail = httpx.get(
        f"{tenant.url}/api/v1/cancel-sessions/{session['session_id']}", headers=headers
    ).json()
    # Brightback's fields were kept as the page sent them.
    assert detail["request_fields"]["account"]["plan"] == "Pro"
    assert detail["request_fields"]["custom"] == {"seats": 3}
