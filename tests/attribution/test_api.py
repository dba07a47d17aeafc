"""The attribution admin API (owner, another app, stranger), its filters and bad input, and
``stayflow attribution sync`` -- against the sandbox, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stayflow.cli.main import main
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings
from tests.attribution.helpers import Attribution
from tests.billing_actions.helpers import make_env
from tests.conftest import STRANGER_HEADERS, TEST_SECRET_KEY, Tenant

ROUTES = [
    ("GET", "/api/v1/attribution", None),
    ("GET", "/api/v1/attribution/sessions", None),
    ("GET", "/api/v1/attribution/settings", None),
    ("PUT", "/api/v1/attribution/settings", {"window_days": 10}),
    ("PUT", "/api/v1/attribution/rates", {"rates": []}),
    ("POST", "/api/v1/attribution/sync", None),
]


@pytest.fixture
def att(
    session_factory: sessionmaker[Session],
    stripe_settings: Settings,
    owner: Tenant,
    sandbox: Sandbox,
) -> Attribution:
    env = make_env(session_factory, stripe_settings, owner.app_id)
    env.connect(sandbox.secret_key)
    return Attribution(env, sandbox)


def _subscription(
    sandbox: Sandbox, amount: int, currency: str = "usd", interval: str = "month"
) -> str:
    client = sandbox.client()
    customer = client.v1.customers.create({"payment_method": "pm_card_visa"})
    pm = client.v1.payment_methods.list({"customer": customer.id}).data[0]
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    price = client.v1.prices.create(
        {
            "currency": currency,
            "unit_amount": amount,
            "recurring": {"interval": interval},
            "product_data": {"name": "P"},
        }
    )
    return client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    ).id


@pytest.fixture
def synced(att: Attribution) -> dict[str, str]:
    usd = _subscription(att.sandbox, 2000)
    jpy = _subscription(att.sandbox, 980, "jpy")
    ids = {
        "saved": att.session(usd, "saved"),
        "canceled": att.session(jpy, "canceled"),
        "unmatched": att.session("sub_nope", "deflected"),
    }
    att.sandbox.client().v1.subscriptions.cancel(jpy)
    att.sync(days=1)
    return ids


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_stranger_gets_401(stripe_api: TestClient, method: str, path: str, body: Any) -> None:
    for headers in (STRANGER_HEADERS, {}):
        response = stripe_api.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, response.text)


def test_owner_sees_its_sessions_and_another_app_sees_none(
    stripe_api: TestClient, owner: Tenant, other: Tenant, synced: dict[str, str]
) -> None:
    listed = stripe_api.get("/api/v1/attribution/sessions", headers=owner.headers).json()
    assert {w["session_id"] for w in listed["data"]} == set(synced.values())
    card = stripe_api.get("/api/v1/attribution", headers=owner.headers).json()
    assert (card["sessions_matched"], card["sessions_unmatched"]) == (2, 1)
    assert (card["saves_pending"], card["cancels_confirmed"]) == (1, 1)
    assert card["last_sync"]["outcome"] == "ok" and card["last_sync"]["stripe_requests"] >= 1
    per = {t["currency"]: t for t in card["per_currency"]}
    assert per["usd"]["mrr_kept"] == 2000 and per["jpy"]["mrr_lost"] == 980
    assert card["converted"] is None  # no rates: never a silent conversion

    theirs = stripe_api.get("/api/v1/attribution/sessions", headers=other.headers).json()
    assert theirs == {"data": [], "has_more": False}
    card = stripe_api.get("/api/v1/attribution", headers=other.headers).json()
    assert card["sessions_matched"] == 0 and card["per_currency"] == []


def test_filters(stripe_api: TestClient, owner: Tenant, synced: dict[str, str]) -> None:
    def ids(**params: str) -> set[str]:
        got = stripe_api.get("/api/v1/attribution/sessions", params=params, headers=owner.headers)
        assert got.status_code == 200, got.text
        return {w["session_id"] for w in got.json()["data"]}

    assert ids(status="unmatched") == {synced["unmatched"]}
    assert ids(outcome="canceled") == {synced["canceled"]}
    assert ids(currency="JPY") == {synced["canceled"]}
    assert ids(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == set()
    watch = stripe_api.get(
        "/api/v1/attribution/sessions", params={"status": "unmatched"}, headers=owner.headers
    ).json()["data"][0]
    assert "sub_nope" in watch["cause"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/attribution/sessions", {"status": "bogus"}, 422),
        ("/api/v1/attribution/sessions", {"currency": "dollars"}, 422),
        ("/api/v1/attribution/sessions", {"since": "yesterday"}, 422),
        (
            "/api/v1/attribution",
            {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            400,
        ),
    ],
)
def test_bad_queries_are_4xx(
    stripe_api: TestClient, owner: Tenant, path: str, params: dict[str, str], status: int
) -> None:
    response = stripe_api.get(path, params=params, headers=owner.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_window_and_rates(stripe_api: TestClient, owner: Tenant, att: Attribution) -> None:
    h = owner.headers
    assert (
        stripe_api.put(
            "/api/v1/attribution/settings", json={"window_days": 0}, headers=h
        ).status_code
        == 422
    )
    assert (
        stripe_api.put(
            "/api/v1/attribution/settings", json={"window_days": 366}, headers=h
        ).status_code
        == 422
    )
    assert (
        stripe_api.put("/api/v1/attribution/settings", json={"window_days": 7}, headers=h).json()[
            "window_days"
        ]
        == 7
    )
    sub = _subscription(att.sandbox, 2000)
    session = att.session(sub, "deflected")
    att.sync(days=7)
    watch = att.watch(session)
    assert (watch.window_days, watch.status) == (7, "validated")

    bad = stripe_api.put(
        "/api/v1/attribution/rates",
        json={
            "rates": [
                {"currency": "jpy", "base_currency": "usd", "rate": "0", "valid_from": "2026-01-01"}
            ]
        },
        headers=h,
    )
    assert bad.status_code == 400 and "positive" in bad.json()["error"]["message"]
    mixed = stripe_api.put(
        "/api/v1/attribution/rates",
        json={
            "rates": [
                {
                    "currency": "jpy",
                    "base_currency": "usd",
                    "rate": "0.0067",
                    "valid_from": "2026-01-01",
                },
                {
                    "currency": "gbp",
                    "base_currency": "eur",
                    "rate": "1.2",
                    "valid_from": "2026-01-01",
                },
            ]
        },
        headers=h,
    )
    assert mixed.status_code == 400
    jpy = _subscription(att.sandbox, 100_000, "jpy")
    att.session(jpy, "deflected")
    att.sync()
    ok = stripe_api.put(
        "/api/v1/attribution/rates",
        json={
            "rates": [
                {
                    "currency": "jpy",
                    "base_currency": "usd",
                    "rate": "0.0067",
                    "valid_from": "2020-01-01",
                }
            ]
        },
        headers=h,
    )
    assert ok.status_code == 200, ok.text
    card = stripe_api.get("/api/v1/attribution", headers=h).json()
    converted = card["converted"]
    assert converted["converted"] is True and converted["currency"] == "usd"
    # 2000 USD cents + 100,000 JPY x 0.0067 = 670 USD = 67,000 cents
    assert converted["mrr_kept"] == 2000 + 67_000
    assert converted["missing_rates"] == []


def test_cli_sync(
    att: Attribution, owner: Tenant, stripe_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = _subscription(att.sandbox, 2000)
    att.session(sub, "saved")
    monkeypatch.setenv("STAYFLOW_DATABASE_URL", stripe_settings.database_url)
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("STAYFLOW_STRIPE_API_BASE", att.sandbox.url)
    result = CliRunner().invoke(main, ["attribution", "sync", "--app", owner.app_id])
    assert result.exit_code == 0, result.output
    assert "attribution sync (events): 1 Stripe requests" in result.output
    assert "1 sessions enrolled" in result.output
    missing = CliRunner().invoke(main, ["attribution", "sync", "--app", "app_nope"])
    assert missing.exit_code == 1 and "no app 'app_nope'" in missing.output
    assert "Traceback" not in missing.output
