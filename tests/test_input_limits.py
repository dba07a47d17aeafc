"""Bad input gets a 4xx with a message, never a 5xx, and breaks nothing stored (issue 9, §2).

Every probe here answered 500 on a running server before the edge checks in
``stayflow.ops.input_limits`` (on PostgreSQL for the NUL cases). They run on both databases.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import select

from stayflow.apps.repository import get_app_by_public_id
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction
from stayflow.mirror.models import StripeEvent
from stayflow.ops.input_limits import CLIPPED, MAX_JSON_DEPTH, check_json_text, json_too_deep
from tests.billing.helpers import count, set_webhook_secret, sign, subscription_obj
from tests.cancel_flow.helpers import configure, precancel_body
from tests.cancel_flow.helpers import sign as auth_hash

WEBHOOK_SECRET = "whsec_test_" + "e" * 24


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def assert_refused(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["message"], body
    return body


# --- JSON nesting ---------------------------------------------------------------------


def test_depth_scanner_counts_only_brackets_outside_strings():
    assert not json_too_deep(json.dumps({"s": "[" * 100}))
    assert not json_too_deep(json.dumps(nested(MAX_JSON_DEPTH - 1)))
    assert json_too_deep(json.dumps(nested(MAX_JSON_DEPTH + 1)))
    assert json_too_deep("[" * 100_000)  # not JSON at all, still no recursion
    assert check_json_text('{"a": "\\\\u0000"}') is None  # an escaped backslash, not a NUL
    assert check_json_text('{"a": "\\u0000"}') is not None
    assert check_json_text('{"a": "\\ud800"}') is not None  # unpaired surrogate
    assert check_json_text('{"a": "\\ud83d\\ude00"}') is None  # a paired one is an emoji
    assert check_json_text('{"a": NaN}') is not None
    assert check_json_text('{"a": "NaN"}') is None


def test_deeply_nested_json_gets_400_on_every_body_route(client, owner):
    configure(client, owner)
    deep = "[" * 3000 + "]" * 3000  # under the 20 KB precancel cap
    body = assert_refused(client.post("/precancel", content=deep))
    assert body["valid"] is False
    assert "nests deeper" in body["error"]["message"]
    assert body["message"] == body["error"]["message"]  # Brightback's refusal shape
    text_plain = {"Content-Type": "text/plain"}
    assert_refused(client.post("/precancel", content=deep, headers=text_plain))
    # An admin JSON body parsed by FastAPI itself, and a page action.
    admin = {**owner.headers, "Content-Type": "application/json"}
    assert_refused(client.put("/api/v1/flows", content=deep, headers=admin))
    assert_refused(client.patch("/api/v1/cancel-flow/settings", content=deep, headers=admin))
    assert_refused(
        client.post(
            "/c/sometoken/reason",
            content=json.dumps(nested(40)),
            headers={"Content-Type": "application/json"},
        )
    )


def test_custom_nested_too_deep_is_refused_and_nothing_stored(client, owner, session_factory):
    configure(client, owner)
    response = client.post("/precancel", json=precancel_body(owner, custom=nested(300)))
    assert_refused(response)
    with session_factory() as db:
        assert db.scalar(select(CancelSession.id)) is None
    ok = client.post("/precancel", json=precancel_body(owner, custom=nested(20)))
    assert ok.status_code == 200, ok.text


def test_a_stored_row_that_nests_too_deep_does_not_break_the_list(client, owner, session_factory):
    """Rows stored before the edge check existed (or by hand) must still be listed."""
    configure(client, owner)
    good = client.post("/precancel", json=precancel_body(owner, subscription_id="sub_good"))
    bad = client.post("/precancel", json=precancel_body(owner, subscription_id="sub_bad"))
    assert good.status_code == bad.status_code == 200
    bad_id = bad.json()["session_id"]
    with transaction(session_factory) as db:
        row = db.scalar(select(CancelSession).where(CancelSession.session_id == bad_id))
        assert row is not None
        # PostgreSQL's jsonb refuses NaN itself; SQLite stores it.
        sqlite = db.get_bind().dialect.name == "sqlite"
        row.request_fields = {"custom": nested(300), **({"n": float("nan")} if sqlite else {})}
        row.enriched_fields = nested(260)
    listed = client.get("/api/v1/cancel-sessions", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    assert {s["session_id"] for s in listed.json()["data"]} == {
        good.json()["session_id"],
        bad_id,
    }
    one = client.get(f"/api/v1/cancel-sessions/{bad_id}", headers=owner.headers)
    assert one.status_code == 200, one.text
    assert CLIPPED in one.text
    assert one.json()["request_fields"].get("n") is None


# --- NUL bytes ----------------------------------------------------------------------------


def test_nul_in_identifiers_and_strings_gets_400_everywhere(client, owner, session_factory):
    configure(client, owner)
    assert_refused(client.post("/precancel", json=precancel_body(owner, app_id="app_\x00x")))
    signed = precancel_body(owner, first_name="Ada\x00")
    assert signed["auth_hash"] == auth_hash(owner.app_secret, signed["subscription_id"])
    assert_refused(client.post("/precancel", json=signed))
    assert_refused(client.post("/precancel?app_id=app_%00", json=precancel_body(owner)))
    assert_refused(client.post("/stripe/webhooks/app_%00x", content=b"{}"))
    h = owner.headers
    assert_refused(client.get("/api/v1/cancel-sessions?starting_after=cs_%00", headers=h))
    assert_refused(client.get("/api/v1/cancel-sessions/cs_%00x", headers=h))
    assert_refused(client.delete("/api/v1/api-keys/key_%00x", headers=h))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_refused(client.post("/c/token/reason", content=b"reason_id=a%00b", headers=form))
    with session_factory() as db:
        assert db.scalar(select(CancelSession.id)) is None
    # The same requests without the NUL still work.
    assert client.post("/precancel", json=precancel_body(owner)).status_code == 200
    assert client.get("/api/v1/cancel-sessions?limit=1", headers=h).status_code == 200


# --- the Stripe webhook receiver ----------------------------------------------------------


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(6),
        "object": "event",
        "type": "customer.subscription.updated",
        "created": 1_767_225_600,
        "livemode": False,
        "data": {"object": subscription_obj("sub_W")},
        **fields,
    }


def _deliver(client: Any, app_id: str, payload: bytes, timestamp: int | None = None) -> Any:
    return client.post(
        f"/stripe/webhooks/{app_id}",
        content=payload,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(payload, WEBHOOK_SECRET, timestamp),
        },
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"created": "yesterday"},
        {"created": "1767225600.5"},
        {"created": "1767225600"},
        {"created": 10**30},
        {"created": True},
        {"id": "evt_\x00"},
        {"id": "e" * 101},
        {"livemode": True},
        {"account": "acct_someone_else"},
    ],
    ids=lambda f: next(iter(f)) + "=" + repr(next(iter(f.values())))[:12],
)
def test_signed_but_malformed_events_get_400_and_a_log_line(
    client, owner, session_factory, caplog, fields
):
    set_webhook_secret(session_factory, owner.app_id, WEBHOOK_SECRET)
    payload = json.dumps(_event(**fields)).encode()
    with caplog.at_level("INFO"):
        assert_refused(_deliver(client, owner.app_id, payload))
    assert any(
        r.getMessage() in ("stripe.webhook.refused", "http.refused") for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    assert count(session_factory, StripeEvent) == 0
    # The same event, well formed, is accepted.
    assert _deliver(client, owner.app_id, json.dumps(_event()).encode()).status_code == 200


def test_a_signed_body_nested_5000_deep_gets_400(client, owner, session_factory):
    set_webhook_secret(session_factory, owner.app_id, WEBHOOK_SECRET)
    payload = json.dumps(_event(data={"object": {"id": "sub_x", "deep": [0]}})).encode()
    payload = payload.replace(b"[0]", b"[" * 5000 + b"0" + b"]" * 5000)
    assert_refused(_deliver(client, owner.app_id, payload))
    assert count(session_factory, StripeEvent) == 0


def test_a_signature_dated_in_the_future_is_refused(client, owner, session_factory):
    set_webhook_secret(session_factory, owner.app_id, WEBHOOK_SECRET)
    payload = json.dumps(_event()).encode()
    response = _deliver(client, owner.app_id, payload, int(time.time()) + 3600)
    assert assert_refused(response)["error"]["type"] == "invalid_signature"
    assert count(session_factory, StripeEvent) == 0
    # Inside the tolerance (clocks differ a little): accepted.
    assert _deliver(client, owner.app_id, payload, int(time.time()) + 60).status_code == 200


def test_an_event_for_the_connected_account_and_mode_is_accepted(client, owner, session_factory):
    from stayflow.billing import repository as billing_repository

    set_webhook_secret(session_factory, owner.app_id, WEBHOOK_SECRET)
    with transaction(session_factory) as db:
        app = get_app_by_public_id(db, owner.app_id)
        assert app is not None
        conn = billing_repository.get_connection(db, app)
        assert conn is not None
        conn.account_id = "acct_mine"
        conn.livemode = True
    ok = _deliver(
        client, owner.app_id, json.dumps(_event(account="acct_mine", livemode=True)).encode()
    )
    assert ok.status_code == 200, ok.text
    test_mode = json.dumps(_event(account="acct_mine", livemode=False)).encode()
    assert_refused(_deliver(client, owner.app_id, test_mode))


# --- body caps while reading ---------------------------------------------------------------


class CountingBody:
    """An ASGI ``receive`` that hands out ``total`` bytes lazily and counts what was taken."""

    def __init__(self, total: int, chunk: int = 65_536) -> None:
        self.total, self.chunk, self.read = total, chunk, 0

    async def __call__(self) -> dict[str, Any]:
        if self.read >= self.total:
            await asyncio.Event().wait()  # like a client that stays connected
        size = min(self.chunk, self.total - self.read)
        self.read += size
        return {"type": "http.request", "body": b" " * size, "more_body": self.read < self.total}


def _call(app: Any, path: str, receive: CountingBody, headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    return int(sent[0]["status"])


FIFTY_MB = 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/precancel", 20_000), ("/stripe/webhooks/app_x", 1_000_000), ("/api/v1/flows", 2_000_000)],
)
def test_a_streamed_body_over_the_cap_is_refused_after_reading_only_the_cap(client, path, cap):
    app = client.app
    chunked = [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")]
    body = CountingBody(FIFTY_MB)
    assert _call(app, path, body, chunked) == 413
    # Read stops at the first chunk past the cap: never the 50 MB.
    assert body.read <= cap + body.chunk


def test_a_content_length_over_the_cap_is_refused_before_reading(client):
    body = CountingBody(FIFTY_MB)
    headers = [(b"content-length", str(FIFTY_MB).encode()), (b"content-type", b"text/plain")]
    assert _call(client.app, "/precancel", body, headers) == 413
    assert body.read == 0


def test_413_over_http_says_why(client, owner):
    response = client.post("/precancel", content=b"x" * 20_001)
    body = assert_refused(response, 413)
    assert body["valid"] is False
    assert body["error"]["type"] == "payload_too_large"


# --- 405 ----------------------------------------------------------------------------------


def test_405_names_every_method_the_path_serves(client, owner):
    response = client.delete("/api/v1/cancel-flow/settings", headers=owner.headers)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, PATCH"
    response = client.get("/precancel")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
