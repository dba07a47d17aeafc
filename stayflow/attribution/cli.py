"""``stayflow attribution sync --app APP_ID``: sync now, with progress and a summary line."""

from __future__ import annotations

import click


@click.group("attribution")
def attribution() -> None:
    """Attribution: prove saves in Stripe, count revenue kept and lost."""


@attribution.command("sync")
@click.option("--app", "app_id", required=True, help="The app id (app_...).")
def sync_command(app_id: str) -> None:
    """Read Stripe's changes since the last sync, then judge the sessions they touch."""
    from stayflow.apps.repository import get_app_by_public_id
    from stayflow.attribution import sync, tasks
    from stayflow.billing import repository as billing_repository
    from stayflow.billing import service as billing_service
    from stayflow.billing.cli import _open
    from stayflow.billing.config import billing_settings
    from stayflow.billing.provider import BillingError
    from stayflow.crypto import Encryptor
    from stayflow.db import transaction, utcnow

    settings, engine, factory = _open()
    try:
        with transaction(factory) as db:
            app = get_app_by_public_id(db, app_id)
            if app is None:
                raise click.ClickException(f"no app {app_id!r}")
            conn = billing_repository.get_connection(db, app)
            key = billing_service.connected_key(Encryptor(settings.secret_key), conn)
            if key is None:
                raise click.ClickException(f"app {app_id} is not connected to Stripe")
            app_pk = app.id
        provider = billing_service.make_provider(
            settings, key, timeout=billing_settings().stripe_backfill_timeout, retries=2
        )
        tasks.ensure_state(factory, app_pk)
        requests = tasks.refresh_webhook_endpoint(factory, app_pk, provider)
        now = utcnow()
        with click.progressbar(length=0, label="attribution sync", show_pos=True) as bar:

            def progress(what: str, count: int) -> None:
                bar.label = f"attribution sync: {what}"
                bar.update(count)

            try:
                with transaction(factory) as db:
                    result = sync.sync(
                        db, app_pk, provider, now, progress=progress, requests_before=requests
                    )
            except BillingError as exc:
                with transaction(factory) as db:
                    sync.record_failure(db, app_pk, now, exc.message, provider.calls)
                raise click.ClickException(
                    f"Stripe: {exc.message}; nothing was changed, run the command again"
                ) from exc
    finally:
        engine.dispose()
    click.echo(result.summary())
