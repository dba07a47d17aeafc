"""Fixtures for the admin web app: an injectable clock, users in apps, a signed-in client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stayflow.admin import service
from stayflow.admin.web import admin_now
from stayflow.app import create_app
from stayflow.db import transaction
from stayflow.settings import Settings

PASSWORD = "correct-horse-battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def web_app(settings: Settings, clock: Clock) -> Any:
    app = create_app(settings)
    app.dependency_overrides[admin_now] = lambda: clock.now
    return app


@pytest.fixture
def browser_client(web_app: Any) -> Callable[[], TestClient]:
    """Makes independent browsers (each its own cookie jar) on one app."""
    made: list[TestClient] = []

    def make() -> TestClient:
        client = TestClient(web_app, follow_redirects=False)
        client.__enter__()
        made.append(client)
        return client

    yield make  # type: ignore[misc]
    for client in made:
        client.__exit__(None, None, None)


@pytest.fixture
def add_user(session_factory: Any, clock: Clock) -> Callable[..., str]:
    def add(email: str, app_id: str, role: str = "owner") -> str:
        with transaction(session_factory) as db:
            service.create_user(db, email, PASSWORD, app_id=app_id, role=role, now=clock.now)
        return email

    return add


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    form = client.get("/admin/login")
    assert form.status_code == 200
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), **extra},
    )


@dataclass
class SignedIn:
    client: TestClient
    email: str

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        return csrf_of(page.text)


@pytest.fixture
def signed_in(browser_client: Callable[[], TestClient]) -> Callable[[str], SignedIn]:
    def make(email: str) -> SignedIn:
        client = browser_client()
        response = sign_in(client, email)
        assert response.status_code == 303, response.text
        return SignedIn(client, email)

    return make


__all__ = ["PASSWORD", "Clock", "Iterator", "SignedIn", "csrf_of", "sign_in"]
