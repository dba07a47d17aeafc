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
import queue
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert

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


class SessionWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statement = insert(CancelSession)
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def write(self, row: dict[str, Any]) -> None:
        """Insert ``row``; returns once it is committed (raises if it could not be)."""
        loop = asyncio.get_running_loop()
        pending = _Pending(row, loop.create_future(), loop)
        self._queue.put(pending)
        self._ensure_thread()
        await pending.future

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="stayflow-precancel-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                try:
                    first = self._queue.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self._lock:
                        # Re-check under the lock: a writer may have queued just now.
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
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
                    conn.execute(self._statement, rows)
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

    def _commit(self, conn: Connection | None, batch: list[_Pending]) -> Connection | None:
        try:
            conn = self._insert(conn, [p.row for p in batch])
        except _Failed as failed:
            conn = failed.conn
            if len(batch) == 1:
                self._answer(batch[0], failed.error)
                return conn
            # One bad row must not fail the others: retry them one by one.
            log.warning("cancel_sessions.batch_insert_failed", extra={"rows": len(batch)})
            for pending in batch:
                try:
                    conn = self._insert(conn, [pending.row])
                except _Failed as single:
                    conn = single.conn
                    self._answer(pending, single.error)
                else:
                    self._answer(pending, None)
            return conn
        for pending in batch:
            self._answer(pending, None)
        return conn

    @staticmethod
    def _answer(pending: _Pending, error: BaseException | None) -> None:
        def settle() -> None:
            if pending.future.done():
                return
            if error is None:
                pending.future.set_result(None)
            else:
                pending.future.set_exception(error)

        try:
            pending.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the request's loop is gone (server shut down)
            pass
