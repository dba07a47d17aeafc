"""Schemathesis over the app's own OpenAPI document: no input may produce a 5xx.

Every operation gets generated inputs (valid and not) with a real admin key, on SQLite,
with data created first so that paths and bodies can hit real rows. A 500 is the only
failure this looks for; the hand-written tests pin down each route's exact answers.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from stayflow.app import create_app
from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.settings import Settings
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/fuzz.db"
    config = Settings(database_url=url, secret_key=TEST_SECRET_KEY, log_json=False)
    engine = make_engine(config)
    migrate(engine)
    with transaction(make_session_factory(engine)) as db:
        created = apps_service.create_app(db, Encryptor(TEST_SECRET_KEY), "fuzz")
    engine.dispose()
    app = create_app(config)
    app.state.fuzz_api_key = created.api_key
    return app


def test_no_input_makes_a_server_error(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    headers = {"Authorization": f"Bearer {fuzz_app.state.fuzz_api_key}"}
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case):  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:
            failures[operation.label] = str(exc)[:2000]
    assert operations >= 5
    assert not failures, "\n\n".join(f"{label}: {why}" for label, why in failures.items())
