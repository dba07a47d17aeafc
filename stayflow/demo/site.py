"""The demo business's own site: an account page per subscriber, each with a Cancel link.

What a real business does on its server is done here: the ``auth_hash`` (an HMAC of the
subscription id with the app's secret) is made when the page is rendered, never in the
browser. The snippet comes from stayflow, on another origin.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from stayflow.demo.history import sign
from stayflow.demo.state import DemoState

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;color:#222}"
    "a{color:#2f6fed}.note{background:#f5f6fa;padding:1rem;border-radius:.5rem}"
)


def _page(title: str, body: str, *, refresh: bool = False) -> bytes:
    meta = '<meta http-equiv="refresh" content="3">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


class Site:
    """``state()`` is read on every request: the page follows the demo as it fills in."""

    def __init__(self, state: Callable[[], DemoState], progress: Callable[[], dict[str, Any]]):
        self.state = state
        self.progress = progress
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self, port: int) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, content_type, body = site.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="stayflow-demo-site", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(5)

    def answer(self, target: str) -> tuple[int, str, bytes]:
        parts = urlsplit(target)
        path, query = parts.path, parts.query
        state = self.state()
        if path == "/status":
            return 200, "application/json", json.dumps(self.progress()).encode()
        if path == "/":
            return 200, "text/html; charset=utf-8", self.index(state, query)
        if path.startswith("/account/"):
            wanted = path.removeprefix("/account/")
            for customer in state.customers:
                if customer.subscription_id == wanted:
                    return 200, "text/html; charset=utf-8", self.account(state, customer, query)
        if path == "/support":
            return (
                200,
                "text/html; charset=utf-8",
                _page("Support", "<p>Write to support@example.com and we will help.</p>"),
            )
        return 404, "text/html; charset=utf-8", _page("Not found", "<p>No such page.</p>")

    def index(self, state: DemoState, query: str) -> bytes:
        progress = self.progress()
        if not progress["ready"]:
            return _page(
                "Example Inc.",
                '<p class="note">The demo is playing 90 days of subscribers through stayflow '
                f"(day {progress['day']} of {progress['days']}, {progress['sessions']} cancel "
                "sessions so far). This page opens the accounts when it is done.</p>",
                refresh=True,
            )
        rows = "".join(
            f'<li><a href="/account/{html.escape(c.subscription_id)}">{html.escape(c.name)}</a>'
            f" ({html.escape(c.plan)})</li>"
            for c in state.customers
        )
        return _page(
            "Example Inc.",
            f"{_outcome_note(query)}<p>Sign in as one of our subscribers:</p><ul>{rows}</ul>",
        )

    def account(self, state: DemoState, customer: Any, query: str) -> bytes:
        data = {
            "app_id": state.app_id,
            "subscription_id": customer.subscription_id,
            # Made here, on the business's server, with the app's secret.
            "auth_hash": sign(state.app_secret, customer.subscription_id),
            "email": customer.email,
            "first_name": customer.name.split()[0],
            "save_return_url": f"{state.site_url}/account/{customer.subscription_id}?saved",
            "cancel_confirmation_url": (
                f"{state.site_url}/account/{customer.subscription_id}?canceled"
            ),
        }
        # json.dumps, with "<" escaped, is safe inside a script element.
        payload = json.dumps(data).replace("<", "\\u003c")
        body = (
            f"{_outcome_note(query)}"
            f"<p>Signed in as {html.escape(customer.name)} ({html.escape(customer.email)}).</p>"
            f"<p>Your plan: {html.escape(customer.plan)}.</p>"
            '<p><a id="bb-cancel" href="/support">Cancel my subscription</a></p>'
            '<p><a href="/">Other subscribers</a></p>'
            f'<script src="{state.stayflow_url}/js/stayflow.js"></script>'
            f"<script>window.Stayflow.handleData({payload});</script>"
        )
        return _page(f"Your account, {customer.name.split()[0]}", body)


def _outcome_note(query: str) -> str:
    if query.startswith("saved"):
        return '<p class="note" id="outcome">Thank you for staying with us!</p>'
    if query.startswith("canceled"):
        return '<p class="note" id="outcome">Your subscription is canceled. Goodbye!</p>'
    return ""
