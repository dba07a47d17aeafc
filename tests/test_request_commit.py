"""A request's writes are committed before its answer is sent.

FastAPI ends a ``yield`` dependency after the response is sent unless it is declared with
``scope="function"``: the client could then read before the commit (a race seen on
PostgreSQL: a cancel right after its reason found no reason), and a failing commit would
come after a 2xx. Here the answer's first message is held until the test has looked at the
database from another connection, so the check does not depend on timing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from sqlalchemy import func, select

from stayflow.apps.models import ApiKey


def _count_keys(settings: Any, session_factory: Any, name: str) -> int:
    """From another connection; on SQLite a plain reader (the app's engine takes the write
    lock on BEGIN, which an uncommitted writer holds)."""
    if settings.database_url.startswith("sqlite"):
        with sqlite3.connect(settings.sqlite_path) as conn:
            row = conn.execute("SELECT count(*) FROM api_keys WHERE name = ?", (name,)).fetchone()
            return int(row[0])
    with session_factory() as db:
        found = db.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.name == name))
        return int(found or 0)


def test_the_write_is_visible_when_the_answer_starts(client, owner, settings, session_factory):
    seen: list[int] = []
    sent: list[dict[str, Any]] = []
    body = json.dumps({"name": "committed-first"}).encode()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen.append(_count_keys(settings, session_factory, "committed-first"))
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/api-keys",
        "raw_path": b"/api/v1/api-keys",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", owner.headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(asyncio.wait_for(client.app(scope, receive, send), timeout=30))
    assert sent[0]["status"] == 201
    assert seen == [1]
