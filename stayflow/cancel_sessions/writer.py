"""Group commit for precancel: concurrent requests share one INSERT transaction.

Every click on a Cancel link writes one row. Committing each on its own makes
the commit (an fsync on PostgreSQL, the single write lock on SQLite) the limit.
Here requests hand their row to one writer thread, which inserts whatever has
queued up (up to ``MAX_BATCH`` rows) in one transaction and then answers each
request. Under light load a batch is one row and costs what a direct insert
does; under heavy load a commit is shared by many requests.

The writer thread starts on the first write and ends after ``IDLE_SECONDS``
without work, so an idle app holds no thread. While it runs it keeps one connection of
its own with one prepared INSERT: a batch is BEGIN, one executemany, COMMIT, with no pool
checkout (and no liveness ping on PostgreSQL) per batch. On PostgreSQL that connection is
taken out of the pool and runs with ``synchronous_commit off`` for its whole life (set
once, not per batch), then is closed, so the setting never reaches a pooled connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Engine, Table, insert

from stayflow.cancel_sessions.models import CancelSession

log = logging.getLogger("stayflow.cancel_sessions.writer")

MAX_BATCH = 200
IDLE_SECONDS = 2.0


@dataclass
class _Pending:
    row: dict[str, Any]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class _Failed(Exception):
    """An insert failed with ``error``; carries the connection to go on with."""

    def __init__(self, conn: Connection | None, error: Exception) -> None:
        super().__init__("insert failed")
        self.conn = conn
        self.error = error


class _DriverInsert:
    """``INSERT INTO cancel_sessions`` for rows with the given keys, as the driver takes it.

    SQLAlchemy's ``execute(insert(...), rows)`` rebuilds every row's parameters through the
    compiled statement on each call; under load that was most of the writer's own time.
    Here the SQL text is made once, and each value goes through the same bind processor
    SQLAlchemy would use (JSON, aware UTC datetimes, booleans), so the stored values are
    the same (tests/cancel_flow/test_writer.py compares them with an ORM insert). Columns the
    row leaves out get their Python-side default, as SQLAlchemy gives them.
    """

    def __init__(self, dialect: Dialect, keys: tuple[str, ...]) -> None:
        table = cast(Table, CancelSession.__table__)
        unknown = [key for key in keys if key not in table.c]
        if unknown:
            raise ValueError(f"not columns of {table.name}: {unknown}")
        self.keys = keys
        self.defaulted = [
            column
            for column in table.c
            if column.key not in keys and not column.primary_key and column.default is not None
        ]
        for column in self.defaulted:
            made = column.default
            if made is None or not (made.is_scalar or made.is_callable):
                raise ValueError(f"{column.key}: only scalar or callable defaults are filled")
        # SQLAlchemy writes the SQL (casts and all), once: the same text as its own insert.
        # inline: no RETURNING of the new id (nobody reads it).
        compiled = insert(table).inline().compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        names = [*keys, *(column.key for column in self.defaulted)]
        bound = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        if sorted(bound) != sorted(names):
            raise ValueError(f"the compiled insert binds {bound}, not {names}")
        self.positional = compiled.positional
        self.names = bound if compiled.positional else names
        processors = {
            column.key: column.type.dialect_impl(dialect).bind_processor(dialect)
            for column in table.c
            if column.key in names
        }
        self.processors = [(name, processors[name]) for name in self.names]

    def values(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        given = dict(row)
        for column in self.defaulted:
            default: Any = column.default
            given[column.key] = default.arg(None) if default.is_callable else default.arg
        if self.positional:
            return tuple(
                given[name] if process is None else process(given[name])
                for name, process in self.processors
            )
        return {
            name: given[name] if process is None else process(given[name])
            for name, process in self.processors
        }


class SessionWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._inserts: dict[tuple[str, ...], _DriverInsert] = {}
        # Rows cross between the event loop and the thread in groups, both ways: what one
        # turn of a loop wrote is handed over at once, and a batch's answers go back in one
        # call per loop (one wake-up of the loop). The thread is woken only when it waits
        # for work: while it commits a batch, rows just queue up behind it. Each wake-up is a
        # system call and a fight for the GIL, which the profile showed per request.
        self._queue: deque[_Pending] = deque()
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._waiting = False  # the thread sleeps on ``_work`` (under ``_lock``)
        self._thread: threading.Thread | None = None

    async def write(self, row: dict[str, Any]) -> None:
        """Insert ``row``; returns once it is committed (raises if it could not be)."""
        loop = asyncio.get_running_loop()
        pending = _Pending(row, loop.create_future(), loop)
        group = self._gathering.get(loop)
        if group is None:
            group = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)  # at the end of this turn of the loop
        group.append(pending)
        await pending.future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        group = self._gathering.pop(loop, None)
        if not group:
            return
        with self._lock:
            self._queue.extend(group)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="stayflow-precancel-writer", daemon=True
                )
                self._thread.start()
            elif self._waiting:
                self._waiting = False
                self._work.notify()

    def _next_batch(self) -> list[_Pending] | None:
        """Up to MAX_BATCH queued rows; waits for some, None after IDLE_SECONDS without."""
        with self._lock:
            if not self._queue:
                deadline = time.monotonic() + IDLE_SECONDS
                while not self._queue:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        # Under the lock: a writer that queues from now on starts a thread.
                        self._thread = None
                        return None
                    self._waiting = True
                    self._work.wait(left)
                    self._waiting = False
            queued = self._queue
            count = min(len(queued), MAX_BATCH)
            return [queued.popleft() for _ in range(count)]

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                conn = self._commit(conn, batch)
        finally:
            if conn is not None:
                conn.close()

    def _connect(self) -> Connection:
        conn = self.engine.connect()
        if conn.dialect.name == "postgresql":
            # A session start lost to a server crash costs one more click on Cancel;
            # outcomes are committed durably elsewhere. Not waiting for the WAL flush
            # here is what lets precancel keep up with a burst. The connection leaves the
            # pool (closed when the thread ends), so no other work inherits the setting.
            conn.detach()
            conn.exec_driver_sql("SET synchronous_commit TO OFF")
            conn.commit()
        return conn

    def _insert(self, conn: Connection | None, rows: list[dict[str, Any]]) -> Connection | None:
        """Insert ``rows`` in one transaction; returns the connection to keep using (None
        when it broke: the next batch opens another)."""
        for attempt in (1, 2):
            if conn is None:
                conn = self._connect()
            try:
                with conn.begin():
                    self._execute(conn, rows)
                return conn
            except Exception as exc:
                broken = conn.invalidated or conn.closed
                if broken:
                    conn.close()
                    conn = None
                if broken and attempt == 1:
                    continue  # lost while idle (a database restart): once more, on a new one
                raise _Failed(conn, exc) from exc
        raise AssertionError("unreachable")

    def _execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """One executemany of one INSERT per set of keys (precancel's rows all have the
        same), the values already in the driver's terms."""
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_keys.setdefault(tuple(row), []).append(row)
        for keys, group in by_keys.items():
            statement = self._inserts.get(keys)
            if statement is None:
                statement = self._inserts[keys] = _DriverInsert(conn.dialect, keys)
            conn.exec_driver_sql(statement.sql, [statement.values(row) for row in group])

    def _commit(self, conn: Connection | None, batch: list[_Pending]) -> Connection | None:
        try:
            conn = self._insert(conn, [p.row for p in batch])
        except _Failed as failed:
            conn = failed.conn
            if len(batch) == 1:
                self._answer([(batch[0], failed.error)])
                return conn
            # One bad row must not fail the others: retry them one by one.
            log.warning("cancel_sessions.batch_insert_failed", extra={"rows": len(batch)})
            answers: list[tuple[_Pending, BaseException | None]] = []
            for pending in batch:
                try:
                    conn = self._insert(conn, [pending.row])
                except _Failed as single:
                    conn = single.conn
                    answers.append((pending, single.error))
                else:
                    answers.append((pending, None))
            self._answer(answers)
            return conn
        self._answer([(pending, None) for pending in batch])
        return conn

    @staticmethod
    def _answer(answers: list[tuple[_Pending, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, BaseException | None]]]
        by_loop = {}
        for pending, error in answers:
            by_loop.setdefault(pending.loop, []).append((pending, error))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the request's loop is gone (server shut down)
                pass


def _settle(answers: list[tuple[_Pending, BaseException | None]]) -> None:
    for pending, error in answers:
        if pending.future.done():
            continue
        if error is None:
            pending.future.set_result(None)
        else:
            pending.future.set_exception(error)
