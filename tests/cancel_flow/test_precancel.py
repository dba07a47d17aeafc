"""POST /precancel: signature, origins, redirects, bad input; and the snippet route."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from stayflow.cancel_sessions.models import CancelSession
from stayflow.cancel_sessions.service import hash_token
from tests.cancel_flow.helpers import GOODBYE_URL, ORIGIN, SAVE_URL, configure, precancel_body, sign


def test_signed_precancel_creates_a_session(client, owner, session_factory):
    configure(client, owner)
    response = client.post("/precancel", json=precancel_body(owner), headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True
    assert body["url"].startswith("http://127.0.0.1:8000/c/")
    token = body["url"].rsplit("/c/", 1)[1]
    assert len(token) >= 22  # >= 128 bits of URL-safe base64
    assert response.headers["access-control-allow-origin"] == ORIGIN
    with session_factory() as db:
        cs = db.scalar(select(CancelSession).where(CancelSession.session_id == body["session_id"]))
        assert cs is not None
        assert cs.token_hash == hash_token(token)
        assert token not in json.dumps(cs.request_fields)
        assert cs.subscription_id == "sub_K1Vhej7WAk7k7Z"
        assert cs.signed is True
        assert "auth_hash" not in cs.request_fields
        assert cs.request_fields["custom"] == {"seats": 3, "last_login": "2026-11-01"}
        assert cs.save_return_url == SAVE_URL and cs.cancel_confirmation_url == GOODBYE_URL
        assert cs.outcome is None and cs.expires_at > cs.created_at


def test_tokens_are_unique(client, owner):
    configure(client, owner)
    urls = {client.post("/precancel", json=precancel_body(owner)).json()["url"] for _ in range(5)}
    assert len(urls) == 5


def test_snippet_style_text_plain_body_is_accepted(client, owner):
    configure(client, owner)
    response = client.post(
        f"/precancel?app_id={owner.app_id}",
        content=json.dumps(precancel_body(owner)),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN},
    )
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is True


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(auth_hash="0" * 64),
        lambda b: b.update(auth_hash=sign("sfs_wrong-secret", b["subscription_id"])),
        lambda b: b.update(subscription_id="sub_someone_else"),
        lambda b: b.pop("auth_hash"),
    ],
    ids=["zeros", "other-secret", "other-subscription", "missing"],
)
def test_bad_or_missing_signature_is_refused(client, owner, mutate):
    configure(client, owner)
    body = precancel_body(owner)
    mutate(body)
    response = client.post("/precancel", json=body)
    assert response.status_code == 401, response.text
    assert response.json()["valid"] is False
    assert response.json()["error"]["type"] == "invalid_signature"


def test_another_apps_secret_does_not_sign_for_this_app(client, owner, other):
    configure(client, owner)
    body = precancel_body(owner, auth_hash=sign(other.app_secret, "sub_K1Vhej7WAk7k7Z"))
    assert client.post("/precancel", json=body).status_code == 401


def test_unsigned_allowed_only_when_the_app_says_so(client, owner, session_factory):
    configure(client, owner)
    body = precancel_body(owner)
    body.pop("auth_hash")
    assert client.post("/precancel", json=body).status_code == 401
    configure(client, owner, allow_unsigned_precancel=True)
    response = client.post("/precancel", json=body)
    assert response.status_code == 200
    with session_factory() as db:
        cs = db.scalar(
            select(CancelSession).where(CancelSession.session_id == response.json()["session_id"])
        )
        assert cs.signed is False
    # A wrong hash is still refused in unsigned mode: a given signature must be right.
    assert client.post("/precancel", json={**body, "auth_hash": "ab" * 32}).status_code == 401


def test_origin_outside_the_allowed_list_is_refused(client, owner):
    configure(client, owner)
    response = client.post(
        "/precancel", json=precancel_body(owner), headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert response.json() == {
        "valid": False,
        "error": {
            "type": "origin_not_allowed",
            "message": "this origin is not in the app's allowed origins",
        },
    }
    assert "access-control-allow-origin" not in response.headers


def test_preflight_allows_only_the_apps_origins(client, owner, other):
    configure(client, owner)
    ok = client.options(
        f"/precancel?app_id={owner.app_id}",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in ok.headers["access-control-allow-methods"]
    for app_id, origin in [
        (owner.app_id, "https://evil.example"),
        (other.app_id, ORIGIN),
        ("app_nope", ORIGIN),
    ]:
        refused = client.options(
            f"/precancel?app_id={app_id}",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/account",
        "https://app.example.com.evil.example/x",
        "http://app.example.com/account",  # plain http outside localhost
        "javascript:alert(1)",
        "//evil.example/x",
        "/relative",
        "https://user@app.example.com/x",
    ],
)
def test_redirects_must_stay_on_allowed_domains(client, owner, url):
    configure(client, owner)
    for field in ("save_return_url", "cancel_confirmation_url"):
        response = client.post("/precancel", json=precancel_body(owner, **{field: url}))
        assert response.status_code == 400, (field, url, response.text)
        assert response.json()["error"]["type"] == "redirect_not_allowed"


def test_wildcard_redirect_domains(client, owner):
    configure(client, owner, allowed_redirect_domains=["*.example.org"])
    ok = client.post(
        "/precancel", json=precancel_body(owner, save_return_url="https://billing.example.org/x")
    )
    assert ok.status_code == 200
    bare = client.post(
        "/precancel", json=precancel_body(owner, save_return_url="https://badexample.org/x")
    )
    assert bare.status_code == 400


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b"{}", 400),
        (
            b'{"app_id": "app_nope", "subscription_id": "s", '
            b'"save_return_url": "x", "cancel_confirmation_url": "y"}',
            404,
        ),
        (b'{"app_id": 5}', 400),
        (b"\xff\xfe", 400),
        (b"{" + b'"a":"' + b"x" * 70_000 + b'"}', 413),  # over the cap, refused while read
    ],
)
def test_bad_input_is_a_4xx_with_valid_false(client, owner, content, expected):
    configure(client, owner)
    response = client.post(
        "/precancel", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == expected, response.text
    body = response.json()
    assert body["valid"] is False
    assert set(body["error"]) >= {"type", "message"}


def test_bad_field_types_are_refused(client, owner):
    configure(client, owner)
    for extra in (
        {"custom": "nope"},
        {"subscription_id": ""},
        {"subscription_id": " sub_1"},
        {"email": 5},
    ):
        response = client.post("/precancel", json=precancel_body(owner, **extra))
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["valid"] is False


def test_app_id_in_query_must_match_body(client, owner, other):
    configure(client, owner)
    response = client.post(f"/precancel?app_id={other.app_id}", json=precancel_body(owner))
    assert response.status_code == 400


def test_snippet_is_served_without_dependencies(client):
    response = client.get("/js/stayflow.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    text = response.text
    assert "window.Stayflow = api" in text and "window.Brightback = api" in text
    assert "#bb-cancel, [data-stayflow-cancel]" in text
    assert "3000" in text
    assert '"http://127.0.0.1:8000"' in text and "__STAYFLOW_BASE_URL__" not in text
    # Only our own origin is ever contacted: no other absolute URL in the code.
    import re

    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    assert re.findall(r"https?://[^\s\"']+", code) == ["http://127.0.0.1:8000"]
