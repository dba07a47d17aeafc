"""``stayflow flows export|apply FILE --app APP_ID``, and the versions: ``history``,
``rollback --to N``, ``publish`` and ``discard`` (the draft)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.models import App
from stayflow.flows import fileformat

if TYPE_CHECKING:
    from stayflow.flows.models import FlowVersion
    from stayflow.flows.service import Applied, OfferCheck


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


# Who made a change from the command line, in the flows' versions.
CLI_AUTHOR = "cli"


@click.group("flows")
def flows() -> None:
    """Export or apply an app's cancel flow as a YAML or JSON file; its versions and draft."""


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
@click.option("--draft", is_flag=True, help="Save as the draft (publish later).")
@click.option("--message", "-m", default=None, help="Why: kept with the version.")
def apply(
    file: str, app_id: str, yes: bool, dry_run: bool, draft: bool, message: str | None
) -> None:
    """Replace the app's flows with FILE ('-' for standard input), after showing the diff."""
    source = sys.stdin.read() if file == "-" else _read(file)
    try:
        data = fileformat.parse(source, name=file)
    except fileformat.FlowsFileError as exc:
        raise click.ClickException(str(exc)) from exc
    from stayflow.flows import service

    _change(
        app_id,
        lambda db, app, dry, check: service.apply(
            db,
            app,
            data,
            dry_run=dry,
            offer_check=check,
            author=CLI_AUTHOR,
            message=message,
            draft=draft,
        ),
        where=file,
        yes=yes,
        dry_run=dry_run,
        question="Save the draft?" if draft else "Apply these changes?",
        no_change=f"no changes: the app's flows already match {file}",
    )


def _change(
    app_id: str,
    run: Callable[[Session, App, bool, OfferCheck | None], Applied],
    *,
    where: str,
    yes: bool,
    dry_run: bool = False,
    question: str,
    no_change: str,
) -> None:
    """Show what ``run`` would change (checked against Stripe), ask, then do it."""
    from stayflow.db import transaction
    from stayflow.errors import StayflowError

    engine, factory = _open_db()
    try:
        with factory() as db:
            try:
                preview = run(db, _app(db, app_id), True, _offer_check())
            except StayflowError as exc:
                raise click.ClickException(f"{where}: {exc.message}") from exc
        for warning in preview.warnings:
            click.secho(f"warning: {warning}", fg="yellow", err=True)
        if not preview.changed:
            click.echo(f"{no_change} (version {preview.version})")
            return
        _show_diff(preview.diff)
        if dry_run:
            click.echo("dry run: nothing applied")
            return
        if not yes and not click.confirm(question, default=False):
            raise click.ClickException("not applied")
        try:
            with transaction(factory) as db:
                result = run(db, _app(db, app_id), False, None)
        except StayflowError as exc:
            raise click.ClickException(f"{where}: {exc.message}") from exc
        if result.draft:
            click.echo(
                f"saved the draft (live: version {result.version}); publish with "
                f"`stayflow flows publish --app {app_id}`"
            )
        else:
            click.echo(f"applied: version {result.version}")
    finally:
        engine.dispose()


def _show_diff(diff: str) -> None:
    for line in diff.splitlines():
        color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        click.secho(line, fg=color)


@flows.command("history")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
@click.option("--diff", "number", type=int, default=None, help="Show version N and its diff.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
def history(app_id: str, number: int | None, limit: int) -> None:
    """The versions of the app's flows, newest first (who, when, why)."""
    from stayflow.errors import StayflowError
    from stayflow.flows import service, versions

    engine, factory = _open_db()
    try:
        with factory() as db:
            app = _app(db, app_id)
            _, live = service.current(db, app)
            if number is not None:
                try:
                    found = versions.get_version(db, app, number)
                except StayflowError as exc:
                    raise click.ClickException(exc.message) from exc
                click.echo(_line(found, live))
                _show_diff(found.diff or "(no change to the flows document)\n")
                return
            rows = versions.list_versions(db, app, limit=limit)
            draft = versions.find_draft(db, app)
    finally:
        engine.dispose()
    if draft is not None:
        when = f"{draft.updated_at:%Y-%m-%d %H:%M} UTC" if draft.updated_at else ""
        click.echo(
            f" draft  {when}  {draft.author or ''}  {draft.message or ''} "
            f"(saved over version {draft.base_version}; publish or discard it)"
        )
    if not rows:
        click.echo("no versions yet: the app's flows were never changed")
    for row in rows:
        click.echo(_line(row, live))


def _line(row: FlowVersion, live: int) -> str:
    mark = "*" if row.number == live else " "
    when = f"{row.created_at:%Y-%m-%d %H:%M} UTC"
    return f"{mark}{row.number:>5}  {when}  {row.author}  {row.message or ''}".rstrip()


@flows.command("rollback")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
@click.option("--to", "number", type=click.IntRange(1), required=True, help="The version.")
@click.option("--draft", is_flag=True, help="Make it the draft instead of live.")
@click.option("--yes", "-y", is_flag=True, help="Without asking.")
def rollback(app_id: str, number: int, draft: bool, yes: bool) -> None:
    """Restore version N: a new version with its document (or the draft with --draft)."""

    def run(db: Session, app: App, dry: bool, check: OfferCheck | None) -> Applied:
        from stayflow.flows import service, versions

        if dry:
            found = versions.get_version(db, app, number)
            return service.apply(
                db, app, dict(found.document), dry_run=True, offer_check=check, draft=draft
            )
        return versions.restore(db, app, number, author=CLI_AUTHOR, draft=draft)

    _change(
        app_id,
        run,
        where=f"version {number}",
        yes=yes,
        question=f"Restore version {number}{' as the draft' if draft else ''}?",
        no_change=f"no changes: the app's flows already match version {number}",
    )


@flows.command("publish")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
@click.option("--message", "-m", default=None, help="Instead of the draft's own message.")
@click.option("--yes", "-y", is_flag=True, help="Without asking.")
def publish(app_id: str, message: str | None, yes: bool) -> None:
    """Make the draft live (a new version)."""

    def run(db: Session, app: App, dry: bool, check: OfferCheck | None) -> Applied:
        from stayflow.flows import service, versions

        if dry:
            found = versions.get_draft(db, app)
            result = service.apply(db, app, found.document, dry_run=True, offer_check=check)
            # Publishing an unchanged draft still clears it: show it as a change.
            return dataclasses.replace(result, changed=True, diff=result.diff or "")
        return versions.publish(db, app, author=CLI_AUTHOR, message=message)

    _change(
        app_id,
        run,
        where="draft",
        yes=yes,
        question="Publish the draft?",
        no_change="no changes",
    )


@flows.command("discard")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
def discard(app_id: str) -> None:
    """Throw the draft away (the live flows stay as they are)."""
    from stayflow.db import transaction
    from stayflow.errors import StayflowError
    from stayflow.flows import versions

    engine, factory = _open_db()
    try:
        with transaction(factory) as db:
            try:
                versions.discard_draft(db, _app(db, app_id))
            except StayflowError as exc:
                raise click.ClickException(exc.message) from exc
    finally:
        engine.dispose()
    click.echo("draft discarded")


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from exc
