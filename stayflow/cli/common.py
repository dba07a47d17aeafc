"""What every command shares: settings, migrations and a database.

Domain commands (``billing/cli.py``, ``flows/cli.py``) import this module, never
``cli/main.py``: the entry point imports the domains, not the reverse.
"""

from __future__ import annotations

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from stayflow.settings import ConfigError, Settings, load_settings


def cli_settings() -> Settings:
    """The settings from the environment, or a one-line CLI error."""
    try:
        return load_settings().ensure_secret_key()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def migrate_database(settings: Settings) -> None:
    """Apply pending migrations, or say (without a traceback) why the database is unreachable."""
    from sqlalchemy.exc import OperationalError

    from stayflow.db import make_engine, migrate

    engine = make_engine(settings)
    try:
        migrate(engine)
    except OperationalError as exc:
        raise click.ClickException(
            f"cannot reach the database ({engine.url.render_as_string(hide_password=True)}): "
            f"{exc.orig}"
        ) from exc
    finally:
        engine.dispose()


def open_database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    """Migrate, then an engine (the caller disposes of it) and its session factory."""
    from stayflow.db import make_engine, make_session_factory

    migrate_database(settings)
    engine = make_engine(settings)
    return engine, make_session_factory(engine)
