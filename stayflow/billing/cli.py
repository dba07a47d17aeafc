"""``stayflow keys rotate`` and ``stayflow stripe backfill --app APP_ID``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click


def _open() -> tuple[Any, Any, Any]:
    from stayflow.cli.common import cli_settings, open_database

    settings = cli_settings()
    engine, factory = open_database(settings)
    return settings, engine, factory


@click.group("keys")
def keys() -> None:
    """Manage the encryption of stored secrets."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret under the first key of STAYFLOW_SECRET_KEY.

    Put the new key first and the old ones after it (comma-separated), run this,
    then remove the old keys.
    """
    import stayflow.models  # noqa: F401  (every domain registers its encrypted columns)
    from stayflow.crypto import DecryptionError, Encryptor, rotate_all
    from stayflow.db import transaction

    settings, engine, factory = _open()
    try:
        with transaction(factory) as db:
            counts = rotate_all(db, Encryptor(settings.secret_key))
    except DecryptionError as exc:
        raise click.ClickException(
            "a stored secret does not decrypt with any configured key; list the old key after "
            "the new one in STAYFLOW_SECRET_KEY (nothing was changed)"
        ) from exc
    finally:
        engine.dispose()
    for table, count in counts.items():
        click.echo(f"{table}: {count} secret(s) re-encrypted")


@click.group("stripe")
def stripe_group() -> None:
    """Stripe: mirror backfill."""


@stripe_group.command("backfill")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
@click.option("--restart", is_flag=True, help="Start from the first page, not where it stopped.")
@click.option("--max-pages", default=100_000, show_default=True, help="Stop after this many.")
def backfill(app_id: str, restart: bool, max_pages: int) -> None:
    """Copy every subscription (status=all, 100 a page) into the mirror; resumable."""
    from stayflow.apps.repository import get_app_by_public_id
    from stayflow.billing import repository as billing_repository
    from stayflow.billing import service as billing_service
    from stayflow.billing.config import billing_settings
    from stayflow.billing.provider import BillingError
    from stayflow.crypto import Encryptor
    from stayflow.db import transaction
    from stayflow.mirror import service as mirror_service

    settings, engine, factory = _open()
    encryptor = Encryptor(settings.secret_key)
    try:
        with transaction(factory) as db:
            app = get_app_by_public_id(db, app_id)
            if app is None:
                raise click.ClickException(f"no app {app_id!r}")
            key = billing_service.connected_key(
                encryptor, billing_repository.get_connection(db, app)
            )
            if key is None:
                raise click.ClickException(f"app {app_id} is not connected to Stripe")
            state = mirror_service.start_backfill(db, app, restart=restart)
            app_pk, resumed = app.id, state.subscriptions
        provider = billing_service.make_provider(
            settings, key, timeout=billing_settings().stripe_backfill_timeout, retries=2
        )
        if resumed:
            click.echo(f"resuming after {resumed} subscriptions", err=True)

        def pages() -> Iterator[int]:
            for _ in range(max_pages):
                with transaction(factory) as db:
                    state = mirror_service.backfill_page(db, app_pk, provider)
                    total, done = state.subscriptions, state.status == "done"
                yield total
                if done:
                    return

        total = resumed
        with click.progressbar(
            pages(),
            label="backfill",
            item_show_func=lambda n: f"{n} subscriptions" if n is not None else "",
        ) as bar:
            for count in bar:
                total = count
    except BillingError as exc:
        raise click.ClickException(
            f"Stripe: {exc.message}; run the command again to resume where it stopped"
        ) from exc
    finally:
        engine.dispose()
    click.echo(f"mirror backfilled: {total} subscriptions")
