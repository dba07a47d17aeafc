# ruff: noqa: F811  (the fixtures imported from test_browser are the test functions' parameters)
"""clients/js (@stayflow/client) with the machine's Node.js and npm (issue 16).

`npm ci` from the lock file (once per pytest run, shared by the xdist workers under a file
lock), then the package's own checks (Vitest, tsc, the build), then the Vite example app,
built and driven in Debian's Chromium through a whole session against a real stayflow
connected to the Stripe sandbox. Without npm or Chromium these tests are skipped, and with
STAYFLOW_REQUIRE_BROWSER=1 (CI) they fail instead.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from stayflow.cancel_sessions.models import CancelSession
from stayflow.ops.client_openapi import CLIENT_DIR
from tests.cancel_flow.helpers import sign
from tests.cancel_flow.test_browser import (  # noqa: F401 (fixtures)
    Shots,
    Stayflow,
    _browser_missing,
    browser,
    free_port,
    host,
    serve_with_stripe,
    shots,
)

pytestmark = pytest.mark.browser
NPM_TIMEOUT = 300


def _run_id(config: pytest.Config) -> str:
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        return str(worker["testrunuid"])
    found = getattr(config, "_stayflow_run_id", None)
    if found is None:
        found = uuid.uuid4().hex
        config._stayflow_run_id = found  # type: ignore[attr-defined]
    return str(found)


def npm(*args: str, timeout: int = NPM_TIMEOUT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["npm", *args],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CI": "1", "NO_COLOR": "1", "npm_config_fund": "false"},
        check=False,
    )
    output = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"npm {' '.join(args)}:\n{output}"
    return done


@pytest.fixture(scope="session")
def installed(request: pytest.FixtureRequest) -> Path:
    """`npm ci` once per test run (the first worker to get the lock runs it)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        _browser_missing("npm and node are not installed (apt-get install npm)")
    stamp = CLIENT_DIR / "node_modules" / ".stayflow-test-run"
    run_id = _run_id(request.config)
    with (CLIENT_DIR / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (stamp.exists() and stamp.read_text() == run_id):
                npm("ci", "--no-audit", "--prefer-offline")
                stamp.write_text(run_id)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return CLIENT_DIR


def test_vitest_typecheck_and_build(installed: Path) -> None:
    tests = npm("test", "--", "--reporter=verbose")
    out = tests.stdout
    assert " failed" not in out.split("Test Files")[-1]
    for name in ("useCancelFlow", "CancelFlow", "CancelFlowClient", "openapi.d.ts is generated"):
        assert name in out, f"{name!r} not among the Vitest tests run:\n{out[-3000:]}"
    npm("run", "typecheck")
    npm("run", "build")
    for built in ("index.js", "index.d.ts", "react.js", "react.d.ts", "styles.css"):
        assert (installed / "dist" / built).is_file()
    # Ready to publish: what `npm pack` would put in the tarball (nothing is published).
    packed = json.loads(npm("pack", "--dry-run", "--json").stdout)[0]
    files = {f["path"] for f in packed["files"]}
    assert {"package.json", "dist/index.js", "dist/react.js", "dist/styles.css"} <= files
    assert not any(f.startswith(("src/", "test/", "node_modules/")) for f in files)
    assert packed["name"] == "@stayflow/client"


@pytest.fixture
def example_site(installed: Path) -> Iterator[tuple[str, Path]]:
    npm("run", "example:build")
    dist = installed / "example" / "dist"
    port = free_port()
    handler = functools.partial(QuietFiles, directory=str(dist))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{port}", dist
    finally:
        server.shutdown()
        server.server_close()


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 800)], ids=["phone", "laptop"])
def test_example_app_runs_a_whole_session(
    browser, serve_with_stripe, sandbox, example_site, shots, viewport
):
    tenant: Stayflow = serve_with_stripe
    origin, dist = example_site
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    httpx.patch(
        f"{tenant.url}/api/v1/cancel-flow/settings",
        json={"allowed_origins": [origin]},
        headers=headers,
    ).raise_for_status()
    client = sandbox.client()
    customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {"currency": "usd", "unit_amount": 2000, "recurring": {"interval": "month"}}
        | {"product_data": {"name": "Pro"}}
    ).id
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price}]}).id
    # What the business's server writes: where stayflow is, and the signed precancel data.
    (dist / "config.json").write_text(
        json.dumps(
            {
                "stayflow_url": tenant.url,
                "precancel": {
                    "app_id": tenant.app_id,
                    "subscription_id": sub,
                    "auth_hash": sign(tenant.app_secret, sub),
                    "first_name": "Ada",
                    "locale": "en",
                },
            }
        )
    )
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(origin + "/")
        page.click("#cancel")
        flow = page.get_by_role("region", name="We're sorry to see you go")
        flow.wait_for()
        shots.take(page, f"react-reason-{width}")
        page.get_by_label("It's too expensive").check()
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("heading", name="Stay for 20% off, Ada").wait_for()
        shots.take(page, f"react-offers-{width}")
        page.get_by_role("button", name="Take 20% off").click()
        outcome = page.locator("#outcome")
        outcome.wait_for()
        assert outcome.get_attribute("data-outcome") == "saved"
        assert "twenty_off" in outcome.inner_text()
        status = page.get_by_role("status")
        assert "20% off is applied to your next 3 invoices" in status.inner_text()
        shots.take(page, f"react-saved-{width}")
        if width < 600:
            assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()
    with tenant.session_factory() as db:
        cs = db.scalars(select(CancelSession).where(CancelSession.subscription_id == sub)).one()
    assert (cs.outcome, cs.reason_id, cs.offer_accepted_id) == (
        "saved",
        "too_expensive",
        "twenty_off",
    )
    # Applied in (sandbox) Stripe, by stayflow.
    assert client.v1.subscriptions.retrieve(sub).discounts
    # No network at run time beyond the business's own site and the stayflow host.
    strangers = [u for u in requests if not u.startswith((origin, tenant.url))]
    assert strangers == []
    assert all(p.stat().st_size > 5_000 for p in shots.taken)
