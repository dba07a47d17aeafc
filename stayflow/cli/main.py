"""The ``stayflow`` command."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from stayflow.cli.common import cli_settings, migrate_database, open_database
from stayflow.settings import Settings


@click.group()
@click.version_option(package_name="stayflow")
def main() -> None:
    """stayflow: cancel flows and retention for Stripe Billing."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not run the in-process job worker.")
@click.option("--workers", default=1, show_default=True, help="Web processes (uvicorn).")
def serve(host: str, port: int, no_worker: bool, workers: int) -> None:
    """Apply pending migrations, then serve the web app (with an in-process worker)."""
    import uvicorn

    from stayflow.logs import configure_logging

    settings = cli_settings()
    configure_logging(settings.log_level, settings.log_json)
    migrate_database(settings)
    if workers > 1:
        # Each process builds its own app from the environment.
        uvicorn.run(
            "stayflow.cli.factory:web_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
        )
        return
    from stayflow.app import create_app

    app = create_app(settings, run_worker=not no_worker)
    click.echo(f"stayflow serving on http://{host}:{port} ({_describe_db(settings)})", err=True)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


def _describe_db(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


@main.command()
@click.option("--concurrency", default=None, type=int, help="Jobs run at once (threads).")
def worker(concurrency: int | None) -> None:
    """Run a standalone job worker until SIGTERM or SIGINT."""
    from stayflow.db import make_engine, make_session_factory
    from stayflow.jobs.registry import load_handlers
    from stayflow.jobs.worker import Worker
    from stayflow.logs import configure_logging

    settings = cli_settings()
    configure_logging(settings.log_level, settings.log_json)
    migrate_database(settings)
    engine = make_engine(settings)
    from stayflow.crypto import Encryptor

    runner = Worker(
        make_session_factory(engine),
        concurrency=concurrency or settings.worker_concurrency,
        lane_concurrency=settings.worker_lane_concurrency,
        poll_interval=settings.worker_poll_interval,
        lease_seconds=settings.job_lease_seconds,
        services={"settings": settings, "encryptor": Encryptor(settings.secret_key)},
        registry=load_handlers(settings.job_module_list),
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.start()
    click.echo(f"stayflow worker {runner.worker_id} running", err=True)
    while not stop.wait(0.5):
        pass
    runner.stop(timeout=settings.job_lease_seconds)
    engine.dispose()
    click.echo("stayflow worker stopped", err=True)


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    settings = cli_settings()
    migrate_database(settings)
    click.echo(f"database at the newest migration ({_describe_db(settings)})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--state-file", default=None, help="Keep the sandbox's state in this file.")
def sandbox(host: str, port: int, state_file: str | None) -> None:
    """Serve the Stripe sandbox (a Stripe API emulator for tests and the demo)."""
    from stayflow.sandbox.runner import serve_forever

    serve_forever(host, port, state_file)


@main.group()
def apps() -> None:
    """Manage apps (tenants)."""


@apps.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--env",
    "as_env",
    is_flag=True,
    help="Print APP_ID=, APP_SECRET= and API_KEY= lines for a shell to source.",
)
def apps_create(name: str, as_json: bool, as_env: bool) -> None:
    """Create an app; prints its id, its secret and an admin API key (shown once)."""
    from stayflow.apps import service
    from stayflow.crypto import Encryptor
    from stayflow.db import make_engine, make_session_factory, transaction
    from stayflow.errors import StayflowError

    settings = cli_settings()
    migrate_database(settings)
    engine = make_engine(settings)
    try:
        with transaction(make_session_factory(engine)) as db:
            created = service.create_app(db, Encryptor(settings.secret_key), name)
            out = {
                "app_id": created.app.app_id,
                "app_secret": created.app_secret,
                "api_key": created.api_key,
            }
    except StayflowError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(out))
        return
    if as_env:
        import shlex

        for key in ("app_id", "app_secret", "api_key"):
            click.echo(f"{key.upper()}={shlex.quote(out[key])}")
        return
    click.echo(f"app_id:     {out['app_id']}")
    click.echo(f"app_secret: {out['app_secret']}")
    click.echo(f"api_key:    {out['api_key']}")
    click.echo("Keep the secret and the key now: they are not shown again.", err=True)


@apps.command("list")
def apps_list() -> None:
    """List apps."""
    from stayflow.apps import repository
    from stayflow.db import make_engine, make_session_factory

    settings = cli_settings()
    migrate_database(settings)
    engine = make_engine(settings)
    with make_session_factory(engine)() as db:
        for app in repository.list_apps(db):
            click.echo(f"{app.app_id}\t{app.name}\t{app.created_at.isoformat()}")
    engine.dispose()


def _open_db() -> tuple[Any, Any, Any]:
    """(settings, engine, session factory), after migrating."""
    settings = cli_settings()
    engine, factory = open_database(settings)
    return settings, engine, factory


@apps.command("delete")
@click.argument("app_id")
@click.option("--yes", is_flag=True, help="Do not ask; delete at once.")
def apps_delete(app_id: str, yes: bool) -> None:
    """Delete an app and everything it owns (keys, Stripe connection, flows, sessions, ...)."""
    from stayflow.apps import erase, repository
    from stayflow.crypto import Encryptor
    from stayflow.db import transaction
    from stayflow.errors import StayflowError

    settings, engine, factory = _open_db()
    try:
        with transaction(factory) as db:
            app = repository.get_app_by_public_id(db, app_id)
            if app is None:
                raise click.ClickException(f"no app {app_id!r}")
            confirm = app_id
            if not yes:
                confirm = click.prompt(
                    f"This deletes {app.name!r} ({app_id}) and all its data. Type its app id",
                    default="",
                    show_default=False,
                )
            rows = erase.delete_app(
                db, app, settings, Encryptor(settings.secret_key), confirm=confirm
            )
    except StayflowError as exc:
        raise click.ClickException(f"{exc.message}; nothing was deleted") from exc
    finally:
        engine.dispose()
    click.echo(json.dumps({"app_id": app_id, "deleted": True, "rows": rows}))


@apps.command("erase-subscriber")
@click.argument("app_id")
@click.option("--subscription", "subscription_id", default=None, help="Stripe subscription id.")
@click.option("--customer", "customer_id", default=None, help="Stripe customer id.")
def apps_erase_subscriber(
    app_id: str, subscription_id: str | None, customer_id: str | None
) -> None:
    """Erase one subscriber's personal data, keeping anonymous counts."""
    from stayflow.apps import erase, repository
    from stayflow.db import transaction
    from stayflow.errors import StayflowError

    _, engine, factory = _open_db()
    try:
        with transaction(factory) as db:
            app = repository.get_app_by_public_id(db, app_id)
            if app is None:
                raise click.ClickException(f"no app {app_id!r}")
            done = erase.erase_subscriber(
                db, app, subscription_id=subscription_id, customer_id=customer_id
            )
    except StayflowError as exc:
        raise click.ClickException(f"{exc.message}; nothing was erased") from exc
    finally:
        engine.dispose()
    click.echo(
        json.dumps(
            {
                "subscription_ids": done.subscription_ids,
                "customer_ids": done.customer_ids,
                "counts": done.counts,
            }
        )
    )


def _add_domain_commands() -> None:
    from stayflow.admin.cli import users
    from stayflow.attribution.cli import attribution
    from stayflow.billing.cli import keys, stripe_group
    from stayflow.demo.cli import demo
    from stayflow.flows.cli import flows

    main.add_command(attribution)
    main.add_command(demo)
    main.add_command(flows)
    main.add_command(keys)
    main.add_command(stripe_group)
    main.add_command(users)


_add_domain_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
