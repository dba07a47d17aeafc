"""Health, readiness, metrics, request ids and the error contract."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from stayflow.app import create_app
from stayflow.db import make_engine
from stayflow.errors import Conflict
from stayflow.settings import Settings
from tests.conftest import TEST_SECRET_KEY


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_at_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["migrations"]["current"] == body["migrations"]["head"]


def test_readyz_refuses_an_unmigrated_database(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db", secret_key=TEST_SECRET_KEY)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["migrations"]["current"] is None


def test_readyz_when_the_database_is_unreachable():
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1",
        secret_key=TEST_SECRET_KEY,
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_and_jobs(client, owner, session_factory):
    from stayflow.db import transaction
    from stayflow.jobs import service as jobs_service

    with transaction(session_factory) as db:
        for n in range(3):
            jobs_service.enqueue(db, "test.metrics", {"n": n})
    for _ in range(3):
        client.get("/api/v1/app", headers=owner.headers)
    client.get("/api/v1/app")  # no key: a 401 is counted under its own status
    samples = _samples(client.get("/metrics").text)
    route = (("method", "GET"), ("route", "/api/v1/app"))
    assert samples[("stayflow_http_requests_total", (*route, ("status", "200")))] == 3
    assert samples[("stayflow_http_requests_total", (*route, ("status", "401")))] == 1
    assert samples[("stayflow_http_request_duration_seconds_count", route)] == 4
    assert samples[("stayflow_jobs", (("status", "queued"),))] == 3
    assert samples[("stayflow_jobs", (("status", "dead"),))] == 0


def test_request_id_is_echoed_or_made(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert len(made.headers["x-request-id"]) == 32


def test_unknown_route_and_method_are_json_errors(client):
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    wrong = client.delete("/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["message"]


@pytest.fixture
def failing_client(settings):
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail sk_live_should_not_leak")

    @app.get("/conflict")
    def conflict() -> None:
        raise Conflict("already canceled")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


class _JsonLines(logging.Handler):
    """Formats each record as it is logged (the request id is read at that moment)."""

    def __init__(self) -> None:
        from stayflow.logs import JsonFormatter

        super().__init__(logging.ERROR)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_unexpected_error_is_a_json_500_without_a_traceback(failing_client, caplog):
    caplog.set_level(logging.ERROR)
    lines = _JsonLines()
    logging.getLogger("stayflow.http").addHandler(lines)
    try:
        response = failing_client.get("/boom")
    finally:
        logging.getLogger("stayflow.http").removeHandler(lines)
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["type"] == "internal"
    assert "Traceback" not in response.text and "sk_live" not in response.text
    request_id = response.headers["x-request-id"]
    # The failure is logged once, with its traceback, under the id the client was given.
    logged = [r for r in caplog.records if r.getMessage() == "http.unhandled"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError
    assert logged[0].path == "/boom"  # type: ignore[attr-defined]
    assert [line["request_id"] for line in lines.lines] == [request_id]


def test_domain_error_keeps_its_status(failing_client):
    response = failing_client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {"error": {"type": "conflict", "message": "already canceled"}}


def test_openapi_document_lists_the_admin_routes(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/app" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_json_logs_carry_the_request_id_and_redact_secrets(capsys):
    from stayflow.logs import JsonFormatter, request_id_var

    record = logging.LogRecord(
        "stayflow.test", logging.INFO, __file__, 1, "stripe.connect", None, None
    )
    record.api_key = "sk_test_123"
    record.app_id = "app_1"
    token = request_id_var.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["event"] == "stripe.connect" and line["request_id"] == "req-1"
    assert line["api_key"] == "[redacted]" and line["app_id"] == "app_1"


def test_engine_times_are_aware_utc(settings, session_factory, owner):
    from sqlalchemy import select

    from stayflow.apps.models import App

    with session_factory() as db:
        app = db.scalar(select(App).where(App.app_id == owner.app_id))
    assert app is not None and app.created_at.utcoffset() is not None
    assert app.created_at.utcoffset().total_seconds() == 0
    make_engine(settings).dispose()
