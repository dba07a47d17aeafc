"""Engine, sessions, the declarative base and migrations.

Only the code that opens a session commits: the request dependency
(``get_db``) or the job runner. Services never call ``commit()``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, BigInteger, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from stayflow.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An autoincrementing 64-bit key on PostgreSQL that is still SQLite's ROWID.
BigIntPK = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


# The process's clock. ``None``: real time. ``stayflow demo`` sets it to the Stripe sandbox's
# movable clock, so stayflow and its (emulated) Stripe agree on what "now" is everywhere:
# session stamps, job schedules, billing plans, attribution windows.
_clock: Callable[[], datetime] | None = None


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Make every ``utcnow()`` in this process read ``clock`` (``None``: real time again)."""
    global _clock
    _clock = clock


def utcnow() -> datetime:
    clock = _clock
    return clock() if clock is not None else datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; stayflow stores aware UTC times only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class SQLiteWriteQueue:
    """First come, first served: the write transactions of one SQLite file in this process.

    Every SQLite transaction here begins IMMEDIATE, taking the file's write lock up front,
    so only one runs at a time anyway. Left to SQLite, the others poll for the lock (its
    busy handler sleeps up to 100 ms between tries): among many threads a transaction can
    lose every race until its busy timeout runs out ("database is locked"), and one that
    wins may still have slept long after the lock came free. Queued here, each is handed
    the turn as the one before ends. SQLite's busy timeout still arbitrates between
    processes (``stayflow serve`` and ``stayflow worker`` on one file).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            gate = threading.Lock()
            gate.acquire()
            self._waiting.append(gate)
        if gate.acquire(timeout=max(0.0, timeout)):
            return True  # handed over by release()
        with self._mutex:
            if gate in self._waiting:
                self._waiting.remove(gate)
                return False
        return True  # handed over just as the wait ran out

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()  # the turn passes on; still held
            else:
                self._held = False


_write_queues: dict[str, SQLiteWriteQueue] = {}
_write_queues_lock = threading.Lock()


def sqlite_write_queue(database: str | None) -> SQLiteWriteQueue | None:
    """The process's queue for a SQLite file (``None`` for an in-memory database)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    key = str(Path(database).resolve())
    with _write_queues_lock:
        return _write_queues.setdefault(key, SQLiteWriteQueue())


class QueuedSQLiteConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its file's write turn from BEGIN to its end."""

    write_queue: SQLiteWriteQueue | None = None
    busy_timeout: float = 30.0
    _holding = False

    def take_write_turn(self) -> None:
        queue = self.write_queue
        if queue is None or self._holding:
            return
        if not queue.acquire(self.busy_timeout):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )
        self._holding = True

    def end_write_turn(self) -> None:
        # Only once the transaction is over: a COMMIT that failed leaves it open.
        if not self._holding:
            return
        try:
            still_open = self.in_transaction
        except sqlite3.Error:  # a closed connection has no transaction left
            still_open = False
        if not still_open:
            self._holding = False
            assert self.write_queue is not None
            self.write_queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_write_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_write_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding:
                self._holding = False
                assert self.write_queue is not None
                self.write_queue.release()


def _sqlite_connect(
    queue: SQLiteWriteQueue | None, busy_timeout: float
) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # isolation_level=None hands transaction control to SQLAlchemy's events below.
        dbapi_connection.isolation_level = None
        if isinstance(dbapi_connection, QueuedSQLiteConnection):
            dbapi_connection.write_queue = queue
            dbapi_connection.busy_timeout = busy_timeout
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: two writers never deadlock
    # on a lock upgrade; in this process they queue for their turn first.
    dbapi_connection = conn.connection.dbapi_connection
    queued = isinstance(dbapi_connection, QueuedSQLiteConnection)
    if queued:
        dbapi_connection.take_write_turn()
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if queued:
            dbapi_connection.end_write_turn()
        raise


def make_engine(settings: Settings, *, sqlite_busy_timeout: float = 30.0, **kwargs: Any) -> Engine:
    """The engine for ``settings``; ``sqlite_busy_timeout``: how long a SQLite transaction
    waits for the write lock before failing "database is locked"."""
    url = settings.database_url
    if url.startswith("sqlite"):
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            # sqlite3's timeout is SQLite's busy timeout (the busy_timeout pragma).
            connect_args={
                "check_same_thread": False,
                "timeout": sqlite_busy_timeout,
                "factory": QueuedSQLiteConnection,
            },
            pool_size=8,
            max_overflow=16,
            **kwargs,
        )
        queue = sqlite_write_queue(engine.url.database)
        event.listen(engine, "connect", _sqlite_connect(queue, sqlite_busy_timeout))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- migrations -------------------------------------------------------------

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_local_migrate_lock = threading.Lock()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    return current_revision(engine) == head_revision(engine)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    """Hold a lock across processes so that several starting at once migrate once."""
    with _local_migrate_lock:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(727274)"))
                conn.commit()
                try:
                    yield conn
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(727274)"))
                    conn.commit()
            return
        database = engine.url.database
        if not database or database == ":memory:":
            with engine.connect() as conn:
                yield conn
            return
        lock_path = Path(database).resolve().with_name(Path(database).name + ".migrate.lock")
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations (idempotent; safe to call from many processes)."""
    with _migration_lock(engine) as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def insert_ignoring_conflicts(
    session: Session, model: Any, values: dict[str, Any], *, on: list[str]
) -> bool:
    """INSERT ... ON CONFLICT (on) DO NOTHING on both backends; True when a row was written."""
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(model).values(**values).on_conflict_do_nothing(index_elements=on)
    # RETURNING tells reliably whether a row was written (rowcount does not on every driver).
    returned = session.execute(stmt.returning(*model.__table__.primary_key.columns)).first()
    return returned is not None
