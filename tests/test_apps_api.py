"""Admin API authentication and tenancy: an owner, a second app and a stranger on every route."""

from __future__ import annotations

import pytest

from tests.conftest import STRANGER_HEADERS

ROUTES = [
    ("GET", "/api/v1/app", None),
    ("PATCH", "/api/v1/app", {"name": "renamed"}),
    ("GET", "/api/v1/api-keys", None),
    ("POST", "/api/v1/api-keys", {"name": "ci"}),
]


def test_get_app_with_key(client, owner):
    response = client.get("/api/v1/app", headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["app_id"] == owner.app_id
    assert body["name"] == "owner"
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]
    assert "secret" not in str(body).lower()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_admin_route_refuses_a_stranger(client, owner, method, path, body):
    for headers in (
        STRANGER_HEADERS,
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["type"] == "unauthorized"


def test_each_app_sees_only_itself(client, owner, other):
    mine = client.get("/api/v1/app", headers=owner.headers).json()
    theirs = client.get("/api/v1/app", headers=other.headers).json()
    assert mine["app_id"] == owner.app_id
    assert theirs["app_id"] == other.app_id
    client.patch("/api/v1/app", json={"name": "renamed"}, headers=other.headers)
    assert client.get("/api/v1/app", headers=owner.headers).json()["name"] == "owner"
    owner_keys = client.get("/api/v1/api-keys", headers=owner.headers).json()
    other_keys = client.get("/api/v1/api-keys", headers=other.headers).json()
    assert {k["key_id"] for k in owner_keys}.isdisjoint({k["key_id"] for k in other_keys})


def test_an_app_cannot_revoke_another_apps_key(client, owner, other):
    owner_key = client.get("/api/v1/api-keys", headers=owner.headers).json()[0]["key_id"]
    response = client.delete(f"/api/v1/api-keys/{owner_key}", headers=other.headers)
    assert response.status_code == 404
    assert client.get("/api/v1/app", headers=owner.headers).status_code == 200
    assert (
        client.delete(f"/api/v1/api-keys/{owner_key}", headers=STRANGER_HEADERS).status_code == 401
    )


def test_key_create_shows_once_and_revoke_works(client, owner):
    created = client.post("/api/v1/api-keys", json={"name": "deploy"}, headers=owner.headers)
    assert created.status_code == 201
    new_key = created.json()["api_key"]
    assert new_key.startswith("sfk_")
    listed = client.get("/api/v1/api-keys", headers=owner.headers).json()
    assert all("api_key" not in k for k in listed)
    new_headers = {"Authorization": f"Bearer {new_key}"}
    assert client.get("/api/v1/app", headers=new_headers).status_code == 200
    revoked = client.delete(f"/api/v1/api-keys/{created.json()['key_id']}", headers=owner.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/api/v1/app", headers=new_headers).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 201}, {"nam": "typo"}, {"name": 3}, None],
)
def test_bad_input_is_a_4xx_with_a_message(client, owner, body):
    response = client.patch("/api/v1/app", json=body, headers=owner.headers)
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["message"]
    assert client.get("/api/v1/app", headers=owner.headers).json()["name"] == "owner"


def test_malformed_json_is_a_4xx(client, owner):
    response = client.patch(
        "/api/v1/app",
        content=b"{not json",
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "the request body is not valid JSON (at character 1)"
    )


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"", "application/json", "the request body is missing: send a JSON object"),
        (b"[1]", "application/json", "the request body must be a JSON object"),
        (b"name=x", "application/x-www-form-urlencoded", "the request body must be a JSON"),
    ],
)
def test_a_body_that_is_not_an_object_is_said_in_words(
    client, owner, content, content_type, message
):
    response = client.post(
        "/api/v1/api-keys", content=content, headers={**owner.headers, "Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(message)
