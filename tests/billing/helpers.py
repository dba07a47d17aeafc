"""Helpers for billing, enrichment and mirror tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.repository import get_app_by_public_id
from stayflow.billing import repository as billing_repository
from stayflow.crypto import Encryptor
from stayflow.db import transaction, utcnow
from stayflow.jobs.worker import Worker
from stayflow.settings import Settings
from tests.conftest import TEST_SECRET_KEY

ENCRYPTOR = Encryptor(TEST_SECRET_KEY)


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header as Stripe computes it (v1 = HMAC-SHA256 of "t.body")."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_id: str, type_: str, obj: dict[str, Any], created: int) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": type_,
            "created": created,
            "livemode": False,
            "data": {"object": obj},
        }
    ).encode()


def subscription_obj(sub_id: str, status: str = "active", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "customer": "cus_test1",
        "currency": "usd",
        "cancel_at_period_end": False,
        "created": 1_767_225_600,
        "start_date": 1_767_225_600,
        "metadata": {},
        "discounts": [],
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "quantity": 1,
                    "current_period_start": 1_767_225_600,
                    "current_period_end": 1_769_904_000,
                    "price": {
                        "id": "price_1",
                        "currency": "usd",
                        "unit_amount": 999,
                        "unit_amount_decimal": "999",
                        "recurring": {"interval": "month", "interval_count": 1},
                        "billing_scheme": "per_unit",
                        "product": "prod_1",
                    },
                }
            ],
        },
    }
    obj.update(extra)
    return obj


def set_webhook_secret(
    factory: sessionmaker[Session], app_id: str, secret: str, *, api_key: str = "sk_test_x"
) -> None:
    """An app connected by hand (no Stripe involved): for signature tests only."""
    with transaction(factory) as db:
        app = get_app_by_public_id(db, app_id)
        assert app is not None
        conn = billing_repository.get_or_create_connection(db, app)
        conn.api_key_encrypted = ENCRYPTOR.encrypt(api_key)
        conn.webhook_secret_encrypted = ENCRYPTOR.encrypt(secret)
        conn.webhook_configured_at = utcnow()
        conn.connected_at = utcnow()


def run_jobs(factory: sessionmaker[Session], settings: Settings) -> int:
    worker = Worker(factory, services={"settings": settings, "encryptor": ENCRYPTOR})
    try:
        return worker.run_until_idle(timeout=120)
    finally:
        worker.stop(timeout=1)


def count(factory: sessionmaker[Session], model: Any, *where: Any) -> int:
    with factory() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def connect(api: Any, tenant: Any, key: str, **extra: Any) -> dict[str, Any]:
    response = api.put(
        "/api/v1/billing/stripe", json={"api_key": key, **extra}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def app_pk(factory: sessionmaker[Session], app_id: str) -> int:
    with factory() as db:
        app = get_app_by_public_id(db, app_id)
        assert app is not None
        return app.id


def enrich(
    factory: sessionmaker[Session],
    settings: Settings,
    app_id: str,
    subscription_id: str | None,
    request_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from stayflow.enrichment import service

    pk = app_pk(factory, app_id)
    with transaction(factory) as db:
        return service.enrich(
            db, pk, subscription_id, settings, ENCRYPTOR, request_fields=request_fields
        )
