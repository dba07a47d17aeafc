"""Shared fixtures: each test run gets its own databases, built by Alembic.

The suite runs in parallel (pytest-xdist, ``-n auto`` in pyproject.toml). Everything a test
shares lives per worker process: session fixtures make one SQLite file under the worker's
own temporary directory and one PostgreSQL database named after the process id, the Stripe
sandbox, localstripe and the servers tests start listen on free ports picked at start.

Database-backed tests run twice, on SQLite and on PostgreSQL (127.0.0.1:5432,
user postgres, trust auth). Without a reachable PostgreSQL the PostgreSQL half
is skipped with one line saying so, unless STAYFLOW_REQUIRE_POSTGRES=1 (CI),
where that is an error.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from stayflow.app import create_app
from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import Base, make_engine, make_session_factory, migrate, transaction
from stayflow.settings import Settings

pytest_plugins = ["tests.stripe_fixtures"]

PG_HOST = os.environ.get("STAYFLOW_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STAYFLOW_TEST_PG_PORT", "5432"))
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
TEST_SECRET_KEY = "test-secret-key-" + "x" * 32


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError:
        return False
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:
        return False
    return True


_PG_OK: bool | None = None


def _pg_ok() -> bool:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = postgres_reachable()
    return _PG_OK


def pytest_report_header(config: pytest.Config) -> str:
    if _pg_ok():
        return f"postgresql: {PG_HOST}:{PG_PORT} reachable; database tests run on both backends"
    return (
        f"postgresql: NOT reachable at {PG_HOST}:{PG_PORT}; the PostgreSQL half of the suite is "
        "skipped (set STAYFLOW_REQUIRE_POSTGRES=1 to make that an error)"
    )


def _needs_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("database_url") == "postgres"
    return on_postgres or item.get_closest_marker("postgres") is not None


_NOT_RUN_WITHOUT_POSTGRES: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PostgreSQL, leave its half out at once and say so in one line (not per test)."""
    if _pg_ok() or os.environ.get("STAYFLOW_REQUIRE_POSTGRES") == "1":
        return
    left_out = [item for item in items if _needs_postgres(item)]
    if left_out:
        items[:] = [item for item in items if not _needs_postgres(item)]
        config.hook.pytest_deselected(items=left_out)
        _NOT_RUN_WITHOUT_POSTGRES.append(
            f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: its {len(left_out)} tests "
            "were not run (STAYFLOW_REQUIRE_POSTGRES=1 makes that an error)"
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = list(_NOT_RUN_WITHOUT_POSTGRES)
    config = terminalreporter.config
    xdist_controller = getattr(config, "workerinput", None) is None and bool(
        config.getoption("numprocesses", None)
    )
    # Under pytest-xdist the workers collect (and leave tests out); the controller reports.
    if xdist_controller and not lines and not _pg_ok():
        if os.environ.get("STAYFLOW_REQUIRE_POSTGRES") != "1":
            lines.append(
                f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: its tests were not run "
                "(STAYFLOW_REQUIRE_POSTGRES=1 makes that an error)"
            )
    for line in lines:
        terminalreporter.write_line(line, yellow=True, bold=True)


def require_postgres() -> None:
    if _pg_ok():
        return
    if os.environ.get("STAYFLOW_REQUIRE_POSTGRES") == "1":
        pytest.fail(
            f"PostgreSQL is required (STAYFLOW_REQUIRE_POSTGRES=1) "
            f"but {PG_HOST}:{PG_PORT} does not answer"
        )
    pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}")


def create_pg_database(prefix: str = "stayflow_test") -> str:
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "stayflow-test.db"
    url = f"sqlite:///{path}"
    engine = make_engine(Settings(database_url=url, secret_key=TEST_SECRET_KEY))
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def _postgres_url() -> Iterator[str]:
    require_postgres()
    url = create_pg_database()
    engine = make_engine(Settings(database_url=url, secret_key=TEST_SECRET_KEY))
    migrate(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


def _clean(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            )
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty database on each backend (tables emptied after the test)."""
    if request.param == "postgres":
        require_postgres()
        url: str = request.getfixturevalue("_postgres_url")
    else:
        url = request.getfixturevalue("_sqlite_url")
    yield url
    engine = make_engine(Settings(database_url=url, secret_key=TEST_SECRET_KEY))
    _clean(engine)
    engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET_KEY, log_json=False)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Tenant:
    app_id: str
    app_secret: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
def make_tenant(session_factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    def make(name: str = "acme") -> Tenant:
        with transaction(session_factory) as db:
            created = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), name)
            return Tenant(created.app.app_id, created.app_secret, created.api_key)

    return make


@pytest.fixture
def owner(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant("owner")


@pytest.fixture
def other(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    """A second app: it must never see the owner's rows."""
    return make_tenant("other")


STRANGER_HEADERS = {"Authorization": "Bearer sfk_not-a-real-key"}
