"""The webhook-endpoints admin API: an owner, another app and a stranger on every route."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from stayflow.webhooks.models import WebhookEndpoint
from tests.conftest import STRANGER_HEADERS

BASE = "/api/v1/webhook-endpoints"


def test_create_shows_the_secret_once_and_stores_it_encrypted(hooks, owner):
    created = hooks.create(
        owner, "https://hooks.example.com/in", description="ops", event_types=["session.saved"]
    )
    assert created["secret"].startswith("whsec_")
    assert created["id"].startswith("we_")
    assert created["event_types"] == ["session.saved"]
    assert created["enabled"] is True
    listed = hooks.client.get(BASE, headers=owner.headers).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    one = hooks.client.get(f"{BASE}/{created['id']}", headers=owner.headers).json()
    for body in (listed[0], one):
        assert "secret" not in body
        assert created["secret"] not in str(body)
    with hooks.factory() as db:
        stored = db.scalar(select(WebhookEndpoint.secret_encrypted))
    assert stored and created["secret"] not in stored


def test_update_and_delete(hooks, owner):
    created = hooks.create(owner, "https://hooks.example.com/in")
    path = f"{BASE}/{created['id']}"
    changed = hooks.client.patch(
        path,
        json={"url": "https://other.example.com/x", "enabled": False, "event_types": []},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://other.example.com/x"
    assert changed.json()["enabled"] is False
    assert hooks.client.delete(path, headers=owner.headers).status_code == 204
    assert hooks.client.get(path, headers=owner.headers).status_code == 404
    assert hooks.client.get(BASE, headers=owner.headers).json()["data"] == []


def test_rotation_answers_a_new_secret_and_keeps_the_old_one_for_the_overlap(hooks, owner):
    created = hooks.create(owner, "https://hooks.example.com/in")
    rotated = hooks.client.post(
        f"{BASE}/{created['id']}/rotate-secret",
        json={"overlap_seconds": 3600},
        headers=owner.headers,
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"url": "ftp://x.example.com/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pw@x.example.com/"}, "url"),
        ({"url": "https://x.example.com/", "event_types": ["nope.nope"]}, "event_types"),
        ({"url": "https://x.example.com/", "colour": "red"}, "colour"),
        ({"url": "https://x.example.com/" + "a" * 3000}, "url"),
    ],
)
def test_bad_input_is_a_clear_422(hooks, owner, body, where):
    response = hooks.client.post(BASE, json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert where in response.json()["error"]["message"]
    assert hooks.client.get(BASE, headers=owner.headers).json()["data"] == []


def test_resend_needs_exactly_one_selector(hooks, owner):
    created = hooks.create(owner, "https://hooks.example.com/in")
    path = f"{BASE}/{created['id']}/resend"
    assert hooks.client.post(path, json={}, headers=owner.headers).status_code == 400
    naive = hooks.client.post(
        path, json={"failed_since": "2026-01-01T00:00:00"}, headers=owner.headers
    )
    assert naive.status_code == 400
    missing = hooks.client.post(path, json={"event_id": 999999}, headers=owner.headers)
    assert missing.status_code == 404


def test_another_app_sees_and_touches_nothing(hooks, owner, other):
    created = hooks.create(owner, "https://hooks.example.com/in")
    path = f"{BASE}/{created['id']}"
    assert hooks.client.get(BASE, headers=other.headers).json()["data"] == []
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/rotate-secret", {}),
        ("POST", "/resend", {"failed_since": "2026-01-01T00:00:00Z"}),
        ("POST", "/test", None),
        ("GET", "/attempts", None),
        ("GET", "/deliveries", None),
    ]:
        response = hooks.client.request(method, path + suffix, json=body, headers=other.headers)
        assert response.status_code == 404, (method, suffix, response.text)
    one = hooks.client.get(path, headers=owner.headers).json()
    assert one["enabled"] is True


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("POST", ""),
        ("GET", "/we_x"),
        ("PATCH", "/we_x"),
        ("DELETE", "/we_x"),
        ("POST", "/we_x/rotate-secret"),
        ("POST", "/we_x/resend"),
        ("POST", "/we_x/test"),
        ("GET", "/we_x/attempts"),
        ("GET", "/we_x/deliveries"),
    ],
)
def test_a_stranger_is_refused(hooks, owner, method, suffix):
    for headers in (STRANGER_HEADERS, {}):
        response = hooks.client.request(method, BASE + suffix, json={}, headers=headers)
        assert response.status_code == 401, (method, suffix, response.text)
    assert hooks.client.get("/api/v1/events", headers=STRANGER_HEADERS).status_code == 401
