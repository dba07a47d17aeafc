"""Webhook tests: real receivers on 127.0.0.1, the real job runner, both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.repository import get_app_by_public_id
from stayflow.crypto import Encryptor
from stayflow.jobs.worker import Worker
from stayflow.settings import Settings
from stayflow.webhooks.delivery import DeliveryConfig, deliver_endpoint
from tests.conftest import TEST_SECRET_KEY, Tenant
from tests.webhooks.helpers import Clock, Receiver

ENCRYPTOR = Encryptor(TEST_SECRET_KEY)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Loopback receivers need the private-address guard off; retries come at once, and a
    # hanging receiver is given up on quickly.
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        log_json=False,
        webhooks_allow_private=True,
        webhooks_retry_schedule="0,0,0,0,0,0,0,0",
        webhooks_timeout_seconds=0.5,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


@pytest.fixture
def make_receiver() -> Iterator[Any]:
    started: list[Receiver] = []

    def make() -> Receiver:
        found = Receiver().start()
        started.append(found)
        return found

    yield make
    for found in started:
        found.stop()


class Hooks:
    """Drives the webhooks of one test: its API client, worker and clock."""

    def __init__(
        self, client: TestClient, factory: sessionmaker[Session], settings: Settings
    ) -> None:
        self.client = client
        self.factory = factory
        self.settings = settings
        self.clock = Clock()

    def app_pk(self, tenant: Tenant) -> int:
        with self.factory() as db:
            app = get_app_by_public_id(db, tenant.app_id)
            assert app is not None
            return app.id

    def create(self, tenant: Tenant, url: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/webhook-endpoints", json={"url": url, **body}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        return found

    def run_jobs(self, **services: Any) -> int:
        worker = Worker(
            self.factory,
            services={"settings": self.settings, "encryptor": ENCRYPTOR, **services},
        )
        try:
            return worker.run_until_idle(timeout=60)
        finally:
            worker.stop(timeout=1)

    def config(self, **changes: Any) -> DeliveryConfig:
        base = DeliveryConfig.from_settings(self.settings)
        return DeliveryConfig(**{**base.__dict__, **changes})

    def pump(self, endpoint_pk: int, **changes: Any) -> str:
        """Run the endpoint's delivery once, on the injected clock (no job runner)."""
        return deliver_endpoint(
            self.factory,
            endpoint_pk,
            config=self.config(**changes),
            encryptor=ENCRYPTOR,
            clock=self.clock,
        )


@pytest.fixture
def hooks(client: TestClient, session_factory: sessionmaker[Session], settings: Settings) -> Hooks:
    return Hooks(client, session_factory, settings)
