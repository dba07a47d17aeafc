# ruff: noqa: F811  (the fixtures imported from test_browser are the test functions' parameters)
"""A page written the Brightback way works after swapping only the script's host (issue 10, 5).

Real Chromium (Playwright), stayflow under uvicorn on 127.0.0.1, the business's site on
http://localhost:<port> (another origin, so CORS is real). SQLite only, like test_browser.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.cancel_flow.test_browser import (  # noqa: F401 (fixtures)
    HostSite,
    Stayflow,
    browser,
    free_port,
    host,
    outcome_of,
    page,
    snippet_data,
    stayflow,
    tenant,
)

pytestmark = pytest.mark.browser


def brightback_page(script_url: str, data: dict[str, Any]) -> str:
    """As Brightback's install guide has it: the bb-cancel link, the script, handleData."""
    payload = json.dumps(data).replace("</", "<" + chr(92) + "/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme</title></head>
<body>
<a id="bb-cancel" href="/fallback">Cancel subscription</a>
<script type="text/javascript" src="{script_url}"></script>
<script type="text/javascript">window.Brightback.handleData({payload});</script>
</body></html>"""


def spa_page(script_url: str, data: dict[str, Any]) -> str:
    """A single-page app: handleDataPromise, then its own navigation."""
    payload = json.dumps(data).replace("</", "<" + chr(92) + "/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme SPA</title></head>
<body>
<button id="cancel">Cancel subscription</button>
<pre id="out"></pre>
<script src="{script_url}"></script>
<script>
document.getElementById("cancel").addEventListener("click", function () {{
  window.Brightback.handleDataPromise({payload}).then(function (answer) {{
    document.getElementById("out").textContent = JSON.stringify(answer);
    if (answer.valid) window.location.assign(answer.url);
  }}, function (error) {{
    document.getElementById("out").textContent = "rejected: " + error.message;
  }});
}});
</script>
</body></html>"""


def test_handle_data_and_the_bb_cancel_link_from_brightbacks_script_path(
    page: Any, tenant: Stayflow, host: HostSite
) -> None:
    for path in ("/js/current/brightback.js", "/js/current/?compiled=true"):
        host.host_page = brightback_page(f"{tenant.url}{path}", snippet_data(tenant, host))
        page.goto(host.origin + "/")
        page.click("#bb-cancel")
        page.wait_for_url(f"{tenant.url}/c/*")
        assert page.locator("h1").inner_text() == "We're sorry to see you go"
    page.get_by_label("It's too expensive").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="No thanks, cancel my subscription").click()
    page.wait_for_url(f"{host.origin}/goodbye")


def test_handle_data_promise_resolves_on_any_status(
    page: Any, tenant: Stayflow, host: HostSite
) -> None:
    script = f"{tenant.url}/js/current/brightback.js"
    host.host_page = spa_page(script, snippet_data(tenant, host, auth_hash="0" * 64))
    page.goto(host.origin + "/")
    page.click("#cancel")
    page.wait_for_function("document.getElementById('out').textContent.length > 0")
    refused = json.loads(page.locator("#out").inner_text())
    assert refused["valid"] is False and refused["error"]["type"] == "invalid_signature"
    assert refused["message"] == "auth_hash does not match subscription_id"

    host.host_page = spa_page(script, snippet_data(tenant, host))
    page.goto(host.origin + "/")
    page.click("#cancel")
    page.wait_for_url(f"{tenant.url}/c/*")
    assert outcome_of(tenant).outcome is None  # a session, opened


def test_handle_data_promise_rejects_on_a_network_error(
    page: Any, tenant: Stayflow, host: HostSite
) -> None:
    """A host that serves the script but drops the precancel connection: a network error."""
    snippet = httpx.get(f"{tenant.url}/js/current/brightback.js").text

    class Dropping(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.end_headers()
            self.wfile.write(snippet.encode())

        def do_POST(self) -> None:
            self.close_connection = True  # no answer at all

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Dropping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = f"http://127.0.0.1:{port}/js/current/brightback.js"
        host.host_page = spa_page(script, snippet_data(tenant, host))
        page.goto(host.origin + "/")
        page.click("#cancel")
        page.wait_for_function("document.getElementById('out').textContent.length > 0")
        assert page.locator("#out").inner_text().startswith("rejected:")
    finally:
        server.shutdown()
        server.server_close()


def test_brightbacks_own_request_shape_passes_the_preflight(
    page: Any, tenant: Stayflow, host: HostSite
) -> None:
    """Brightback's script posts application/json with credentials and no ?app_id=."""
    data = snippet_data(tenant, host)
    host.host_page = "<!doctype html><title>Acme</title><p>bb</p>"
    page.goto(host.origin + "/")
    answer = page.evaluate(
        """async ([url, data]) => {
            const response = await fetch(url, {
                method: "POST", credentials: "include", mode: "cors",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify(data)});
            return {status: response.status, body: await response.json()};
        }""",
        [f"{tenant.url}/precancel", data],
    )
    assert answer["status"] == 200
    assert answer["body"]["valid"] is True and answer["body"]["message"] == answer["body"]["url"]
