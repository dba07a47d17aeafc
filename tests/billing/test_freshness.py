"""When a mirror row may be trusted without asking Stripe."""

from __future__ import annotations

from datetime import timedelta

from stayflow.billing.models import BillingConnection
from stayflow.db import utcnow
from stayflow.mirror.models import MirrorSubscription
from stayflow.mirror.service import is_fresh

NOW = utcnow()


def _conn(configured_ago: float | None, last_event_ago: float | None) -> BillingConnection:
    conn = BillingConnection(app_pk=1, permissions={}, setup={})
    if configured_ago is not None:
        conn.webhook_secret_encrypted = "token"
        conn.webhook_configured_at = NOW - timedelta(hours=configured_ago)
    if last_event_ago is not None:
        conn.last_event_at = NOW - timedelta(hours=last_event_ago)
    return conn


def _row(synced_ago: float) -> MirrorSubscription:
    return MirrorSubscription(synced_at=NOW - timedelta(hours=synced_ago), raw={}, version=1)


def test_freshness_rules():
    # Webhooks set up, row stored after that, recently: trusted.
    assert is_fresh(_row(1), _conn(48, None), now=NOW)
    # An old row is still trusted while events keep arriving (the stream is alive).
    assert is_fresh(_row(72), _conn(96, 0.1), now=NOW)
    # Old row, silent stream: ask Stripe.
    assert not is_fresh(_row(72), _conn(96, 30), now=NOW)
    # Stored before the webhook endpoint existed: a change may have slipped by unannounced.
    assert not is_fresh(_row(2), _conn(1, 0.1), now=NOW)
    # No webhook secret at all (not connected, or no endpoint): never trusted.
    assert not is_fresh(_row(0), _conn(None, None), now=NOW)
    assert not is_fresh(_row(0), None, now=NOW)
