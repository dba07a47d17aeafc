"""``stayflow users``: create, list, remove, reset-password, and their errors (both databases)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from stayflow.admin import service
from stayflow.admin.models import AdminSession, User
from stayflow.cli.main import main
from stayflow.db import transaction
from tests.conftest import TEST_SECRET_KEY

PASSWORD = "correct-horse-battery"


@pytest.fixture
def cli(database_url, monkeypatch):
    monkeypatch.setenv("STAYFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("STAYFLOW_PASSWORD", PASSWORD)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(main, ["users", *args], **kw)


def test_create_list_remove(cli, owner, other, session_factory):
    made = cli("create", "Ada@Example.com", "--app", owner.app_id, "--role", "owner")
    assert made.exit_code == 0, made.output
    assert f"ada@example.com is owner of {owner.app_id}" in made.output
    # An existing user joins a second app (no password asked).
    joined = cli(
        "create",
        "ada@example.com",
        "--app",
        other.app_id,
        "--role",
        "viewer",
        env={"STAYFLOW_PASSWORD": ""},
        input="",
    )
    assert joined.exit_code == 0, joined.output
    listed = cli("list")
    assert listed.exit_code == 0
    assert f"{owner.app_id}:owner" in listed.output and f"{other.app_id}:viewer" in listed.output
    with session_factory() as db:
        user = db.scalar(select(User))
        assert service._hasher.verify(user.password_hash, PASSWORD)
    assert cli("remove", "ada@example.com", "--app", other.app_id).exit_code == 0
    assert f"{other.app_id}" not in cli("list").output
    assert cli("remove", "ada@example.com").exit_code == 0
    assert cli("list").output == ""


@pytest.mark.parametrize(
    ("args", "env", "message", "code"),
    [
        (["--app", "app_nope", "--role", "viewer"], {}, "no app 'app_nope'", 1),
        (["--app", "{app}", "--role", "king"], {}, "'king' is not one of", 2),
        (["--app", "{app}", "--role", "viewer"], {"STAYFLOW_PASSWORD": "short"}, "at least 12", 1),
    ],
)
def test_create_errors(cli, owner, args, env, message, code):
    args = [a.replace("{app}", owner.app_id) for a in args]
    result = cli("create", "bob@example.com", *args, env=env or None)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_duplicate_and_bad_email_and_unknown_user(cli, owner):
    assert (
        cli("create", "bob@example.com", "--app", owner.app_id, "--role", "viewer").exit_code == 0
    )
    again = cli("create", "bob@example.com", "--app", owner.app_id, "--role", "editor")
    assert again.exit_code == 1 and "already a member" in again.output
    bad = cli("create", "not-an-email", "--app", owner.app_id, "--role", "viewer")
    assert bad.exit_code == 1 and "is not an email address" in bad.output
    for args in (["remove", "nobody@example.com"], ["reset-password", "nobody@example.com"]):
        result = cli(*args)
        assert result.exit_code == 1 and "no user 'nobody@example.com'" in result.output


def test_reset_password_changes_it_and_ends_sessions(cli, owner, session_factory):
    assert (
        cli("create", "bob@example.com", "--app", owner.app_id, "--role", "viewer").exit_code == 0
    )
    from stayflow.db import utcnow

    with transaction(session_factory) as db:
        user = db.scalar(select(User))
        service.start_session(db, user, utcnow())
    result = cli("reset-password", "bob@example.com", env={"STAYFLOW_PASSWORD": "a-brand-new-one!"})
    assert result.exit_code == 0, result.output
    with session_factory() as db:
        user = db.scalar(select(User))
        assert service._hasher.verify(user.password_hash, "a-brand-new-one!")
        assert db.scalars(select(AdminSession)).all() == []


def test_password_prompt_when_the_environment_has_none(cli, owner):
    result = cli(
        "create",
        "eve@example.com",
        "--app",
        owner.app_id,
        "--role",
        "viewer",
        env={"STAYFLOW_PASSWORD": ""},
        input="prompted-password\nprompted-password\n",
    )
    assert result.exit_code == 0, result.output
    mismatch = cli(
        "reset-password",
        "eve@example.com",
        env={"STAYFLOW_PASSWORD": ""},
        input="one-long-password\nanother-password\n" * 1,
    )
    assert mismatch.exit_code != 0
