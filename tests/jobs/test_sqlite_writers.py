"""Many threads writing one SQLite file: each waits its turn, none fails "database is locked".

Every SQLite transaction begins IMMEDIATE (it takes the write lock up front). SQLite's own
busy handler only polls, sleeping up to 100 ms between tries, so among many threads of one
process a transaction can lose every race until its busy timeout runs out; the claims of a
worker's lane under a burst of deliveries did. Writers of one process queue in turn instead.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from stayflow.db import make_engine, make_session_factory, transaction
from stayflow.settings import Settings
from tests.conftest import TEST_SECRET_KEY

THREADS = 24
TRANSACTIONS = 25


def test_many_writing_threads_queue_instead_of_failing_locked(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", secret_key=TEST_SECRET_KEY)
    # A short busy timeout keeps the test quick; the ratio of waiting to working is the
    # same as a busy lane's with the 30 s default.
    engine = make_engine(settings, sqlite_busy_timeout=1.0)
    factory = make_session_factory(engine)
    with transaction(factory) as db:
        db.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        db.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def writer() -> None:
        start.wait()
        for _ in range(TRANSACTIONS):
            asked = time.monotonic()
            try:
                with transaction(factory) as db:
                    db.execute(text("UPDATE counter SET n = n + 1"))
                    waited = time.monotonic() - asked
                    time.sleep(0.002)  # some work inside the transaction (GIL released)
            except Exception as exc:  # collected and asserted below
                with lock:
                    errors.append(exc)
                continue
            with lock:
                waits.append(waited)

    threads = [threading.Thread(target=writer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with transaction(factory) as db:
        total = db.execute(text("SELECT n FROM counter")).scalar_one()
    engine.dispose()
    assert not errors, f"{len(errors)} transactions failed, e.g. {errors[0]!r}"
    assert total == THREADS * TRANSACTIONS
    # In turn: no writer waits much longer than all the others' work once over.
    assert max(waits) < 0.9, f"a writer waited {max(waits):.2f} s"


def test_a_transaction_that_cannot_get_the_turn_still_fails_locked(tmp_path: Path) -> None:
    """Queueing keeps the busy timeout: a second transaction while one stays open (here in
    the same thread) fails after it, as SQLite's own wait did, rather than hanging."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", secret_key=TEST_SECRET_KEY)
    engine = make_engine(settings, sqlite_busy_timeout=0.3)
    factory = make_session_factory(engine)
    try:
        with transaction(factory) as first:
            first.execute(text("CREATE TABLE t (n INTEGER)"))
            asked = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked"):
                with transaction(factory) as second:
                    second.execute(text("INSERT INTO t VALUES (1)"))
            assert 0.25 < time.monotonic() - asked < 5
        # The turn was handed back: the next transaction runs at once.
        with transaction(factory) as db:
            db.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        engine.dispose()
