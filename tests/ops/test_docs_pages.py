"""/docs and /redoc work without the internet: their assets come from this server.

Chromium is told to refuse every request that leaves the stayflow server, as on a machine
with no internet; the pages must still render every operation of the OpenAPI document.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from stayflow.app import create_app
from stayflow.settings import Settings
from tests.cancel_flow.test_browser import browser, free_port, wait_for_port
from tests.conftest import TEST_SECRET_KEY

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with the cancel-flow tests


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    db_url: str = request.getfixturevalue("_sqlite_url")
    port = free_port()
    settings = Settings(database_url=db_url, secret_key=TEST_SECRET_KEY, log_json=False)
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _offline_page(browser: Any, base: str) -> tuple[Any, list[str]]:
    """A page whose every request outside ``base`` fails, as without the internet."""
    context = browser.new_context()
    refused: list[str] = []

    def route(route: Any) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    return context.new_page(), refused


def _operations(base: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{base}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.mark.browser
def test_root_leads_to_docs_that_render_every_operation_offline(browser: Any, server: str) -> None:
    page, refused = _offline_page(browser, server)
    page.goto(server + "/")
    assert page.url == server + "/docs"
    page.wait_for_selector(".opblock", timeout=60_000)
    shown = {
        (
            block.query_selector(".opblock-summary-method").inner_text().strip(),
            block.query_selector(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.query_selector_all(".opblock")
    }
    assert shown == set(_operations(server))
    assert ("POST", "/precancel") in shown
    assert refused == []
    page.context.close()


@pytest.mark.browser
def test_redoc_renders_offline(browser: Any, server: str) -> None:
    page, refused = _offline_page(browser, server)
    page.goto(server + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=60_000)
    sections = page.query_selector_all("[data-section-id^='operation/']")
    assert len(sections) == len(_operations(server))
    # ReDoc's sidebar always tries Redocly's logo from its CDN and hides the image when that
    # fails (an onError in the bundle); nothing else may leave the server.
    assert set(refused) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    page.context.close()


def test_docs_assets_are_served_by_stayflow(client: Any) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        answer = client.get(f"/_docs/{asset}")
        assert answer.status_code == 200 and len(answer.content) > 100_000
    assert "https://" not in client.get("/redoc").text
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/docs"
