"""The Dockerfile and compose.yaml, checked as files.

No Docker engine runs on the machines these tests run on, and no image registry is
reachable, so nothing here builds the image or starts the stack (docs/docker.md says so).
What can be checked without them is: compose.yaml against the Compose specification's JSON
schema, what the stack must have (PostgreSQL, one serve, one worker, secrets from files,
127.0.0.1 only), the Dockerfile's shape (multi-stage, the wheel, uid 10001, a health check,
`stayflow serve`), that every command the files run is a real stayflow command with real
options, and that the environment compose gives stayflow is one it starts with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from stayflow.cli.main import main as stayflow_cli
from stayflow.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def parses(argv: list[str]) -> None:
    """Parse argv with stayflow's own click commands (unknown options raise)."""
    assert argv[0] == "stayflow", argv
    group: Any = stayflow_cli
    args = argv[1:]
    while isinstance(group, click.Group):
        name, *args = args
        group = group.commands[name]
    group.make_context(name, list(args))


def test_compose_matches_the_compose_specification() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_postgresql_one_serve_one_worker_with_secrets_from_files() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"db", "serve", "worker"}
    assert services["db"]["image"].startswith("postgres:")
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    for name in ("serve", "worker"):
        service = services[name]
        env = service["environment"]
        assert env["STAYFLOW_DATABASE_URL_FILE"] == "/run/secrets/database_url"
        assert env["STAYFLOW_SECRET_KEY_FILE"] == "/run/secrets/secret_key"
        assert not any(k in env for k in ("STAYFLOW_DATABASE_URL", "STAYFLOW_SECRET_KEY"))
        assert set(service["secrets"]) == {"database_url", "secret_key"}
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        parses(service["command"])
    assert "--no-worker" in services["serve"]["command"]
    assert services["serve"]["command"][:2] == ["stayflow", "serve"]
    assert services["worker"]["command"] == ["stayflow", "worker"]
    assert services["serve"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "ports" not in services["worker"] and "ports" not in services["db"]
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    used = {s for service in services.values() for s in service.get("secrets", [])}
    assert used == set(COMPOSE["secrets"])
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"secrets", ".venv", ".git"} <= set(ignored)


def test_the_environment_compose_gives_stayflow_starts_it(tmp_path: Path, monkeypatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "database_url").write_text("postgresql+psycopg://stayflow:pw@db:5432/stayflow\n")
    (secrets / "secret_key").write_text("k" * 64 + "\n")
    for key in list(os.environ):
        if key.startswith("STAYFLOW_"):
            monkeypatch.delenv(key)
    env = COMPOSE["services"]["serve"]["environment"]
    for key, value in env.items():
        value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), value)
        monkeypatch.setenv(key, value.replace("/run/secrets", str(secrets)))
    settings = load_settings().ensure_secret_key()
    assert settings.env == "production"
    assert settings.database_url == "postgresql+psycopg://stayflow:pw@db:5432/stayflow"
    assert settings.secret_key == "k" * 64
    assert settings.base_url == "http://127.0.0.1:8000"


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_builds_the_wheel_and_runs_it_as_uid_10001() -> None:
    steps = _instructions()
    froms = [arg for kind, arg in steps if kind == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    runtime = steps[[i for i, (kind, _) in enumerate(steps) if kind == "FROM"][1] :]
    kinds = [kind for kind, _ in runtime]
    assert ("COPY", "--from=build /wheels /wheels") in runtime
    assert any(k == "RUN" and "--no-index" in a and "stayflow" in a for k, a in runtime)
    assert ("USER", "10001:10001") in runtime
    assert kinds.index("USER") < kinds.index("CMD")
    assert any("--uid 10001" in a for k, a in runtime if k == "RUN")
    [healthcheck] = [a for k, a in runtime if k == "HEALTHCHECK"]
    code = json.loads(healthcheck.split("CMD", 1)[1])  # the exec form is a JSON array
    assert code[:2] == ["python", "-c"] and "/healthz" in code[2]
    compile(code[2], "healthcheck", "exec")
    [command] = [a for k, a in runtime if k == "CMD"]
    argv = json.loads(command)
    assert argv[:2] == ["stayflow", "serve"]
    parses(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["stayflow", "serve", "--no-such-option"],
        ["stayflow", "no-such-command"],
    ],
)
def test_parses_refuses_what_stayflow_would(argv: list[str]) -> None:
    with pytest.raises((click.UsageError, KeyError)):
        parses(argv)
