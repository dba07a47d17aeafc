"""Logs an operator can read, checked as the operator sees them: the configured handler's lines.

Each test configures logging exactly as ``stayflow serve`` does (``configure_logging``) but
into a buffer, and restores the process's logging afterwards.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from stayflow.app import create_app
from stayflow.billing.stripe.client import StripeBillingProvider
from stayflow.logs import configure_logging
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.cancel_flow.helpers import ORIGIN, configure, precancel_body
from tests.cancel_flow.test_browser import free_port, wait_for_port

LOGGERS = (
    "",
    "stripe",
    "httpx",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "alembic.runtime.plugins",
)
# Other tests in the same process start uvicorn with log_level="warning" or its default
# log_config (a handler of its own, no propagation); `stayflow serve` does neither.
FRESH_IN_SERVE = ("uvicorn", "uvicorn.error")


@pytest.fixture
def operator_log() -> Iterator[Callable[..., io.StringIO]]:
    """``configure(level)`` sends every log line to a buffer, as ``stayflow serve`` would."""
    saved = {
        name: (
            logging.getLogger(name).level,
            list(logging.getLogger(name).handlers),
            list(logging.getLogger(name).filters),
            logging.getLogger(name).propagate,
        )
        for name in LOGGERS
    }

    def configure_into(level: str = "INFO", json_logs: bool = True) -> io.StringIO:
        buffer = io.StringIO()
        for name in FRESH_IN_SERVE:  # as a fresh `stayflow serve` process finds them
            fresh = logging.getLogger(name)
            fresh.setLevel(logging.NOTSET)
            fresh.handlers[:] = []
            fresh.propagate = True
        configure_logging(level, json_logs, stream=buffer)
        return buffer

    yield configure_into
    for name, (level, handlers, filters, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.propagate = propagate


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def events(buffer: io.StringIO, name: str) -> list[dict[str, Any]]:
    return [line for line in lines(buffer) if line["event"] == name]


def test_one_access_line_per_request_with_the_route_template_never_a_token_or_key(
    operator_log, client: TestClient, owner
) -> None:
    log = operator_log("INFO")
    token = "tok_" + "s3cr3t" * 5
    page = client.get(f"/c/{token}?lang=fr", headers={"X-Request-ID": "req-page-1"})
    api = client.get("/api/v1/app", headers={**owner.headers, "X-Request-ID": "req-api-1"})
    missing = client.get("/no/such/path")
    assert api.status_code == 200 and missing.status_code == 404

    access = events(log, "http.request")
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("GET", "/c/{token}", page.status_code),
        ("GET", "/api/v1/app", 200),
        ("GET", "unmatched", 404),
    ]
    assert [a["request_id"] for a in access[:2]] == ["req-page-1", "req-api-1"]
    assert access[2]["request_id"] == missing.headers["x-request-id"]
    assert all(isinstance(a["ms"], float) and a["ms"] >= 0 for a in access)
    text = log.getvalue()
    assert token not in text and owner.api_key not in text and "lang=fr" not in text


def test_the_text_format_shows_the_fields_too(operator_log, client: TestClient) -> None:
    log = operator_log("INFO", json_logs=False)
    client.get("/healthz", headers={"X-Request-ID": "req-text-1"})
    [line] = [line for line in log.getvalue().splitlines() if "http.request" in line]
    for part in ("INFO", "method=GET", "path=/healthz", "status=200", "request_id=req-text-1"):
        assert part in line


def test_a_refused_precancel_is_logged_with_its_reason(operator_log, client, owner) -> None:
    configure(client, owner)  # allows ORIGIN only
    log = operator_log("INFO")
    wrong_origin = "https://evil.example.net"
    refused = client.post(
        "/precancel", json=precancel_body(owner), headers={"Origin": wrong_origin}
    )
    # Refusals answer 400 as Brightback's do (the reason is in the body and the log).
    assert refused.status_code == 400
    bad_hash = client.post(
        "/precancel", json=precancel_body(owner, auth_hash="0" * 64), headers={"Origin": ORIGIN}
    )
    assert bad_hash.status_code == 400
    preflight = client.options(
        f"/precancel?app_id={owner.app_id}",
        headers={"Origin": wrong_origin, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers

    found = events(log, "precancel.refused")
    assert [(f["reason"], f["status"], f["app_id"]) for f in found] == [
        ("origin_not_allowed", 400, owner.app_id),
        ("invalid_signature", 400, owner.app_id),
    ]
    assert found[0]["origin"] == wrong_origin and found[0]["level"] == "warning"
    [pre] = events(log, "precancel.preflight_refused")
    assert (pre["reason"], pre["origin"]) == ("origin_not_allowed", wrong_origin)
    assert owner.app_secret not in log.getvalue()


def test_connect_time_permission_probes_are_not_logged_as_errors(
    operator_log, settings: Settings, sandbox: Sandbox, owner
) -> None:
    # A key that may not write: the write probes answer 403 on purpose.
    key = sandbox.create_restricted_key(
        {"subscriptions": "read", "customers": "read", "products": "read", "events": "read"}
    )
    app = create_app(settings.model_copy(update={"stripe_api_base": sandbox.url}))
    with TestClient(app) as client:
        log = operator_log("INFO")
        connected = client.put(
            "/api/v1/billing/stripe", json={"api_key": key}, headers=owner.headers
        )
    assert connected.status_code == 200, connected.text
    assert connected.json()["permissions"]["subscriptions:write"]["granted"] is False
    recorded = lines(log)
    assert [r for r in recorded if r["logger"].startswith("stripe")] == []
    assert [r for r in recorded if r["level"] in ("warning", "error", "critical")] == []
    assert "error" not in log.getvalue().lower()
    assert key not in log.getvalue()


def test_one_debug_line_per_stripe_call_and_none_above_debug(
    operator_log, sandbox: Sandbox, make_paying_customer, make_price, stripe_client
) -> None:
    customer = make_paying_customer(email="ada@example.com")
    price = make_price()
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )

    quiet = operator_log("INFO")
    provider = StripeBillingProvider(sandbox.secret_key, api_base=sandbox.url)
    provider.retrieve_subscription(sub.id)
    assert [r for r in lines(quiet) if r["logger"] == "stripe"] == []

    log = operator_log("DEBUG")
    provider = StripeBillingProvider(sandbox.secret_key, api_base=sandbox.url)
    provider.retrieve_subscription(sub.id)
    endpoint = provider.create_webhook_endpoint("http://127.0.0.1:9/hook", ["customer.updated"])
    try:
        provider.retrieve_subscription("sub_missing")
    except Exception:
        pass
    calls = [r for r in lines(log) if r["logger"] == "stripe"]
    assert [(c["event"], c["level"], c["method"], c["path"], c["status"]) for c in calls] == [
        ("stripe.call", "debug", "GET", f"/v1/subscriptions/{sub.id}", 200),
        ("stripe.call", "debug", "POST", "/v1/webhook_endpoints", 200),
        ("stripe.call", "debug", "GET", "/v1/subscriptions/sub_missing", 404),
    ]
    assert len(calls) == provider.calls
    text = log.getvalue()
    # Neither the key, the webhook secret, nor what was sent or received reaches the log.
    assert sandbox.secret_key not in text and endpoint.secret not in text
    assert "ada@example.com" not in text and "expand" not in text


def test_uvicorn_lines_are_json_without_colour_codes(operator_log, settings: Settings) -> None:
    log = operator_log("INFO")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        # The port opens before uvicorn logs "running on" and sets ``started``: wait for the
        # flag (bounded), or the line may not be written yet when we stop it.
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert server.started
    recorded = lines(log)  # every line parses as JSON
    uvicorn_lines = [r for r in recorded if r["logger"].startswith("uvicorn")]
    assert any("Uvicorn running on" in r["event"] for r in uvicorn_lines)
    assert "\x1b" not in log.getvalue() and "\\u001b" not in log.getvalue()
    assert all("color_message" not in r for r in uvicorn_lines)
