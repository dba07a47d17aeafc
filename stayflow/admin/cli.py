"""``stayflow users``: the people who sign in to the admin web app."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from stayflow.admin.models import ROLES


def _password(confirm: bool = True) -> str:
    from_env = os.environ.get("STAYFLOW_PASSWORD")
    if from_env:
        return from_env
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return value


def _run(work: Callable[[Any], Any]) -> Any:
    """Run ``work(db)`` in one transaction; domain errors become a message and exit code 1."""
    from stayflow.cli.common import cli_settings, open_database
    from stayflow.db import transaction
    from stayflow.errors import StayflowError

    engine, factory = open_database(cli_settings())
    try:
        with transaction(factory) as db:
            return work(db)
    except StayflowError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        engine.dispose()


@click.group()
def users() -> None:
    """Manage the people who sign in to the admin web app (/admin)."""


@users.command("create")
@click.argument("email")
@click.option("--app", "app_id", required=True, help="The app (tenant) id the user joins.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The user's role there.")
def users_create(email: str, app_id: str, role: str) -> None:
    """Create a user in an app, or add an existing user to another app.

    The password comes from STAYFLOW_PASSWORD or a prompt (only asked for a new user).
    """
    from stayflow.admin import service
    from stayflow.db import utcnow

    # Check the app and the email before asking for a password (and never prompt while a
    # transaction holds the database).
    exists = _run(lambda db: service.check_new_member(db, email, app_id=app_id))
    password = "" if exists else _password()
    _run(
        lambda db: service.create_user(db, email, password, app_id=app_id, role=role, now=utcnow())
    )
    click.echo(f"{email.strip().lower()} is {role} of {app_id}")


@users.command("list")
def users_list() -> None:
    """List users and their roles (email, then app:role pairs)."""
    from stayflow.admin import service

    rows = _run(service.list_users)
    for row in rows:
        click.echo(row.email + "\t" + " ".join(f"{a}:{r}" for a, r in row.apps))


@users.command("remove")
@click.argument("email")
@click.option("--app", "app_id", default=None, help="Remove only from this app.")
def users_remove(email: str, app_id: str | None) -> None:
    """Delete a user (or, with --app, remove them from one app)."""
    from stayflow.admin import service

    _run(lambda db: service.remove_user(db, email, app_id=app_id))
    click.echo(f"removed {email}" + (f" from {app_id}" if app_id else ""))


@users.command("reset-password")
@click.argument("email")
def users_reset_password(email: str) -> None:
    """Set a new password (STAYFLOW_PASSWORD or a prompt) and end the user's sessions."""
    from stayflow.admin import service
    from stayflow.db import utcnow

    password = _password()
    _run(lambda db: service.reset_password(db, email, password, now=utcnow()))
    click.echo(f"password of {email} changed; their sessions were ended")
