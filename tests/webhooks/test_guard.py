"""The private-address guard on outgoing webhooks (STAYFLOW_WEBHOOKS_ALLOW_PRIVATE unset)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stayflow.app import create_app
from stayflow.db import transaction, utcnow
from stayflow.events import service as events_service
from stayflow.webhooks import transport
from stayflow.webhooks.models import WebhookAttempt, WebhookEndpoint
from stayflow.webhooks.transport import Sender, address_allowed

BASE = "/api/v1/webhook-endpoints"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("93.184.215.14", True),
        ("2606:4700::6810:84e5", True),
    ],
)
def test_address_policy(address, allowed):
    assert address_allowed(address) is allowed


def _deliver_once(hooks, owner, url):
    ep = hooks.create(owner, url)
    app_pk = hooks.app_pk(owner)
    with transaction(hooks.factory) as db:
        events_service.emit_event(db, app_pk, "session.deflected", {"n": 1})
        pk = db.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.endpoint_id == ep["id"]))
    hooks.clock.now = utcnow()
    hooks.pump(pk, allow_private=False, schedule=(0,))
    with hooks.factory() as db:
        return db.scalars(select(WebhookAttempt).where(WebhookAttempt.endpoint_pk == pk)).all()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_name_or_address_that_is_loopback_is_refused_at_connect_time(
    hooks, owner, receiver, host
):
    url = receiver.url.replace("127.0.0.1", host)
    (attempt,) = _deliver_once(hooks, owner, url)
    assert attempt.status_code is None
    assert "private" in (attempt.error or "")
    assert receiver.received == []


def test_the_guarded_client_delivers_where_the_policy_allows(hooks, owner, receiver, monkeypatch):
    # The machine has no public address to send to, so this test (alone) loosens the policy
    # to let 127.0.0.1 through, to show the guarded connection itself works end to end.
    monkeypatch.setattr(transport, "address_allowed", lambda address: address == "127.0.0.1")
    sender = Sender(timeout=2, allow_private=False)
    try:
        result = sender.post(receiver.url.replace("127.0.0.1", "localhost"), b"{}", {})
    finally:
        sender.close()
    assert result.status_code == 200
    assert len(receiver.received) == 1
    assert receiver.received[0].headers["Host"].startswith("localhost:")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/in",
        "https://10.0.0.7/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/in",
        "https://[::ffff:192.168.0.1]/in",
        "http://localhost:3000/in",
        "http://api.localhost/in",
    ],
)
def test_a_private_address_is_refused_when_saved_unless_allowed(settings, owner, url):
    """Said at once, with the way to allow it, instead of as a failed delivery later."""
    strict = create_app(settings.model_copy(update={"webhooks_allow_private": False}))
    with TestClient(strict) as api:
        refused = api.post(BASE, json={"url": url}, headers=owner.headers)
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]["message"]
        assert "private" in message and "STAYFLOW_WEBHOOKS_ALLOW_PRIVATE=1" in message
        made = api.post(BASE, json={"url": "https://hooks.example.com/in"}, headers=owner.headers)
        assert made.status_code == 201, made.text
        moved = api.patch(f"{BASE}/{made.json()['id']}", json={"url": url}, headers=owner.headers)
        assert moved.status_code == 400, moved.text
        kept = api.get(f"{BASE}/{made.json()['id']}", headers=owner.headers).json()
        assert kept["url"] == "https://hooks.example.com/in"
        assert [e["url"] for e in api.get(BASE, headers=owner.headers).json()["data"]] == [
            "https://hooks.example.com/in"
        ]
    # Allowed by the operator (these tests' settings): saved as given.
    allowing = create_app(settings)
    with TestClient(allowing) as api:
        assert api.post(BASE, json={"url": url}, headers=owner.headers).status_code == 201
