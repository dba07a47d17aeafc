"""Schemathesis against a running server: no server error, and every answer as documented.

A real server (uvicorn on 127.0.0.1, a free port, with its job worker) runs on SQLite and on
PostgreSQL. Before fuzzing, the test creates what the paths can reach, over the server's own
API: an app connected to the Stripe sandbox (webhooks delivered to the server), a flows
document with pause, redirect and discount offers, a field mapping, a backfill, and cancel
sessions in every outcome. Each operation then gets generated inputs (positive and negative),
half of them with path parameters pinned to those real rows, and every answer is checked for
server errors and for conformance (status code, content type, response schema).

Excluded: the routes that destroy the test's own credentials (revoking an API key,
disconnecting Stripe, deleting the app).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
import stripe
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.app import create_app
from stayflow.cancel_sessions import service as sessions_service
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction, utcnow
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.cancel_flow.helpers import ORIGIN, precancel_body
from tests.conftest import Tenant

# Small enough that both runs stay near a minute; large enough to reach every status code.
MAX_EXAMPLES = 4
EXCLUDED = {
    ("DELETE", "/api/v1/api-keys/{key_id}"),
    ("DELETE", "/api/v1/billing/stripe"),
    ("DELETE", "/api/v1/app"),
}
OUTCOMES = ("saved", "deflected", "canceled", "redirected", "abandoned", "open")


@dataclass
class Seeded:
    base_url: str
    tenant: Tenant
    path_values: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings, sandbox: Sandbox) -> Iterator[tuple[str, Settings]]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    config = settings.model_copy(update={"stripe_api_base": sandbox.url, "base_url": base_url})
    app = create_app(config, run_worker=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)  # start-up poll, bounded: not a timing assertion
    assert server.started, "stayflow did not start"
    try:
        yield base_url, config
    finally:
        server.should_exit = True
        thread.join(10)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.is_success, (response.request.url, response.status_code, response.text)
    return response.json() if response.content else {}


def _seed(
    base_url: str,
    tenant: Tenant,
    sandbox: Sandbox,
    factory: sessionmaker[Session],
    make_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
    client: stripe.StripeClient,
) -> Seeded:
    seeded = Seeded(base_url, tenant)
    h = tenant.headers
    with httpx.Client(base_url=base_url, timeout=30) as api:
        _ok(api.put("/api/v1/billing/stripe", json={"api_key": sandbox.secret_key}, headers=h))
        coupon = client.v1.coupons.create({"percent_off": 20, "duration": "once"}).id
        offers = [
            {"id": "pause_1m", "type": "pause", "duration": 1},
            {"id": "discount", "type": "discount", "coupon": coupon},
            {"id": "docs", "type": "redirect", "url": "https://example.com/help"},
        ]
        reasons = [{"id": "too_expensive", "label": "Too expensive", "comment": True}]
        flows = {
            "reasons": reasons,
            "offers": offers,
            "experiences": [
                {"id": "default", "reasons": ["too_expensive"], "offers": [o["id"] for o in offers]}
            ],
        }
        _ok(api.put("/api/v1/flows", json=flows, headers=h))
        _ok(
            api.patch("/api/v1/cancel-flow/settings", json={"allowed_origins": [ORIGIN]}, headers=h)
        )
        _ok(
            api.post(
                "/api/v1/field-mappings",
                json={
                    "field": "plan_interval",
                    "source": "subscription.plan.interval",
                    "type": "text",
                },
                headers=h,
            )
        )
        key = _ok(api.post("/api/v1/api-keys", json={"name": "spare"}, headers=h))
        price = make_price()
        json_headers = {"Accept": "application/json"}
        for outcome in OUTCOMES:
            customer = make_customer()
            sub = client.v1.subscriptions.create(
                {"customer": customer.id, "items": [{"price": price.id}]}
            )
            started = _ok(api.post("/precancel", json=precancel_body(tenant, sub.id)))
            token = started["url"].rsplit("/c/", 1)[1]
            seeded.outcomes[outcome] = started["session_id"]
            page = _ok(api.get(f"/c/{token}", headers=json_headers))
            csrf = page["csrf_token"]
            _ok(
                api.post(
                    f"/c/{token}/reason",
                    json={"reason_id": "too_expensive", "comment": "pricey", "csrf_token": csrf},
                    headers=json_headers,
                )
            )
            action = {
                "saved": ("accept", {"offer_id": "pause_1m"}),
                "redirected": ("accept", {"offer_id": "docs"}),
                "deflected": ("deflect", {}),
                "canceled": ("cancel", {}),
            }.get(outcome)
            if action:
                name, body = action
                _ok(
                    api.post(
                        f"/c/{token}/{name}",
                        json={**body, "csrf_token": csrf},
                        headers=json_headers,
                    )
                )
            if outcome == "open":
                seeded.path_values["token"] = token
        _ok(api.post("/api/v1/billing/stripe/backfill", json={}, headers=h))
    with transaction(factory) as db:
        db.execute(
            update(CancelSession)
            .where(CancelSession.session_id == seeded.outcomes["abandoned"])
            .values(abandon_at=utcnow() - timedelta(minutes=1))
        )
        assert sessions_service.mark_abandoned(db, utcnow()) == 1
    seeded.path_values.update(
        {
            "session_id": seeded.outcomes["saved"],
            "key_id": key["key_id"],
            "field": "plan_interval",
            "kind": "offers",
            "item_id": "pause_1m",
            "app_id": tenant.app_id,
        }
    )
    return seeded


@pytest.fixture
def seeded(
    server: tuple[str, Settings],
    make_tenant: Callable[[str], Tenant],
    sandbox: Sandbox,
    session_factory: sessionmaker[Session],
    make_paying_customer: Callable[..., stripe.Customer],
    make_price: Callable[..., stripe.Price],
    stripe_client: stripe.StripeClient,
) -> Seeded:
    base_url, _ = server
    tenant = make_tenant("fuzz")
    return _seed(
        base_url,
        tenant,
        sandbox,
        session_factory,
        make_paying_customer,
        make_price,
        stripe_client,
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_server_error_and_every_answer_as_documented(seeded: Seeded) -> None:
    with httpx.Client(base_url=seeded.base_url, headers=seeded.tenant.headers) as api:
        listed = _ok(api.get("/api/v1/cancel-sessions", params={"limit": 100}))
    # The data the fuzzing reaches is really there: one session in every outcome.
    by_id = {s["session_id"]: s["outcome"] for s in listed["data"]}
    for outcome, session_id in seeded.outcomes.items():
        assert by_id[session_id] == (None if outcome == "open" else outcome)

    schema = schemathesis.openapi.from_url(f"{seeded.base_url}/openapi.json")
    headers = seeded.tenant.headers
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        operations += 1
        names = {p.name for p in operation.path_parameters}
        pinned = {name: seeded.path_values[name] for name in names if name in seeded.path_values}
        strategies = [
            operation.as_strategy(generation_mode=mode)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if pinned:
            strategies.append(operation.as_strategy(path_parameters=pinned))

        @given(case=st.one_of(strategies))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
            derandomize=True,
        )
        def run(case):  # type: ignore[no-untyped-def]
            response = case.call(base_url=seeded.base_url, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report all
            failures[operation.label] = str(exc)[:3000]
    assert operations >= 40
    assert not failures, "\n\n".join(f"{label}: {why}" for label, why in failures.items())


def test_the_document_declares_the_bearer_scheme_and_our_error_shape(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert "400" in responses, (method, path)
            admin = path.startswith("/api/v1/")
            assert bool(op.get("security")) == admin, (method, path)
            if admin:
                assert "401" in responses, (method, path)
            if "requestBody" in op:
                assert "413" in responses, (method, path)
            for code, response in responses.items():
                if code.startswith("4") and "application/json" in response.get("content", {}):
                    schema = response["content"]["application/json"]["schema"]
                    # Ours, or the route's own error model (precancel's PrecancelError).
                    assert schema.get("$ref", "").endswith("Error"), (method, path, code)
