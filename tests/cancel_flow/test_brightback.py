"""A true Brightback drop-in (issue 10, section 5), at the HTTP level.

Brightback's script posts JSON with credentials to /precancel with no ?app_id=, so the
preflight must pass and the origin is checked on the POST; its answers carry ``message``;
its fields (account.*, names, per-offer URLs, offer_eligible) mean what they mean there.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from stayflow.cancel_sessions.models import CancelSession
from tests.cancel_flow.helpers import ORIGIN, apply_flows, configure, precancel_body, sign

JSON = {"Accept": "application/json"}
BRIGHTBACK_HEADERS = {"Origin": ORIGIN, "Content-Type": "application/json"}


def _row(session_factory, session_id):
    with session_factory() as db:
        return db.scalar(select(CancelSession).where(CancelSession.session_id == session_id))


def test_preflight_without_app_id_echoes_the_origin_and_allows_credentials(client, owner):
    configure(client, owner)
    preflight = client.options(
        "/precancel",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    assert "Origin" in preflight.headers["vary"]


def test_the_origin_is_checked_on_the_post_where_app_id_is_in_the_body(client, owner):
    configure(client, owner)
    body = json.dumps(precancel_body(owner))
    ok = client.post("/precancel", content=body, headers=BRIGHTBACK_HEADERS)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert ok.headers["access-control-allow-credentials"] == "true"
    answer = ok.json()
    assert answer["valid"] is True and answer["message"] == answer["url"]
    evil = client.post(
        "/precancel", content=body, headers={**BRIGHTBACK_HEADERS, "Origin": "https://evil.test"}
    )
    assert evil.status_code == 400
    assert "access-control-allow-origin" not in evil.headers
    assert evil.json()["valid"] is False and evil.json()["error"]["type"] == "origin_not_allowed"


@pytest.mark.parametrize(
    ("mutate", "status", "kind"),
    [
        (lambda b: b.update(auth_hash="0" * 64), 400, "invalid_signature"),
        (lambda b: b.update(app_id="app_nobody"), 404, "unknown_app"),
        (lambda b: b.update(save_return_url="https://evil.test/"), 400, "redirect_not_allowed"),
        (lambda b: b.update(subscription_id=True), 400, "invalid_request"),
    ],
    ids=["signature", "unknown-app", "redirect", "bad-type"],
)
def test_refusals_carry_valid_false_and_a_message_beside_our_error(
    client, owner, mutate, status, kind
):
    configure(client, owner)
    body = precancel_body(owner)
    mutate(body)
    response = client.post("/precancel", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["valid"] is False and answer["error"]["type"] == kind
    assert answer["message"] == answer["error"]["message"] and answer["message"]


@pytest.mark.parametrize(
    "path", ["/js/current/brightback.js", "/js/current/", "/js/current/?compiled=true"]
)
def test_the_snippet_is_served_at_brightbacks_paths(client, path):
    ours = client.get("/js/stayflow.js")
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.text == ours.text
    assert "handleDataPromise" in response.text


def test_every_field_the_client_sends_is_kept(client, owner, session_factory):
    configure(client, owner)
    body = {
        "app_id": owner.app_id,
        "subscription_id": 123456789,
        "auth_hash": sign(owner.app_secret, "123456789"),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "context": {"locale": "en-US", "page": {"path": "/settings", "tags": ["a", {"b": 1}]}},
        "timestamp": 1764567890,
        "account": {
            "internal_id": 42,
            "billing_id": "cus_1",
            "plan": "Pro",
            "plan_term": "monthly",
            "value": 49.5,
            "company_name": "Acme",
            "created_at": 1700000000123,
            "unknown": {"deep": {"deeper": True}},
        },
        "custom": {"nested": {"list": [1, 2]}, "offer_eligible": True},
        "brand_new_key": [None, "x"],
    }
    response = client.post("/precancel", json=body)
    assert response.status_code == 200, response.text
    cs = _row(session_factory, response.json()["session_id"])
    assert cs.subscription_id == "123456789"
    fields = cs.request_fields
    assert fields["context"] == body["context"] and fields["timestamp"] == 1764567890
    assert fields["brand_new_key"] == [None, "x"] and fields["custom"] == body["custom"]
    assert fields["account"]["unknown"] == {"deep": {"deeper": True}}
    assert fields["account"]["created_at"] == "2023-11-14T22:13:20.123000Z"
    assert fields["last_name"] == "Lovelace"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (1700000000, "2023-11-14T22:13:20Z"),
        (1700000000123, "2023-11-14T22:13:20.123000Z"),
        ("1700000000", "2023-11-14T22:13:20Z"),
        ("2023-11-14T23:13:20+01:00", "2023-11-14T22:13:20Z"),
        ("2023-11-14", "2023-11-14T00:00:00Z"),
        ("last tuesday", "last tuesday"),
    ],
)
def test_account_created_at_in_seconds_milliseconds_or_iso(
    client, owner, session_factory, given, stored
):
    configure(client, owner)
    response = client.post("/precancel", json=precancel_body(owner, account={"created_at": given}))
    assert response.status_code == 200, response.text
    cs = _row(session_factory, response.json()["session_id"])
    assert cs.request_fields["account"]["created_at"] == stored


NAMES_FLOWS = """\
reasons: [{id: r, label: "Why?"}]
offers:
  - {id: first, type: trial_extension, days: 7}
  - {id: second, type: trial_extension, days: 14}
experiences:
  - {id: d, title: "Bye {{ full_name }}", offers: [first, second]}
"""


def _open(client, tenant, **extra):
    response = client.post("/precancel", json=precancel_body(tenant, **extra))
    assert response.status_code == 200, response.text
    token = response.json()["url"].rsplit("/c/", 1)[1]
    page = client.get(f"/c/{token}", headers=JSON).json()
    return token, page


def _accept(client, token, page, offer_id):
    client.post(
        f"/c/{token}/reason",
        json={"reason_id": "r", "csrf_token": page["csrf_token"]},
        headers=JSON,
    )
    return client.post(
        f"/c/{token}/accept",
        data={"offer_id": offer_id, "csrf_token": page["csrf_token"]},
        follow_redirects=False,
    )


def test_full_name_is_made_from_first_and_last_when_not_given(client, owner):
    configure(client, owner)
    apply_flows(client, owner, NAMES_FLOWS)
    _, page = _open(client, owner, first_name="Ada", last_name="Lovelace")
    assert page["copy"]["title"] == "Bye Ada Lovelace"
    _, page = _open(client, owner, first_name="Ada", full_name="Countess of Lovelace")
    assert page["copy"]["title"] == "Bye Countess of Lovelace"


def test_per_offer_return_urls(client, owner):
    configure(client, owner)
    apply_flows(client, owner, NAMES_FLOWS)
    second = "https://app.example.com/kept-14-days"
    token, page = _open(
        client,
        owner,
        offer_2_url=second,
        custom={"offer_accept_url": "https://app.example.com/kept"},
    )
    answer = _accept(client, token, page, "second")
    assert answer.status_code == 303 and answer.headers["location"] == second
    token, page = _open(
        client,
        owner,
        offer_2_url=second,
        custom={"offer_accept_url": "https://app.example.com/kept"},
    )
    # The page allows its forms to lead there (CSP form-action), or the browser would stop it.
    html = client.get(f"/c/{token}")
    assert "https://app.example.com" in html.headers["content-security-policy"]
    answer = _accept(client, token, page, "first")
    assert answer.headers["location"] == "https://app.example.com/kept"
    token, page = _open(client, owner, custom={"offer_1_url": "https://app.example.com/one"})
    assert (
        _accept(client, token, page, "first").headers["location"] == "https://app.example.com/one"
    )
    refused = client.post(
        "/precancel", json=precancel_body(owner, offer_1_url="https://evil.test/phish")
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "redirect_not_allowed"
    assert "offer_1_url" in refused.json()["message"]


@pytest.mark.parametrize("where", ["top", "custom"])
def test_offer_eligible_false_shows_no_offers(client, owner, where):
    configure(client, owner)
    apply_flows(client, owner, NAMES_FLOWS)
    extra = {"offer_eligible": False} if where == "top" else {"custom": {"offer_eligible": False}}
    token, page = _open(client, owner, **extra)
    step = client.post(
        f"/c/{token}/reason",
        json={"reason_id": "r", "csrf_token": page["csrf_token"]},
        headers=JSON,
    ).json()["page"]
    assert step["step"] == "confirm" and step["offers"] == []
    refused = _accept(client, token, page, "first")
    assert refused.status_code == 400  # not an offer of this session
