"""Fixtures for billing, enrichment and mirror tests: stayflow pointed at the Stripe sandbox."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from stayflow.app import create_app
from stayflow.sandbox import Sandbox
from stayflow.settings import Settings


@pytest.fixture
def sandbox(stripe_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox, reset, and with its settings back to defaults afterwards
    (``reset()`` keeps ``configure()``d settings such as the accepted secret keys)."""
    stripe_sandbox.reset()
    yield stripe_sandbox
    stripe_sandbox.configure(secret_keys=None)
    stripe_sandbox.clear_faults()


@pytest.fixture
def stripe_settings(settings: Settings, sandbox: Sandbox) -> Settings:
    """Settings whose every StripeClient talks to the (reset) sandbox."""
    return settings.model_copy(update={"stripe_api_base": sandbox.url})


@pytest.fixture
def stripe_api(stripe_settings: Settings) -> Iterator[TestClient]:
    """The stayflow app, in process, talking to the sandbox."""
    with TestClient(create_app(stripe_settings)) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(stripe_settings: Settings) -> Iterator[tuple[str, Settings]]:
    """stayflow served over HTTP on 127.0.0.1 so the sandbox can deliver webhooks to it."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = stripe_settings.model_copy(update={"base_url": base_url})
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code < 500:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("stayflow did not start")
    try:
        yield base_url, settings
    finally:
        server.should_exit = True
        thread.join(10)
