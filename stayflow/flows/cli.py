"""``stayflow flows export|apply FILE --app APP_ID``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.models import App
from stayflow.flows import fileformat

if TYPE_CHECKING:
    from stayflow.flows.service import OfferCheck


def _open_db() -> tuple[Engine, sessionmaker[Session]]:
    from stayflow.cli.common import cli_settings, open_database

    return open_database(cli_settings())


def _offer_check() -> OfferCheck:
    """New or changed offers are checked against the app's Stripe account, as in the API."""
    from stayflow.billing.actions.validation import offer_check
    from stayflow.cli.common import cli_settings
    from stayflow.crypto import Encryptor

    settings = cli_settings()
    return offer_check({"settings": settings, "encryptor": Encryptor(settings.secret_key)})


def _app(db: Session, app_id: str) -> App:
    from stayflow.apps.repository import get_app_by_public_id

    app = get_app_by_public_id(db, app_id)
    if app is None:
        raise click.ClickException(f"no app {app_id!r}")
    return app


@click.group("flows")
def flows() -> None:
    """Export or apply an app's cancel flow as a YAML or JSON file."""


@flows.command("export")
@click.argument("file")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
@click.option("--json", "as_json", is_flag=True, help="JSON even when FILE does not end in .json.")
def export(file: str, app_id: str, as_json: bool) -> None:
    """Write the app's flows to FILE ('-' for standard output)."""
    from stayflow.flows import service

    engine, factory = _open_db()
    try:
        with factory() as db:
            app = _app(db, app_id)
            doc, version = service.current(db, app)
            document = {**doc.normalized(), **service.section_values(db, app)}
    finally:
        engine.dispose()
    text = fileformat.dump(document, as_json=as_json or fileformat.is_json_path(file))
    if file == "-":
        click.echo(text, nl=False)
    else:
        Path(file).write_text(text, encoding="utf-8")
        click.echo(f"wrote {file} (version {version})", err=True)


@flows.command("apply")
@click.argument("file")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--dry-run", is_flag=True, help="Show the diff only.")
def apply(file: str, app_id: str, yes: bool, dry_run: bool) -> None:
    """Replace the app's flows with FILE ('-' for standard input), after showing the diff."""
    from stayflow.db import transaction
    from stayflow.errors import StayflowError
    from stayflow.flows import service

    source = sys.stdin.read() if file == "-" else _read(file)
    try:
        data = fileformat.parse(source, name=file)
    except fileformat.FlowsFileError as exc:
        raise click.ClickException(str(exc)) from exc
    engine, factory = _open_db()
    try:
        with factory() as db:
            try:
                preview = service.apply(
                    db, _app(db, app_id), data, dry_run=True, offer_check=_offer_check()
                )
            except StayflowError as exc:
                raise click.ClickException(f"{file}: {exc.message}") from exc
        if not preview.changed:
            click.echo(
                f"no changes: the app's flows already match {file} (version {preview.version})"
            )
            return
        for line in preview.diff.splitlines():
            color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            click.secho(line, fg=color)
        if dry_run:
            click.echo("dry run: nothing applied")
            return
        if not yes and not click.confirm("Apply these changes?", default=False):
            raise click.ClickException("not applied")
        with transaction(factory) as db:
            result = service.apply(db, _app(db, app_id), data)
        click.echo(f"applied: version {result.version}")
    finally:
        engine.dispose()


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from exc
