"""The private-address guard on outgoing webhooks (STAYFLOW_WEBHOOKS_ALLOW_PRIVATE unset)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from stayflow.db import transaction, utcnow
from stayflow.events import service as events_service
from stayflow.webhooks import transport
from stayflow.webhooks.models import WebhookAttempt, WebhookEndpoint
from stayflow.webhooks.transport import Sender, address_allowed


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
