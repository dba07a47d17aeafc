"""The modal's server side and the JSON API's CORS, on both databases (issue 16).

Precancel with mode "modal" from an allowed origin records that origin: the page may then
be framed by it (and only it, and only while it stays allowed), and the answer carries the
nonce of the frame's messages. The JSON API answers CORS (with its preflight) for the app's
allowed origins, so a headless client can run the flow from the business's page.
"""

from __future__ import annotations

import pytest

from stayflow.cancel_sessions.models import CancelSession
from tests.cancel_flow.helpers import ORIGIN, apply_flows, configure, precancel_body

JSON = {"Accept": "application/json"}
FOREIGN = "https://evil.example.net"


@pytest.fixture
def flow(client, owner):
    configure(client, owner)
    apply_flows(client, owner)
    return owner


def precancel(client, tenant, origin=ORIGIN, **extra):
    response = client.post(
        "/precancel", json=precancel_body(tenant, **extra), headers={"Origin": origin}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body, body["url"].rsplit("/c/", 1)[1]


def test_modal_precancel_records_the_origin_and_answers_a_nonce(client, flow, session_factory):
    body, token = precancel(client, flow, mode="modal")
    assert len(body["embed_nonce"]) == 32
    with session_factory() as db:
        cs = db.query(CancelSession).filter_by(session_id=body["session_id"]).one()
        assert cs.embed_origin == ORIGIN
        # mode is how the page is shown, not a field of the subscriber's.
        assert "mode" not in cs.request_fields
    page = client.get(f"/c/{token}")
    csp = page.headers["content-security-policy"]
    assert f"frame-ancestors {ORIGIN}" in csp
    assert "x-frame-options" not in page.headers
    # The frame's one script, by nonce, and its settings.
    assert "script-src 'nonce-" in csp
    assert '<script type="application/json" id="stayflow-embed">' in page.text
    assert body["embed_nonce"] in page.text
    assert client.get("/js/stayflow-frame.js").status_code == 200


def test_redirect_mode_is_never_framed(client, flow, session_factory):
    body, token = precancel(client, flow)
    assert "embed_nonce" not in body
    page = client.get(f"/c/{token}")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "script" not in page.headers["content-security-policy"]
    assert "stayflow-embed" not in page.text


def test_modal_without_an_origin_is_a_redirect_session(client, flow):
    # A server-side precancel (no Origin) has no page to be framed by.
    response = client.post("/precancel", json=precancel_body(flow, mode="modal"))
    assert response.status_code == 200
    assert "embed_nonce" not in response.json()
    token = response.json()["url"].rsplit("/c/", 1)[1]
    assert "frame-ancestors 'none'" in client.get(f"/c/{token}").headers["content-security-policy"]


def test_an_origin_taken_off_the_list_may_no_longer_frame(client, flow):
    _, token = precancel(client, flow, mode="modal")
    configure(client, flow, allowed_origins=["https://other.example.com"])
    page = client.get(f"/c/{token}")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "stayflow-embed" not in page.text


def test_bad_mode_is_a_400(client, flow):
    response = client.post(
        "/precancel", json=precancel_body(flow, mode="popup"), headers={"Origin": ORIGIN}
    )
    assert response.status_code == 400
    assert response.json()["valid"] is False
    assert "mode" in response.json()["message"]


def test_in_a_modal_the_last_step_stays_in_the_frame_and_says_the_outcome(client, flow):
    _, token = precancel(client, flow, mode="modal")
    page = client.get(f"/c/{token}", headers=JSON).json()
    form = {"csrf_token": page["csrf_token"], "reason_id": "too_expensive"}
    done = client.post(f"/c/{token}/cancel", data=form, follow_redirects=False)
    # Not the business's URL (that would load it in the frame): stayflow's result page.
    assert done.status_code == 303
    assert done.headers["location"] == f"/c/{token}"
    result = client.get(f"/c/{token}")
    assert result.status_code == 200
    assert '"outcome": "canceled"' in result.text
    assert '"next_url": "https://app.example.com/goodbye"' in result.text
    assert '"navigate": false' in result.text
    assert f"frame-ancestors {ORIGIN}" in result.headers["content-security-policy"]


def test_redirect_mode_still_goes_to_the_business(client, flow):
    _, token = precancel(client, flow)
    page = client.get(f"/c/{token}", headers=JSON).json()
    form = {"csrf_token": page["csrf_token"], "reason_id": "too_expensive"}
    done = client.post(f"/c/{token}/cancel", data=form, follow_redirects=False)
    assert done.headers["location"] == "https://app.example.com/goodbye"


def test_json_api_answers_cors_for_allowed_origins_only(client, flow):
    _, token = precancel(client, flow)
    allowed = client.get(f"/c/{token}", headers={**JSON, "Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in allowed.headers["vary"]
    refused = client.get(f"/c/{token}", headers={**JSON, "Origin": FOREIGN})
    assert refused.status_code == 200  # the browser, not the server, withholds it
    assert "access-control-allow-origin" not in refused.headers
    # An action, and an action's error, carry it too (so the client can read the error).
    csrf = allowed.json()["csrf_token"]
    error = client.post(
        f"/c/{token}/accept",
        json={"csrf_token": csrf, "offer_id": "nope"},
        headers={**JSON, "Origin": ORIGIN},
    )
    assert error.status_code == 400
    assert error.json()["error"]["type"] == "invalid_request"
    assert error.headers["access-control-allow-origin"] == ORIGIN
    bad_csrf = client.post(
        f"/c/{token}/reason", json={"csrf_token": "x"}, headers={**JSON, "Origin": ORIGIN}
    )
    assert bad_csrf.status_code == 403
    assert bad_csrf.headers["access-control-allow-origin"] == ORIGIN
    ok = client.post(
        f"/c/{token}/reason",
        json={"csrf_token": csrf, "reason_id": "too_expensive"},
        headers={**JSON, "Origin": ORIGIN},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN


def test_preflight(client, flow):
    _, token = precancel(client, flow)
    asks = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = client.options(f"/c/{token}/accept", headers=asks)
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "Content-Type" in ok.headers["access-control-allow-headers"]
    page = client.options(f"/c/{token}", headers={**asks, "Access-Control-Request-Method": "GET"})
    assert page.headers["access-control-allow-origin"] == ORIGIN
    assert page.headers["access-control-allow-methods"] == "GET"
    for origin, path in ((FOREIGN, f"/c/{token}/accept"), (ORIGIN, "/c/nosuchtoken/accept")):
        refused = client.options(path, headers={**asks, "Origin": origin})
        assert refused.status_code == 204
        assert "access-control-allow-origin" not in refused.headers
