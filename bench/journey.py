"""The subscriber's journey in a real browser, on the default `stayflow serve`, 20 times.

    python bench/journey.py [--runs 20] [--latency-ms 300] [--backend sqlite|postgres]

Starts the Stripe sandbox (its own process), `stayflow serve` (one process, in-process worker,
SQLite by default) connected to the sandbox through the connect API (the sandbox's webhooks
keep the mirror fresh), and a business's site on http://localhost:<port> carrying the
snippet. Then, with the sandbox adding ``--latency-ms`` to every API request, each run opens
the business's page in Debian's Chromium (Playwright), clicks Cancel, picks a reason and
accepts the discount, accepts the pause, or cancels (in turn), and must land on the
business's return URL; the cancel link reopened must then show the result page saying what
happened (never "processing"). Prints each run's outcome and the tally; exits 1 on a miss.
Everything listens on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from _support import (
    create_database,
    drop_database,
    free_port,
    start_server,
    stop_server,
    wait_http,
)

from stayflow.sandbox import Sandbox

SECRET = "bench-" + "k" * 40
CHROMIUM = "/usr/bin/chromium"
PAGES = {
    "/account": "<h1>Your account</h1><p id='landed'>account</p>",
    "/goodbye": "<h1>Goodbye</h1><p id='landed'>goodbye</p>",
    "/fallback": "<h1>Cancel by email</h1><p id='landed'>fallback</p>",
}
FLOWS = {
    "reasons": [
        {"id": "too_expensive", "label": "It's too expensive", "feedback": "too_expensive"},
        {"id": "not_using", "label": "I'm not using it enough", "feedback": "unused"},
    ],
    "offers": [
        {"id": "off", "type": "discount", "coupon": "", "button": "Take 20% off"},
        {"id": "pause", "type": "pause", "duration": 1, "interval": "month"},
    ],
    "experiences": [
        {"id": "default", "reasons": ["too_expensive", "not_using"], "offers": ["off", "pause"]}
    ],
}
KINDS = [
    ("discount", "/account", "20% off is applied to your next 3 invoices"),
    ("pause", "/account", "Your subscription is paused until "),
    ("cancel", "/goodbye", "you keep access until then. No further charge will be made."),
]


class Site:
    """The business: a page with the snippet, and the pages the flow returns to."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://localhost:{self.port}"
        self.page = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.page if self.path == "/" else PAGES.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def with_snippet(self, base: str, data: dict[str, Any]) -> None:
        payload = json.dumps(data).replace("</", "<\\/")
        self.page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Acme</title>"
            "</head><body><h1>Acme Pro</h1>"
            "<a id='bb-cancel' href='/fallback'>Cancel subscription</a>"
            f"<script src='{base}/js/stayflow.js'></script>"
            f"<script>window.Stayflow.handleData({payload});</script></body></html>"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _setup(base: str, env: dict[str, str], sandbox: Sandbox, site: Site) -> dict[str, Any]:
    cli = [sys.executable, "-m", "stayflow.cli.main"]
    made = subprocess.run(
        [*cli, "apps", "create", "acme", "--json"], env=env, capture_output=True, check=True
    )
    app: dict[str, Any] = json.loads(made.stdout)
    client = sandbox.client()
    coupon = client.v1.coupons.create(
        {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    ).id
    flows = json.loads(json.dumps(FLOWS))
    flows["offers"][0]["coupon"] = coupon
    headers = {"Authorization": f"Bearer {app['api_key']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        api.patch(
            "/api/v1/cancel-flow/settings", json={"allowed_origins": [site.origin]}
        ).raise_for_status()
        api.put("/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}).raise_for_status()
        api.put(
            "/api/v1/billing/stripe/setup",
            json={"offers": True, "cancels": True, "cancel": {"at_period_end": True}},
        ).raise_for_status()
        api.put("/api/v1/flows", json=flows).raise_for_status()
    return app


def _subscriptions(sandbox: Sandbox, count: int) -> list[str]:
    client = sandbox.client()
    customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
        }
    ).id
    return [
        client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price}]}).id
        for _ in range(count)
    ]


def _journey(page: Any, base: str, site: Site, kind: str) -> str:
    """One subscriber's clicks; returns their cancel link."""
    page.goto(site.origin + "/")
    page.click("#bb-cancel")
    page.wait_for_url(f"{base}/c/*")
    link = str(page.url)
    if kind == "discount":
        page.get_by_label("It's too expensive").check()
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Take 20% off").click()
    elif kind == "pause":
        page.get_by_label("I'm not using it enough").check()
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Pause my subscription").click()
    else:
        page.get_by_label("It's too expensive").check()
        page.get_by_role("button", name="Cancel subscription").click()
    return link


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    site = Site()
    with tempfile.TemporaryDirectory() as tmp, Sandbox.start(subprocess=True) as sandbox:
        url = create_database(args.backend, Path(tmp))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "STAYFLOW_DATABASE_URL": url,
            "STAYFLOW_SECRET_KEY": SECRET,
            "STAYFLOW_BASE_URL": base,
            "STAYFLOW_STRIPE_API_BASE": sandbox.url,
            "STAYFLOW_LOG_LEVEL": "WARNING",
        }
        server = start_server(
            [sys.executable, "-m", "stayflow.cli.main", "serve", "--port", str(port)],
            env,
            stderr=subprocess.DEVNULL,
        )
        misses = 0
        try:
            wait_http(f"{base}/js/stayflow.js", timeout=60)
            app = _setup(base, env, sandbox, site)
            subs = _subscriptions(sandbox, args.runs)
            sandbox.set_latency(args.latency_ms)
            print(
                f"{args.runs} journeys on `stayflow serve` ({args.backend}, in-process worker), "
                f"sandbox +{args.latency_ms} ms"
            )
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                page = browser.new_page()
                page.set_default_timeout(30_000)
                for index, sub_id in enumerate(subs):
                    kind, landing, words = KINDS[index % len(KINDS)]
                    signature = hmac.new(
                        app["app_secret"].encode(), sub_id.encode(), hashlib.sha256
                    ).hexdigest()
                    site.with_snippet(
                        base,
                        {
                            "app_id": app["app_id"],
                            "subscription_id": sub_id,
                            "auth_hash": signature,
                            "save_return_url": f"{site.origin}/account",
                            "cancel_confirmation_url": f"{site.origin}/goodbye",
                        },
                    )
                    started = time.perf_counter()
                    link = _journey(page, base, site, kind)
                    page.wait_for_url(f"{site.origin}{landing}")
                    took = time.perf_counter() - started
                    page.goto(link)
                    state = page.locator("#result").get_attribute("data-state")
                    said = page.locator("#result-message").inner_text()
                    ok = state == "done" and words in said
                    misses += not ok
                    print(
                        f"  {index + 1:>2} {kind:<8} landed on {landing:<9} in {took:5.2f} s; "
                        f"result page: {state}: {said}"
                    )
                browser.close()
        finally:
            sandbox.set_latency(0)
            stop_server(server)
            drop_database(url)
            site.close()
        print(f"landed and stated what happened: {args.runs - misses}/{args.runs}")
        if misses:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
