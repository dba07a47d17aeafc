"""Settings, secrets and the CLI as a user meets them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stayflow.cli.main import main
from stayflow.settings import ConfigError, Settings
from tests.conftest import create_pg_database, drop_pg_database, require_postgres


def test_secret_key_is_generated_once_beside_the_sqlite_database(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data/stayflow.db")
    first = settings.ensure_secret_key()
    second = settings.ensure_secret_key()
    key_file = tmp_path / "data" / "stayflow.secret"
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 48
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("secret", ["", "change-me"])
def test_production_refuses_a_missing_or_default_secret(secret):
    settings = Settings(env="production", secret_key=secret)
    with pytest.raises(ConfigError, match="STAYFLOW_SECRET_KEY"):
        settings.ensure_secret_key()


def test_settings_read_secrets_from_files(tmp_path, monkeypatch):
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file-" + "y" * 40 + "\n")
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("STAYFLOW_SECRET_KEY_FILE", str(secret_file))
    assert Settings().secret_key == "from-a-file-" + "y" * 40


def test_unreadable_secret_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STAYFLOW_SECRET_KEY_FILE", str(tmp_path / "missing"))
    runner = CliRunner()
    result = runner.invoke(main, ["migrate"])
    assert result.exit_code != 0
    assert "STAYFLOW_SECRET_KEY_FILE" in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_production_without_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("STAYFLOW_ENV", "production")
    monkeypatch.setenv("STAYFLOW_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    monkeypatch.delenv("STAYFLOW_SECRET_KEY", raising=False)
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "STAYFLOW_SECRET_KEY is missing" in result.output


def test_apps_create_json_then_list(tmp_path, monkeypatch):
    monkeypatch.setenv("STAYFLOW_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    runner = CliRunner()
    result = runner.invoke(main, ["apps", "create", "demo", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"app_id", "app_secret", "api_key"}
    listed = runner.invoke(main, ["apps", "list"])
    assert created["app_id"] in listed.output and "demo" in listed.output
    assert created["app_secret"] not in listed.output
    bad = runner.invoke(main, ["apps", "create", "   "])
    assert bad.exit_code == 1 and "name must be" in bad.output


def test_unreachable_database_is_a_message_not_a_traceback(monkeypatch):
    monkeypatch.setenv(
        "STAYFLOW_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=1"
    )
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", "k" * 40)
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output


# `stayflow migrate` with alembic's own log on, so each process tells whether it ran a step.
_MIGRATE_LOGGED = (
    "import logging\n"
    "logging.basicConfig(level=logging.WARNING)\n"
    "logging.getLogger('alembic.runtime.migration').setLevel(logging.INFO)\n"
    "from stayflow.cli.main import main\n"
    "main(['migrate'])\n"
)


def _migrate_concurrently(url: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    env = dict(os.environ, STAYFLOW_DATABASE_URL=url, STAYFLOW_SECRET_KEY="k" * 40)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_LOGGED],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _assert_migrated_once(url: str, results: list[subprocess.CompletedProcess[str]]) -> None:
    from sqlalchemy import create_engine, text

    assert all(r.returncode == 0 for r in results), [r.stderr[-500:] for r in results]
    # Exactly one process ran the first migration (the others found the database at head
    # once they got the lock); two running it would be "migrated twice".
    ran_first = [r for r in results if "Running upgrade  -> 0001" in r.stderr]
    assert len(ran_first) == 1, [r.stderr[-800:] for r in results]
    steps = ran_first[0].stderr.count("Running upgrade")
    assert steps >= 4  # every migration, in that one process
    assert all("Running upgrade" not in r.stderr for r in results if r is not ran_first[0])
    engine = create_engine(url)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert len(versions) == 1


def test_processes_starting_at_once_migrate_once_on_sqlite(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/race.db"
    _assert_migrated_once(url, _migrate_concurrently(url, 4))


@pytest.mark.postgres
def test_processes_starting_at_once_migrate_once_on_postgres():
    require_postgres()
    url = create_pg_database("stayflow_race")
    try:
        _assert_migrated_once(url, _migrate_concurrently(url, 4))
    finally:
        drop_pg_database(url)


def test_migrations_have_one_head_and_match_the_models(tmp_path):
    from alembic import command
    from alembic.script import ScriptDirectory

    from stayflow.db import alembic_config, make_engine, migrate

    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path}/check.db"))
    config = alembic_config(engine)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1
    migrate(engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.check(config)  # raises when the models and the migrations differ
    engine.dispose()
