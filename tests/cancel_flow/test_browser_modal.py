# ruff: noqa: F811  (the fixtures imported from test_browser are the test functions' parameters)
"""The cancel flow in a modal on the business's page (issue 16), in Debian's Chromium.

stayflow under uvicorn on http://127.0.0.1:<port>; the business's page on
http://localhost:<port> (an allowed origin); a foreign page on http://127.0.0.1:<host port>
(same host, another origin, not allowed). SQLite only, like test_browser.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from stayflow.app import create_app
from stayflow.cancel_sessions.models import CancelSession
from stayflow.settings import Settings
from tests.cancel_flow.test_browser import (  # noqa: F401 (fixtures)
    HostSite,
    Shots,
    Stayflow,
    browser,
    free_port,
    host,
    outcome_of,
    page,
    shots,
    snippet_data,
    stayflow,
    tenant,
    wait_for_port,
)
from tests.conftest import TEST_SECRET_KEY

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


def modal_page(host: HostSite, snippet_url: str, data: dict[str, Any], listeners: str = "") -> None:
    """The business's page: a modal Cancel link, a button after it, and event recorders."""
    payload = json.dumps(data).replace("</", "<" + chr(92) + "/")
    host.host_page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme: your plan</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Acme Pro</h1>
<p>Your plan renews on 1 December.</p>
<a id="bb-cancel" data-stayflow-mode="modal" href="/fallback">Cancel subscription</a>
<button id="after" type="button">Something else</button>
<div style="height: 2000px"></div>
<script src="{snippet_url}"></script>
<script>
window.__events = [];
document.addEventListener("stayflow:complete", function (e) {{
  window.__events.push({{type: e.type, detail: e.detail, target: e.target.id}});
}});
document.addEventListener("stayflow:close", function (e) {{
  window.__events.push({{type: e.type, detail: e.detail, target: e.target.id}});
}});
{listeners}
window.Stayflow.handleData({payload});
</script>
</body></html>"""


def events(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("window.__events"))


def stayflow_frame(page: Any, tenant: Stayflow) -> Any:
    for frame in page.frames:
        if frame.url.startswith(f"{tenant.url}/c/"):
            return frame
    raise AssertionError(f"no stayflow frame among {[f.url for f in page.frames]}")


def open_modal(page: Any, tenant: Stayflow, *, keyboard: bool = False) -> Any:
    if keyboard:
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "bb-cancel"
        page.keyboard.press("Enter")
    else:
        page.click("#bb-cancel")
    page.wait_for_selector("[role=dialog][aria-modal=true]")
    frame_element = page.wait_for_selector("[role=dialog] iframe")
    frame = frame_element.content_frame()
    frame.wait_for_selector("h1")
    return frame


def frame_focus(frame: Any) -> str:
    return str(
        frame.evaluate(
            "(() => { const e = document.activeElement;"
            " return e ? (e.value || e.textContent || '').trim() : ''; })()"
        )
    )


def wait_frame_focus(frame: Any, text: str) -> None:
    frame.wait_for_function(
        "t => { const e = document.activeElement;"
        " return e && e !== document.body && (e.value || e.textContent || '').trim() === t; }",
        arg=text,
    )


def test_keyboard_only_save_in_the_modal(page, tenant, host, shots):
    page.set_viewport_size(LAPTOP)
    modal_page(host, f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    shots.take(page, "modal-host-laptop", full_page=False)
    frame = open_modal(page, tenant, keyboard=True)
    # The page behind is out of reach and does not scroll.
    assert page.evaluate("getComputedStyle(document.documentElement).overflow") == "hidden"
    assert page.evaluate("document.querySelector('h1').closest('[inert]') !== null")
    # Focus goes to the first control of the flow (the first reason).
    wait_frame_focus(frame, "too_expensive")
    shots.take(page, "modal-reason-laptop", full_page=False)
    # The focus trap: back from the first control is the close button, back again is the
    # frame's last control, and forward from there is the close button again.
    page.keyboard.press("Shift+Tab")
    page.wait_for_function("document.activeElement.hasAttribute('data-stayflow-close')")
    page.keyboard.press("Shift+Tab")
    wait_frame_focus(frame, "Never mind, keep my subscription")
    page.keyboard.press("Tab")
    page.wait_for_function("document.activeElement.hasAttribute('data-stayflow-close')")
    page.keyboard.press("Tab")
    wait_frame_focus(frame, "too_expensive")
    page.keyboard.press("Space")  # choose "It's too expensive"
    assert frame.is_checked("input[value=too_expensive]")
    page.keyboard.press("Tab")
    wait_frame_focus(frame, "Continue")
    page.keyboard.press("Enter")
    frame.wait_for_selector("text=Stay for 20% off, Ada")
    # The new step starts from its first control.
    wait_frame_focus(frame, "Take 20% off")
    shots.take(page, "modal-offers-laptop", full_page=False)
    page.keyboard.press("Enter")
    page.wait_for_selector("[role=dialog]", state="detached")
    [event] = events(page)
    cs = outcome_of(tenant)
    assert event["type"] == "stayflow:complete"
    assert event["target"] == "bb-cancel"
    detail = event["detail"]
    assert (detail["outcome"], detail["offer_id"], detail["session_id"]) == (
        "saved",
        "twenty_off",
        cs.session_id,
    )
    assert detail["next_url"] == f"{host.origin}/account"
    assert detail["result"]["state"] in ("done", "processing")
    assert (cs.outcome, cs.offer_accepted_id) == ("saved", "twenty_off")
    # No redirect: the subscriber is still on the business's page, focus back on the link,
    # the page scrolls again and nothing is inert.
    assert page.url == host.origin + "/"
    assert page.evaluate("document.activeElement.id") == "bb-cancel"
    assert page.evaluate("getComputedStyle(document.documentElement).overflow") != "hidden"
    assert page.evaluate("document.querySelectorAll('[inert]').length") == 0
    shots.take(page, "modal-done-laptop", full_page=False)
    assert all(p.stat().st_size > 5_000 for p in shots.taken)


def test_escape_and_close_button_on_a_phone(browser, tenant, host, shots):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        modal_page(host, f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host, locale="fr"))
        page.goto(host.origin + "/")
        frame = open_modal(page, tenant)
        wait_frame_focus(frame, "too_expensive")
        assert frame.evaluate("document.documentElement.lang") == "fr"
        # A bottom sheet: the screen's full width, down to its bottom edge.
        box = page.locator("[role=dialog]").bounding_box()
        assert box["x"] == 0 and box["width"] == PHONE["width"]
        assert abs(box["y"] + box["height"] - PHONE["height"]) < 1
        assert frame.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shots.take(page, "modal-reason-phone-fr", full_page=False)
        # Escape inside the frame closes the dialog (the frame tells the page). Key down
        # only until it is gone: the dialog closes on keydown and takes the frame with it,
        # and a keyup sent to the destroyed frame can leave Chromium never acknowledging it
        # (keyboard.press has no timeout: a CI run once hung here for 10 minutes).
        page.keyboard.down("Escape")
        page.wait_for_selector("[role=dialog]", state="detached")
        page.keyboard.up("Escape")
        [closed] = events(page)
        assert closed["type"] == "stayflow:close"
        assert closed["detail"]["reason"] == "escape"
        assert page.evaluate("document.activeElement.id") == "bb-cancel"
        # Again, closed with the button this time.
        open_modal(page, tenant)
        page.get_by_role("button", name="Close").click()
        page.wait_for_selector("[role=dialog]", state="detached")
        assert [e["detail"]["reason"] for e in events(page)] == ["escape", "button"]
        # Escape while the close button has focus (the page's own keydown).
        open_modal(page, tenant)
        page.focus("[data-stayflow-close]")
        page.keyboard.press("Escape")
        page.wait_for_selector("[role=dialog]", state="detached")
        assert [e["detail"]["reason"] for e in events(page)] == ["escape", "button", "escape"]
        shots.take(page, "modal-closed-phone", full_page=False)
    finally:
        context.close()
    with tenant.session_factory() as db:
        rows = db.scalars(select(CancelSession)).all()
    assert len(rows) == 3 and all(r.outcome is None for r in rows)


def test_pass_thru_url_opens_in_the_top_window_unless_prevented(page, tenant, host):
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    httpx.patch(
        f"{tenant.url}/api/v1/cancel-flow/settings",
        json={"cancel_pass_thru_url": f"{host.origin}/goodbye"},
        headers=headers,
    ).raise_for_status()
    # First: the host lets it go on: the top window opens the signed pass-thru URL.
    modal_page(host, f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    frame = open_modal(page, tenant)
    frame.get_by_label("It's too expensive").check()
    frame.get_by_role("button", name="Cancel subscription").click()
    page.wait_for_url(f"{host.origin}/goodbye?stayflow_token=*")
    # Then: the host's listener calls preventDefault and stays where it is.
    modal_page(
        host,
        f"{tenant.url}/js/stayflow.js",
        snippet_data(tenant, host, subscription_id="sub_second"),
        listeners='document.addEventListener("stayflow:complete", e => e.preventDefault());',
    )
    page.goto(host.origin + "/")
    frame = open_modal(page, tenant)
    frame.get_by_label("It's too expensive").check()
    frame.get_by_role("button", name="Cancel subscription").click()
    page.wait_for_selector("[role=dialog]", state="detached")
    [event] = events(page)
    assert event["detail"]["outcome"] == "canceled"
    assert event["detail"]["next_url"].startswith(f"{host.origin}/goodbye?stayflow_token=")
    assert page.url == host.origin + "/"
    # And: onComplete returning false does the same.
    data = snippet_data(tenant, host, subscription_id="sub_third")
    payload = json.dumps(data)
    host.host_page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Acme</title></head><body>
<a id="bb-cancel" href="/fallback">Cancel subscription</a>
<script src="{tenant.url}/js/stayflow.js"></script>
<script>
window.__seen = [];
var data = {payload};
data.mode = "modal";
data.onComplete = function (detail) {{ window.__seen.push(detail.outcome); return false; }};
window.Stayflow.handleData(data);
</script></body></html>"""
    page.goto(host.origin + "/")
    frame = open_modal(page, tenant)
    frame.get_by_label("It's too expensive").check()
    frame.get_by_role("button", name="Cancel subscription").click()
    page.wait_for_function("window.__seen.length === 1")
    assert page.evaluate("window.__seen") == ["canceled"]
    assert page.url == host.origin + "/"


def test_a_foreign_origins_message_is_ignored(page, tenant, host):
    foreign = f"http://127.0.0.1:{host.port}"  # same server, another origin: not allowed
    host.extra_pages["/foreign"] = "<p>an ad, or anything else on the page</p>"
    modal_page(host, f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    frame = open_modal(page, tenant)
    wait_frame_focus(frame, "too_expensive")
    nonce = json.loads(frame.locator("#stayflow-embed").text_content())["nonce"]
    # Another frame on the business's page, from another origin, that knows the nonce.
    page.evaluate(
        "src => { const f = document.createElement('iframe'); f.id = 'foreign'; f.src = src;"
        " document.body.appendChild(f); }",
        f"{foreign}/foreign",
    )
    other = page.wait_for_selector("#foreign").content_frame()
    other.wait_for_selector("p")
    forged = {
        "source": "stayflow",
        "nonce": nonce,
        "session_id": "cs_x",
        "detail": {"outcome": "saved", "offer_id": "x", "next_url": f"{foreign}/x"},
    }
    for kind in ("stayflow:complete", "stayflow:close", "stayflow:focus-out"):
        other.evaluate("m => window.parent.postMessage(m, '*')", {**forged, "type": kind})
    # ... and to stayflow's frame: move its focus.
    other.evaluate(
        "m => { for (let i = 0; i < window.parent.frames.length; i++)"
        " window.parent.frames[i].postMessage(m, '*'); }",
        {"source": "stayflow", "type": "stayflow:focus", "where": "last", "nonce": nonce},
    )
    # From the right origin (the frame's parent) but with a wrong nonce: ignored too.
    page.evaluate(
        "m => document.querySelector('[role=dialog] iframe').contentWindow.postMessage(m, '*')",
        {"source": "stayflow", "type": "stayflow:focus", "where": "last", "nonce": "wrong"},
    )
    # Let both frames' message queues run, then look: still open, nothing dispatched.
    page.wait_for_timeout(300)
    assert page.locator("[role=dialog]").count() == 1
    assert events(page) == []
    assert frame_focus(frame) == "too_expensive"
    # The same message with the right origin and nonce is obeyed (the check can fail).
    page.evaluate(
        "m => document.querySelector('[role=dialog] iframe').contentWindow.postMessage(m, '*')",
        {"source": "stayflow", "type": "stayflow:focus", "where": "last", "nonce": nonce},
    )
    wait_frame_focus(frame, "Never mind, keep my subscription")


def _precancel(tenant: Stayflow, host: HostSite, origin: str, **extra: Any) -> dict[str, Any]:
    body = snippet_data(tenant, host, **extra)
    response = httpx.post(
        f"{tenant.url}/precancel", json=body, headers={"Origin": origin}, timeout=10
    )
    response.raise_for_status()
    return dict(response.json())


def test_frame_refused_unless_embedded_by_the_allowed_origin(page, tenant, host):
    modal = _precancel(tenant, host, host.origin, mode="modal")
    assert modal["embed_nonce"]
    redirect = _precancel(tenant, host, host.origin, subscription_id="sub_redirect")
    assert "embed_nonce" not in redirect
    framing = {"/embed-modal": modal["url"], "/embed-redirect": redirect["url"]}
    for path, url in framing.items():
        host.extra_pages[path] = f'<iframe id="f" src="{url}" title="x"></iframe>'
    headers = httpx.get(modal["url"]).headers
    assert f"frame-ancestors {host.origin}" in headers["content-security-policy"]
    assert "x-frame-options" not in headers
    headers = httpx.get(redirect["url"]).headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"

    def framed_heading(origin: str, path: str) -> str | None:
        page.goto(origin + path)
        frame = page.wait_for_selector("#f").content_frame()
        frame.wait_for_load_state()
        try:
            return str(frame.locator("main#main h1").inner_text(timeout=2_000))
        except Exception:  # refused: Chromium's error page ("... is blocked") is not ours
            return None

    # The allowed origin frames a modal session's page (the control: the check can fail)...
    assert framed_heading(host.origin, "/embed-modal") == "We're sorry to see you go"
    # ... but another origin cannot, nor can anyone frame a redirect session's page.
    foreign = f"http://127.0.0.1:{host.port}"
    assert framed_heading(foreign, "/embed-modal") is None
    assert framed_heading(host.origin, "/embed-redirect") is None
    # An origin taken off the allowed list may no longer frame it.
    httpx.patch(
        f"{tenant.url}/api/v1/cancel-flow/settings",
        json={"allowed_origins": ["https://elsewhere.example.com"]},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ).raise_for_status()
    assert "frame-ancestors 'none'" in httpx.get(modal["url"]).headers["content-security-policy"]
    assert framed_heading(host.origin, "/embed-modal") is None


def test_fallback_href_when_stayflow_is_down(page, tenant, host):
    modal_page(host, f"{tenant.url}/js/stayflow.js", snippet_data(tenant, host))
    page.goto(host.origin + "/")
    page.wait_for_function("window.Stayflow && window.Stayflow.__stayflow")
    assert tenant.server is not None
    tenant.server.should_exit = True  # stayflow goes down after the page loaded the snippet
    tenant.thread.join(timeout=10)
    page.click("#bb-cancel")
    page.wait_for_url(f"{host.origin}/fallback")
    assert page.locator("[role=dialog]").count() == 0


@contextmanager
def stayflow_with_stalled_pages(db_url: str) -> Iterator[tuple[Stayflow, threading.Event]]:
    """A real stayflow whose base_url (the cancel page's host) is a server that accepts and
    never answers: precancel works, the framed page stalls. The stall is the fault under
    test; stayflow itself cannot be made to stall on demand."""
    release = threading.Event()

    class Stalled(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(timeout=30)  # bounded; the test releases it

        def log_message(self, *args: Any) -> None:
            pass

    stall_port = free_port()
    stall = ThreadingHTTPServer(("127.0.0.1", stall_port), Stalled)
    threading.Thread(target=stall.serve_forever, daemon=True).start()
    port = free_port()
    settings = Settings(
        database_url=db_url,
        secret_key=TEST_SECRET_KEY,
        base_url=f"http://127.0.0.1:{stall_port}",
        log_json=False,
        log_level="WARNING",
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield Stayflow(f"http://127.0.0.1:{port}", None), release
    finally:
        release.set()
        server.should_exit = True
        thread.join(timeout=10)
        stall.shutdown()
        stall.server_close()


def test_full_page_when_the_frame_never_says_ready(page, tenant, host, request):
    with stayflow_with_stalled_pages(request.getfixturevalue("_sqlite_url")) as (slow, _):
        modal_page(host, f"{slow.url}/js/stayflow.js", snippet_data(tenant, host))
        page.goto(host.origin + "/")
        page.click("#bb-cancel")
        page.wait_for_selector("[role=dialog]")
        stalled_url = page.locator("[role=dialog] iframe").get_attribute("src")
        assert stalled_url is not None and "/c/" in stalled_url
        # 8 s without "ready": the overlay goes and the whole page goes to the cancel page.
        # (The navigation then stalls too, so the test looks at the request, not at a page.)
        with page.expect_request(
            lambda r: r.url == stalled_url and r.frame == page.main_frame, timeout=15_000
        ) as navigation:
            pass
        assert navigation.value.is_navigation_request()
