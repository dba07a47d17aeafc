"""Shared helpers for the cancel-flow tests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

ORIGIN = "https://app.example.com"
SAVE_URL = "https://app.example.com/account"
GOODBYE_URL = "https://app.example.com/goodbye"

FLOWS_YAML = """\
reasons:
  - {id: too_expensive, label: "It's too expensive", feedback: too_expensive}
  - {id: not_using, label: "I'm not using it enough", feedback: unused, comment: true}
offers:
  - id: twenty_off
    type: discount
    coupon: SAVE20
    headline: "Stay for 20% off, {{ first_name | default('friend') }}"
    button: "Take 20% off"
    reasons: [too_expensive]
  - {id: pause_2m, type: pause, duration: 2, interval: month, reasons: [not_using]}
audiences:
  - {id: annual, rule: {field: subscription.plan.interval, op: equals, value: year}}
experiences:
  - {id: annual_flow, audience: annual, reasons: [too_expensive, not_using], offers: [pause_2m]}
  - {id: default, reasons: [too_expensive, not_using], offers: [twenty_off, pause_2m]}
"""


def sign(secret: str, subscription_id: str) -> str:
    return hmac.new(secret.encode(), subscription_id.encode(), hashlib.sha256).hexdigest()


def precancel_body(
    tenant: Any, subscription_id: str = "sub_K1Vhej7WAk7k7Z", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_id": tenant.app_id,
        "subscription_id": subscription_id,
        "auth_hash": sign(tenant.app_secret, subscription_id),
        "email": "ada@example.com",
        "save_return_url": SAVE_URL,
        "cancel_confirmation_url": GOODBYE_URL,
        "account": {"internal_id": "42"},
        "custom": {"seats": 3, "last_login": "2026-11-01"},
    }
    body.update(extra)
    return body


def configure(client: Any, tenant: Any, **settings: Any) -> dict[str, Any]:
    payload = {"allowed_origins": [ORIGIN], **settings}
    response = client.patch("/api/v1/cancel-flow/settings", json=payload, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def apply_flows(client: Any, tenant: Any, text: str = FLOWS_YAML) -> dict[str, Any]:
    import yaml

    response = client.put("/api/v1/flows", json=yaml.safe_load(text), headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def start_session(client: Any, tenant: Any, **extra: Any) -> str:
    """Precancel; returns the page token."""
    response = client.post("/precancel", json=precancel_body(tenant, **extra))
    assert response.status_code == 200, response.text
    url = response.json()["url"]
    return str(url.rsplit("/c/", 1)[1])
