"""Group commit for precancel, and the app cache: concurrency, bad rows, invalidation."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from stayflow.apps.models import App
from stayflow.cancel_sessions.models import CancelSession
from stayflow.cancel_sessions.writer import SessionWriter
from stayflow.db import utcnow
from tests.cancel_flow.helpers import configure, precancel_body


def row(app_pk: int, n: int, session_id: str | None = None) -> dict:
    now = utcnow()
    return {
        "session_id": session_id or f"cs_w{n:06d}",
        "app_pk": app_pk,
        "token_hash": f"{n:064d}",
        "subscription_id": f"sub_{n}",
        "signed": True,
        "request_fields": {"n": n},
        "enriched_fields": {},
        "locale": None,
        "save_return_url": "https://app.example.com/a",
        "cancel_confirmation_url": "https://app.example.com/b",
        "flow": {},
        "offers_shown": [],
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "abandon_at": now + timedelta(hours=1),
    }


def count(session_factory) -> int:
    with session_factory() as db:
        return int(db.scalar(select(func.count()).select_from(CancelSession)))


def test_concurrent_writes_share_commits_and_a_bad_row_fails_alone(engine, session_factory, owner):
    with session_factory() as db:
        app_pk = db.scalar(select(App.id).where(App.app_id == owner.app_id))
    writer = SessionWriter(engine)

    async def main():
        rows = [row(app_pk, n) for n in range(200)]
        rows.append(row(app_pk, 999, session_id="cs_w000007"))  # duplicates a session_id
        return await asyncio.gather(*(writer.write(r) for r in rows), return_exceptions=True)

    results = asyncio.run(main())
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1  # only the duplicate; the rows batched with it are stored
    assert count(session_factory) == 200
    with session_factory() as db:
        stored = db.scalar(select(CancelSession).where(CancelSession.session_id == "cs_w000007"))
        assert stored.subscription_id == "sub_7" and stored.offers_shown == []
        assert stored.created_at.tzinfo is not None


def test_concurrent_writes_share_commits(engine, session_factory, owner):
    """200 requests at once cost one or two commits, not 200: the point of the writer."""
    with session_factory() as db:
        app_pk = db.scalar(select(App.id).where(App.app_id == owner.app_id))
    commits: list[int] = []
    all_queued = threading.Event()

    def on_begin(conn):
        # The writer's first transaction waits until every request has queued its row (an
        # event, not a sleep), so what follows is a fact and not a race: whatever the first
        # batch took, the second takes all the rest.
        assert all_queued.wait(timeout=30)

    inserting: set[int] = set()

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CANCEL_SESSIONS"):
            inserting.add(id(conn))

    def on_commit(conn):
        # Commits that stored rows (the writer's connection also commits its settings once).
        if id(conn) in inserting:
            inserting.discard(id(conn))
            commits.append(1)

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        writer = SessionWriter(engine)

        async def main():
            tasks = [asyncio.ensure_future(writer.write(row(app_pk, n))) for n in range(200)]
            await asyncio.sleep(0)  # one turn of the loop: each task has queued its row
            all_queued.set()
            await asyncio.gather(*tasks)

        asyncio.run(main())
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
    assert count(session_factory) == 200
    assert 1 <= len(commits) <= 2, len(commits)


def test_writer_thread_ends_when_idle_and_comes_back(engine, session_factory, owner, monkeypatch):
    import stayflow.cancel_sessions.writer as writer_module

    monkeypatch.setattr(writer_module, "IDLE_SECONDS", 0.1)
    with session_factory() as db:
        app_pk = db.scalar(select(App.id).where(App.app_id == owner.app_id))
    writer = SessionWriter(engine)
    asyncio.run(writer.write(row(app_pk, 1)))
    thread = writer._thread
    assert thread is not None
    thread.join(timeout=5)
    assert not thread.is_alive() and writer._thread is None
    asyncio.run(writer.write(row(app_pk, 2)))
    assert count(session_factory) == 2


def test_many_concurrent_precancels(client, owner, session_factory):
    configure(client, owner)

    def hit(n: int) -> int:
        body = precancel_body(owner, subscription_id=f"sub_c{n}")
        return client.post("/precancel", json=body).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(hit, range(64)))
    assert codes == [200] * 64
    assert count(session_factory) == 64


def test_settings_changes_reach_precancel_at_once(client, owner):
    configure(client, owner)
    body = precancel_body(owner)
    body.pop("auth_hash")
    assert client.post("/precancel", json=body).status_code == 400  # now cached
    configure(client, owner, allow_unsigned_precancel=True)
    assert client.post("/precancel", json=body).status_code == 200
    configure(client, owner, allow_unsigned_precancel=False)
    assert client.post("/precancel", json=body).status_code == 400


@pytest.mark.parametrize("app_id", ["", "x" * 41, "app_unknown"])
def test_unknown_apps_are_404_or_400(client, app_id):
    body = {
        "app_id": app_id,
        "subscription_id": "s",
        "save_return_url": "x",
        "cancel_confirmation_url": "y",
    }
    response = client.post("/precancel", json=body)
    assert response.status_code in (400, 404) and response.json()["valid"] is False


def test_precancel_takes_its_own_route_and_keeps_metrics(client, owner):
    from stayflow.cancel_sessions.fastpath import PrecancelRoute

    configure(client, owner)
    route = client.app.precancel_route
    assert isinstance(route, PrecancelRoute)
    taken: list[str] = []

    async def watched(scope, receive, send):  # the real route, counted
        taken.append(scope["method"])
        await route(scope, receive, send)

    client.app.precancel_route = watched
    answer = client.post("/precancel", json=precancel_body(owner, subscription_id="sub_fast"))
    assert answer.status_code == 200 and answer.json()["valid"] is True
    assert len(answer.headers["x-request-id"]) == 32
    bad = client.post("/precancel", content=b"not json")
    assert bad.status_code == 400 and bad.json()["valid"] is False
    assert taken == ["POST", "POST"]
    metrics = client.get("/metrics").text
    assert 'stayflow_http_requests_total{method="POST",route="/precancel",status="200"} 1.0' in (
        metrics
    )
    assert 'stayflow_http_requests_total{method="POST",route="/precancel",status="400"} 1.0' in (
        metrics
    )
    assert client.get("/precancel").status_code == 405  # other methods: the router's answer
    assert taken == ["POST", "POST"]


def test_random_bytes_are_never_handed_out_twice_even_across_fork():
    import os

    from stayflow.cancel_sessions.randomness import random_bytes

    seen = {random_bytes(36) for _ in range(500)}  # spans several 4 KiB blocks
    assert len(seen) == 500
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what would it hand out next?
        os.write(write, random_bytes(36))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 36)
    os.close(read)
    os.close(write)
    assert child != random_bytes(36)  # the parent's next bytes: a child must not repeat them


def test_writer_keeps_its_connection_settings_to_itself_and_survives_losing_it(
    engine, session_factory, owner, monkeypatch
):
    from sqlalchemy import text

    import stayflow.cancel_sessions.writer as writer_module

    monkeypatch.setattr(writer_module, "IDLE_SECONDS", 0.1)
    with session_factory() as db:
        app_pk = db.scalar(select(App.id).where(App.app_id == owner.app_id))
    writer = SessionWriter(engine)
    asyncio.run(writer.write(row(app_pk, 1)))
    thread = writer._thread
    if thread is not None:
        thread.join(timeout=10)  # idle: the thread has let its connection go
    if engine.dialect.name == "postgresql":
        # No pooled connection inherits the writer's non-durable commits.
        with engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
            # The database drops every other connection (a restart, a failover, an idle
            # timeout): the writer's next batch must still be stored.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.commit()
    asyncio.run(writer.write(row(app_pk, 2)))
    assert count(session_factory) == 2


def test_the_writers_insert_stores_what_sqlalchemys_insert_stores(engine, session_factory, owner):
    """The writer hands the driver values it made itself (one INSERT text, SQLAlchemy's bind
    processors): column by column, the stored values must be those of SQLAlchemy's insert."""
    from sqlalchemy import insert

    with session_factory() as db:
        app_pk = db.scalar(select(App.id).where(App.app_id == owner.app_id))
    base = row(app_pk, 1)
    full = {
        **base,
        "request_fields": {"custom": {"seats": 3, "name": "Zoë"}, "a.b": [1, None, 2.5]},
        "signed_fields": {"plan": {"tier": "gold"}},
        "locale": "fr",
        "save_return_url": None,
    }
    cases = {"without signed_fields (its default)": base, "every field": full}
    columns = [c.name for c in CancelSession.__table__.c if c.name not in ("id", "session_id")]
    columns.remove("token_hash")
    writer = SessionWriter(engine)
    stored: dict[str, list[tuple]] = {}
    for n, (name, values) in enumerate(cases.items()):
        ours = {**values, "session_id": f"cs_ours{n}", "token_hash": f"ours{n}"}
        theirs = {**values, "session_id": f"cs_theirs{n}", "token_hash": f"theirs{n}"}
        asyncio.run(writer.write(ours))
        with engine.begin() as conn:
            conn.execute(insert(CancelSession), [theirs])
        with engine.connect() as conn:
            for who in ("ours", "theirs"):
                stored[f"{name} {who}"] = list(
                    conn.exec_driver_sql(
                        f"SELECT {', '.join(columns)} FROM cancel_sessions "
                        f"WHERE session_id = 'cs_{who}{n}'"
                    ).one()
                )
        ours_row, theirs_row = stored[f"{name} ours"], stored[f"{name} theirs"]
        assert ours_row == theirs_row, name
    with session_factory() as db:
        one = db.scalar(select(CancelSession).where(CancelSession.session_id == "cs_ours1"))
        assert one.request_fields == full["request_fields"]
        assert one.signed_fields == {"plan": {"tier": "gold"}}
        assert one.created_at == full["created_at"] and one.created_at.tzinfo is not None
