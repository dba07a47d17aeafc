# ruff: noqa: F811  (the fixtures imported from test_browser are the test functions' parameters)
"""The minimum body in a real browser (issue 10, section 1): app_id + subscription_id +
auth_hash, no URLs anywhere, and the flow ends on stayflow's own finished page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cancel_flow.helpers import sign
from tests.cancel_flow.test_browser import (  # noqa: F401 (fixtures)
    HostSite,
    Stayflow,
    browser,
    host,
    outcome_of,
    page,
    stayflow,
    tenant,
)

pytestmark = pytest.mark.browser


def test_the_minimum_body_ends_on_stayflows_result_page(
    page: Any, tenant: Stayflow, host: HostSite
) -> None:
    sub = "sub_minimum"
    data = {
        "app_id": tenant.app_id,
        "subscription_id": sub,
        "auth_hash": sign(tenant.app_secret, sub),
    }
    host.page_with_snippet(f"{tenant.url}/js/stayflow.js", data)
    page.goto(host.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{tenant.url}/c/*")
    cancel_page = page.url
    page.get_by_label("It's too expensive").check()
    page.get_by_role("button", name="Continue").click()
    with page.expect_navigation():
        page.get_by_role("button", name="No thanks, cancel my subscription").click()
    # The form's 303 goes to the session's own page (CSP form-action 'self'), now finished:
    # no step of the flow, no form, nothing that could send it twice.
    assert page.url == cancel_page
    assert outcome_of(tenant).outcome == "canceled"
    assert page.locator("form").count() == 0
    assert "We're sorry to see you go" not in page.content()
