"""Every cancel-flow admin route: owner, another app (sees nothing), stranger (401)."""

from __future__ import annotations

import pytest

from tests.cancel_flow.helpers import apply_flows, configure, start_session
from tests.conftest import STRANGER_HEADERS

ROUTES = [
    ("GET", "/api/v1/flows", None),
    ("PUT", "/api/v1/flows", {"reasons": [{"id": "r", "label": "R"}]}),
    ("POST", "/api/v1/flows/resolve", {"subscription_id": "sub_1"}),
    ("GET", "/api/v1/flows/offers/twenty_off", None),
    ("PUT", "/api/v1/flows/reasons/new_reason", {"label": "New"}),
    ("DELETE", "/api/v1/flows/reasons/new_reason", None),
    ("GET", "/api/v1/cancel-flow/settings", None),
    ("PATCH", "/api/v1/cancel-flow/settings", {"reason_required": False}),
    ("GET", "/api/v1/cancel-sessions", None),
    ("GET", "/api/v1/cancel-sessions/{session_id}", None),
]


@pytest.fixture
def owner_state(client, owner):
    configure(client, owner, allowed_redirect_domains=["owner.example"])
    apply_flows(client, owner)
    start_session(client, owner)
    listed = client.get("/api/v1/cancel-sessions", headers=owner.headers).json()["data"]
    return {"session_id": listed[0]["session_id"]}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_stranger_gets_401_everywhere(client, owner_state, method, path, body):
    path = path.format(**owner_state)
    for headers in (STRANGER_HEADERS, {}, {"Authorization": "Basic abc"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["type"] == "unauthorized"


def test_another_app_sees_none_of_the_owners_rows(client, owner, other, owner_state):
    h = other.headers
    assert client.get("/api/v1/flows", headers=h).json() == {"version": 0, "flows": {}}
    assert client.get("/api/v1/flows/offers/twenty_off", headers=h).status_code == 404
    assert client.get("/api/v1/cancel-flow/settings", headers=h).json()["allowed_origins"] == []
    assert client.get("/api/v1/cancel-sessions", headers=h).json() == {
        "data": [],
        "has_more": False,
    }
    sid = owner_state["session_id"]
    assert client.get(f"/api/v1/cancel-sessions/{sid}", headers=h).status_code == 404
    assert client.get(f"/api/v1/cancel-sessions?starting_after={sid}", headers=h).status_code == 404
    # Writes by the other app leave the owner's configuration alone.
    assert client.put("/api/v1/flows", json={}, headers=h).status_code == 200
    assert client.delete("/api/v1/flows/offers/twenty_off", headers=h).status_code == 404
    assert (
        client.patch(
            "/api/v1/cancel-flow/settings", json={"reason_required": False}, headers=h
        ).status_code
        == 200
    )
    mine = client.get("/api/v1/flows", headers=owner.headers).json()
    assert mine["version"] == 1 and len(mine["flows"]["offers"]) == 2
    settings = client.get("/api/v1/cancel-flow/settings", headers=owner.headers).json()
    assert settings["reason_required"] is True
    assert settings["allowed_redirect_domains"] == ["owner.example"]
    assert client.get(f"/api/v1/cancel-sessions/{sid}", headers=owner.headers).status_code == 200


def test_settings_validation(client, owner):
    for bad in (
        {"allowed_origins": ["app.example.com"]},
        {"allowed_origins": ["https://app.example.com/path"]},
        {"allowed_origins": ["http://app.example.com"]},
        {"allowed_redirect_domains": ["exa mple.com"]},
        {"session_expiry_minutes": 1},
        {"abandon_after_minutes": "soon"},
        {"unknown": True},
    ):
        response = client.patch("/api/v1/cancel-flow/settings", json=bad, headers=owner.headers)
        assert 400 <= response.status_code < 500, (bad, response.text)
        assert "error" in response.json()
    ok = client.patch(
        "/api/v1/cancel-flow/settings",
        json={"allowed_origins": ["https://App.Example.com/", "http://localhost:3000"]},
        headers=owner.headers,
    )
    assert ok.status_code == 200
    assert ok.json()["allowed_origins"] == ["http://localhost:3000", "https://app.example.com"]
