"""Versions of an app's flows: every change kept (API, CLI), history, restore, draft/publish,
the version a cancel session was shown, and the migration that made each app's flows version 1.
On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from alembic import command
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select, text

from stayflow.cancel_sessions.models import CancelSession
from stayflow.cli.main import main
from stayflow.db import alembic_config, make_engine, migrate
from stayflow.flows.models import FlowConfig, FlowVersion
from stayflow.settings import Settings
from tests.cancel_flow.helpers import FLOWS_YAML, apply_flows, configure, start_session
from tests.conftest import (
    TEST_SECRET_KEY,
    create_pg_database,
    drop_pg_database,
    require_postgres,
)

FLOWS = yaml.safe_load(FLOWS_YAML)


def _changed(title: str) -> dict[str, Any]:
    doc = copy.deepcopy(FLOWS)
    doc["experiences"][1]["title"] = title
    return doc


def _key_id(client, tenant) -> str:
    keys = client.get("/api/v1/api-keys", headers=tenant.headers).json()
    listed = keys["data"] if isinstance(keys, dict) else keys
    return str(listed[0]["key_id"])


def test_every_api_change_is_a_version_with_who_why_and_diff(client, owner):
    h = owner.headers
    first = client.put("/api/v1/flows?message=first%20cut", json=FLOWS, headers=h).json()
    assert first["version"] == 1 and first["draft"] is False
    second = client.put("/api/v1/flows", json=_changed("Wait!"), headers=h).json()
    assert second["version"] == 2
    # No change, no version.
    assert client.put("/api/v1/flows", json=_changed("Wait!"), headers=h).json()["version"] == 2
    item = client.put(
        "/api/v1/flows/reasons/other?message=one%20more",
        json={"label": "Something else"},
        headers=h,
    ).json()
    assert item["version"] == 3

    listed = client.get("/api/v1/flows/versions", headers=h).json()
    assert listed["live_version"] == 3
    assert [v["number"] for v in listed["data"]] == [3, 2, 1]
    author = f"api key {_key_id(client, owner)}"
    assert {v["author"] for v in listed["data"]} == {author}
    assert [v["message"] for v in listed["data"]] == ["one more", None, "first cut"]
    assert [v["live"] for v in listed["data"]] == [True, False, False]
    older = client.get("/api/v1/flows/versions?before=3&limit=1", headers=h).json()
    assert [v["number"] for v in older["data"]] == [2]

    v2 = client.get("/api/v1/flows/versions/2", headers=h).json()
    assert v2["flows"]["experiences"][1]["title"] == "Wait!"
    assert "+  title: Wait!" in v2["diff"]
    assert [ln for ln in v2["diff"].splitlines() if ln.startswith("+ ")] == ["+  title: Wait!"]
    v1 = client.get("/api/v1/flows/versions/1", headers=h).json()
    assert v1["diff"].startswith("--- current\n+++ new\n") and "+reasons:" in v1["diff"]


def test_restore_makes_a_new_version_or_a_draft(client, owner):
    h = owner.headers
    client.put("/api/v1/flows", json=FLOWS, headers=h)
    client.put("/api/v1/flows", json=_changed("Wait!"), headers=h)
    restored = client.post("/api/v1/flows/versions/1/restore", headers=h)
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 3 and restored.json()["changed"] is True
    live = client.get("/api/v1/flows", headers=h).json()
    assert live["version"] == 3 and "title" not in live["flows"]["experiences"][1]
    v3 = client.get("/api/v1/flows/versions/3", headers=h).json()
    assert v3["message"] == "restored version 1" and "-  title: Wait!" in v3["diff"]
    # Restoring what is live already changes nothing.
    again = client.post("/api/v1/flows/versions/3/restore", headers=h).json()
    assert again["changed"] is False and again["version"] == 3

    as_draft = client.post("/api/v1/flows/versions/2/restore?draft=true", headers=h).json()
    assert as_draft["draft"] is True and as_draft["version"] == 3
    assert client.get("/api/v1/flows", headers=h).json()["version"] == 3
    draft = client.get("/api/v1/flows/draft", headers=h).json()
    assert draft["flows"]["experiences"][1]["title"] == "Wait!"
    assert draft["message"] == "restored version 2" and draft["base_version"] == 3

    for path in ("/api/v1/flows/versions/99", "/api/v1/flows/versions/99/restore"):
        call = client.get if path.endswith("99") else client.post
        missing = call(path, headers=h)
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "version_not_found"


def test_draft_save_read_publish_discard(client, owner):
    h = owner.headers
    client.put("/api/v1/flows", json=FLOWS, headers=h)
    assert client.get("/api/v1/flows/draft", headers=h).status_code == 404
    nothing = client.post("/api/v1/flows/publish", headers=h)
    assert nothing.status_code == 409 and nothing.json()["error"]["type"] == "no_draft"
    assert client.delete("/api/v1/flows/draft", headers=h).status_code == 404

    saved = client.put(
        "/api/v1/flows?draft=true&message=new%20title", json=_changed("Hold on"), headers=h
    )
    assert saved.status_code == 200 and saved.json()["draft"] is True
    assert saved.json()["version"] == 1 and "+  title: Hold on" in saved.json()["diff"]
    live = client.get("/api/v1/flows", headers=h).json()
    assert live["version"] == 1 and "title" not in live["flows"]["experiences"][1]
    assert [
        v["number"] for v in client.get("/api/v1/flows/versions", headers=h).json()["data"]
    ] == [1]
    draft = client.get("/api/v1/flows/draft", headers=h).json()
    assert draft["message"] == "new title" and draft["live_version"] == 1
    assert draft["author"].startswith("api key ")

    # An item saved into the draft changes the draft, not the live flows.
    client.put(
        "/api/v1/flows/reasons/other?draft=true", json={"label": "Something else"}, headers=h
    )
    assert len(client.get("/api/v1/flows/draft", headers=h).json()["flows"]["reasons"]) == 3
    assert len(client.get("/api/v1/flows", headers=h).json()["flows"]["reasons"]) == 2

    published = client.post("/api/v1/flows/publish", headers=h)
    assert published.status_code == 200, published.text
    assert published.json()["version"] == 2
    live = client.get("/api/v1/flows", headers=h).json()
    assert live["flows"]["experiences"][1]["title"] == "Hold on"
    assert len(live["flows"]["reasons"]) == 3
    assert client.get("/api/v1/flows/versions/2", headers=h).json()["message"] == "new title"
    assert client.get("/api/v1/flows/draft", headers=h).status_code == 404

    client.put("/api/v1/flows?draft=true", json=FLOWS, headers=h)
    assert client.delete("/api/v1/flows/draft", headers=h).status_code == 204
    assert client.get("/api/v1/flows/draft", headers=h).status_code == 404
    assert client.get("/api/v1/flows", headers=h).json()["version"] == 2


def test_a_bad_draft_is_refused_like_a_bad_live_change(client, owner):
    h = owner.headers
    client.put("/api/v1/flows", json=FLOWS, headers=h)
    bad = copy.deepcopy(FLOWS)
    bad["experiences"][1]["offers"] = ["no_such_offer"]
    refused = client.put("/api/v1/flows?draft=true", json=bad, headers=h)
    assert refused.status_code == 422 and "no_such_offer" in refused.json()["error"]["message"]
    unsigned = copy.deepcopy(FLOWS)
    unsigned["audiences"].append(
        {"id": "seats", "rule": {"field": "custom.seats", "op": "equals", "value": 3}}
    )
    unsigned["experiences"].insert(0, {"id": "by_seats", "audience": "seats"})
    refused = client.put("/api/v1/flows?draft=true", json=unsigned, headers=h)
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "unsigned_targeting"
    too_long = client.put("/api/v1/flows?draft=true&message=" + "x" * 501, json=FLOWS, headers=h)
    assert too_long.status_code in (400, 422)
    assert client.get("/api/v1/flows/draft", headers=h).status_code == 404


def test_another_app_sees_none_of_it(client, owner, other):
    client.put("/api/v1/flows", json=FLOWS, headers=owner.headers)
    client.put("/api/v1/flows?draft=true", json=_changed("x"), headers=owner.headers)
    assert client.get("/api/v1/flows/versions", headers=other.headers).json()["data"] == []
    assert client.get("/api/v1/flows/versions/1", headers=other.headers).status_code == 404
    assert client.post("/api/v1/flows/versions/1/restore", headers=other.headers).status_code == 404
    assert client.get("/api/v1/flows/draft", headers=other.headers).status_code == 404
    assert client.post("/api/v1/flows/publish", headers=other.headers).status_code == 409
    assert client.get("/api/v1/flows/draft", headers=owner.headers).status_code == 200


def test_a_session_keeps_the_version_it_was_shown(client, owner, session_factory):
    configure(client, owner)
    apply_flows(client, owner)
    first = start_session(client, owner, subscription_id="sub_first")
    assert client.get(f"/c/{first}").status_code == 200
    client.put("/api/v1/flows", json=_changed("Wait!"), headers=owner.headers)
    second = start_session(client, owner, subscription_id="sub_second")
    assert "Wait!" in client.get(f"/c/{second}").text
    unopened = start_session(client, owner, subscription_id="sub_unopened")
    assert unopened
    with session_factory() as db:
        shown = dict(
            db.execute(select(CancelSession.subscription_id, CancelSession.flow_version)).all()
        )
    assert shown == {"sub_first": 1, "sub_second": 2, "sub_unopened": None}
    listed = client.get("/api/v1/cancel-sessions", headers=owner.headers).json()["data"]
    assert {s["subscription_id"]: s["flow_version"] for s in listed} == shown


def _cli(database_url: str, *args: str, input: str | None = None):
    env = {"STAYFLOW_DATABASE_URL": database_url, "STAYFLOW_SECRET_KEY": TEST_SECRET_KEY}
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_cli_history_draft_publish_rollback_discard(client, owner, database_url, tmp_path):
    app = owner.app_id
    source = tmp_path / "flows.yaml"
    source.write_text(FLOWS_YAML)
    applied = _cli(database_url, "flows", "apply", str(source), "--app", app, "-y", "-m", "first")
    assert applied.exit_code == 0, applied.output
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(_changed("Hold on")))
    drafted = _cli(
        database_url, "flows", "apply", str(changed), "--app", app, "--draft", "-m", "title", "-y"
    )
    assert drafted.exit_code == 0, drafted.output
    assert "saved the draft (live: version 1)" in drafted.output
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 1

    history = _cli(database_url, "flows", "history", "--app", app)
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert lines[0].startswith(" draft") and "title" in lines[0] and "cli" in lines[0]
    assert lines[1].startswith("*    1") and lines[1].endswith("cli  first")

    refused = _cli(database_url, "flows", "publish", "--app", app, input="n\n")
    assert refused.exit_code == 1 and "+  title: Hold on" in refused.output
    published = _cli(database_url, "flows", "publish", "--app", app, "-y")
    assert published.exit_code == 0, published.output
    assert "applied: version 2" in published.output
    again = _cli(database_url, "flows", "publish", "--app", app, "-y")
    assert again.exit_code == 1 and "no draft" in again.output

    shown = _cli(database_url, "flows", "history", "--app", app, "--diff", "2")
    assert shown.exit_code == 0 and "+  title: Hold on" in shown.output
    assert shown.output.startswith("*    2")

    back = _cli(database_url, "flows", "rollback", "--app", app, "--to", "1", "-y")
    assert back.exit_code == 0, back.output
    assert "-  title: Hold on" in back.output and "applied: version 3" in back.output
    v3 = client.get("/api/v1/flows/versions/3", headers=owner.headers).json()
    assert v3["author"] == "cli" and v3["message"] == "restored version 1"
    same = _cli(database_url, "flows", "rollback", "--app", app, "--to", "1", "-y")
    assert same.exit_code == 0 and "no changes" in same.output

    as_draft = _cli(database_url, "flows", "rollback", "--app", app, "--to", "2", "--draft", "-y")
    assert as_draft.exit_code == 0 and "saved the draft" in as_draft.output
    discarded = _cli(database_url, "flows", "discard", "--app", app)
    assert discarded.exit_code == 0 and "draft discarded" in discarded.output
    nothing = _cli(database_url, "flows", "discard", "--app", app)
    assert nothing.exit_code == 1 and "no draft" in nothing.output

    missing = _cli(database_url, "flows", "rollback", "--app", app, "--to", "9", "-y")
    assert missing.exit_code == 1 and "no version 9" in missing.output
    missing = _cli(database_url, "flows", "history", "--app", app, "--diff", "9")
    assert missing.exit_code == 1 and "no version 9" in missing.output
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_migration_makes_each_apps_flows_its_version_1(backend, tmp_path):
    if backend == "postgres":
        require_postgres()
        url = create_pg_database("stayflow_versions")
    else:
        url = f"sqlite:///{tmp_path}/migrate.db"
    engine = make_engine(Settings(database_url=url, secret_key=TEST_SECRET_KEY))
    try:
        migrate(engine, "0007_admin")
        doc = {"reasons": [{"id": "a", "label": "A"}]}
        with engine.begin() as conn:
            for pk, name in ((1, "with_flows"), (2, "untouched"), (3, "never_changed")):
                conn.execute(
                    text(
                        "INSERT INTO apps (id, app_id, name, secret_encrypted, settings, "
                        "created_at) VALUES (:pk, :aid, :name, 'x', '{}', '2026-11-30 10:00:00')"
                    ),
                    {"pk": pk, "aid": f"app_{name}", "name": name},
                )
            insert_config = text(
                "INSERT INTO flow_configs (app_pk, document, version, updated_at) "
                "VALUES (:pk, :doc, :version, '2026-11-30 11:00:00')"
            )
            conn.execute(
                insert_config,
                {"pk": 1, "doc": '{"reasons": [{"id": "a", "label": "A"}]}', "version": 7},
            )
            conn.execute(insert_config, {"pk": 3, "doc": "{}", "version": 0})
            conn.execute(
                text(
                    "INSERT INTO cancel_sessions (session_id, app_pk, token_hash, subscription_id, "
                    "signed, request_fields, signed_fields, enriched_fields, experience_id, flow, "
                    "offers_shown, created_at, expires_at, abandon_at) VALUES ('cs_1', 1, 'h', "
                    "'sub_1', true, '{}', '{}', '{}', 'default', '{}', '[]', "
                    "'2026-11-30 12:00:00', '2026-11-30 13:00:00', '2026-11-30 13:00:00')"
                )
            )
        migrate(engine)
        factory_engine = create_engine(url)
        with factory_engine.connect() as conn:
            rows = conn.execute(
                select(
                    FlowVersion.app_pk,
                    FlowVersion.number,
                    FlowVersion.author,
                    FlowVersion.document,
                    FlowVersion.diff,
                )
            ).all()
            configs = dict(conn.execute(select(FlowConfig.app_pk, FlowConfig.version)).all())
            shown = conn.execute(select(CancelSession.flow_version)).scalar_one()
        factory_engine.dispose()
        assert [(r.app_pk, r.number, r.author, r.document) for r in rows] == [
            (1, 1, "migration", doc)
        ]
        assert "+reasons:" in rows[0].diff
        assert configs == {1: 1, 3: 0}
        assert shown == 1
        config = alembic_config(engine)
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0007_admin")
            conn.commit()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM flow_configs WHERE app_pk = 1")).scalar()
            assert "flow_versions" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()
        if backend == "postgres":
            drop_pg_database(url)


def test_a_version_todays_schema_no_longer_reads_is_shown_and_refused_not_a_500(
    client, owner, session_factory
):
    """A version saved under an older schema (made here by writing the row directly, since
    only a schema change produces it): shown as stored, a restore refused with the reason."""
    from stayflow.apps.repository import get_app_by_public_id
    from stayflow.db import transaction

    client.put("/api/v1/flows", json=FLOWS, headers=owner.headers)
    old = {"reasons": [{"id": "a", "label": "A", "retired_key": True}]}
    with transaction(session_factory) as db:
        app = get_app_by_public_id(db, owner.app_id)
        assert app is not None
        db.add(FlowVersion(app_pk=app.id, number=99, author="cli", document=old, diff=""))
    shown = client.get("/api/v1/flows/versions/99", headers=owner.headers)
    assert shown.status_code == 200 and shown.json()["flows"] == old
    refused = client.post("/api/v1/flows/versions/99/restore", headers=owner.headers)
    assert refused.status_code == 400 and "retired_key" in refused.json()["error"]["message"]
    assert client.get("/api/v1/flows", headers=owner.headers).json()["version"] == 1


def test_two_one_item_changes_at_once_keep_each_other(client, owner, session_factory):
    """Each one-item change reads the document under the flows' lock: the second waits for
    the first and keeps its item (on PostgreSQL it once wrote back the document it read
    before the first committed, dropping the first's item; SQLite's writer lock hid it)."""
    import threading
    import time

    from stayflow.apps.repository import get_app_by_public_id
    from stayflow.flows import service as flows_service

    apply_flows(client, owner)
    reason = {"label": "Left for a rival", "feedback": "switched_service"}
    first = session_factory()
    try:
        app = get_app_by_public_id(first, owner.app_id)
        assert app is not None
        flows_service.put_item(first, app, "reasons", "rival", reason)  # holds the lock
        failures: list[BaseException] = []

        def second() -> None:
            try:
                with session_factory() as db:
                    other = get_app_by_public_id(db, owner.app_id)
                    assert other is not None
                    flows_service.put_item(db, other, "reasons", "bugs", {"label": "Too buggy"})
                    db.commit()
            except BaseException as exc:  # reported below
                failures.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # the second change is now waiting (or, before the fix, had read)
        first.commit()
        thread.join(30)
        assert not thread.is_alive() and failures == []
    finally:
        first.close()
    reasons = [
        r["id"]
        for r in client.get("/api/v1/flows", headers=owner.headers).json()["flows"]["reasons"]
    ]
    assert reasons == ["too_expensive", "not_using", "rival", "bugs"]


def test_if_match_refuses_a_change_to_what_someone_else_changed_since(client, owner):
    """GET answers an ETag; a PUT or DELETE that names it with If-Match is made only if what
    it replaces is still what was read (412 otherwise, nothing saved); without it, as before."""
    apply_flows(client, owner)
    h = owner.headers
    read = client.get("/api/v1/flows", headers=h)
    tag = read.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"')
    # Someone else changes the flows: our tag is stale now.
    other = client.put("/api/v1/flows", json=_changed("theirs"), headers=h)
    assert other.status_code == 200 and other.headers["ETag"] != tag
    refused = client.put("/api/v1/flows", json=_changed("ours"), headers={**h, "If-Match": tag})
    assert refused.status_code == 412, refused.text
    assert refused.json()["error"]["type"] == "precondition_failed"
    live = client.get("/api/v1/flows", headers=h)
    assert live.json()["flows"]["experiences"][1]["title"] == "theirs"
    # With the fresh tag (GET's, or the last PUT's answer) the change is made.
    assert live.headers["ETag"] == other.headers["ETag"]
    ok = client.put(
        "/api/v1/flows", json=_changed("ours"), headers={**h, "If-Match": live.headers["ETag"]}
    )
    assert ok.status_code == 200, ok.text
    # One item: its own tag, so a change to another item is no conflict.
    path = "/api/v1/flows/reasons/too_expensive"
    item = client.get(path, headers=h)
    item_tag = item.headers["ETag"]
    assert (
        client.put(
            "/api/v1/flows/reasons/not_using", json={"label": "Unused"}, headers=h
        ).status_code
        == 200
    )
    renamed = {**item.json(), "label": "Pricey"}
    assert client.put(path, json=renamed, headers={**h, "If-Match": item_tag}).status_code == 200
    stale = client.put(path, json={**renamed, "label": "Old"}, headers={**h, "If-Match": item_tag})
    assert stale.status_code == 412
    gone = client.delete(path, headers={**h, "If-Match": f"W/{item_tag}"})
    assert gone.status_code == 412
    assert client.get(path, headers=h).json()["label"] == "Pricey"
    # The draft has its tag too; "*" means whatever is there.
    assert (
        client.put("/api/v1/flows?draft=true", json=_changed("draft 1"), headers=h).status_code
        == 200
    )
    draft_tag = client.get("/api/v1/flows/draft", headers=h).headers["ETag"]
    assert (
        client.put(
            "/api/v1/flows?draft=true",
            json=_changed("draft 2"),
            headers={**h, "If-Match": draft_tag},
        ).status_code
        == 200
    )
    assert (
        client.put(
            "/api/v1/flows?draft=true",
            json=_changed("draft 3"),
            headers={**h, "If-Match": draft_tag},
        ).status_code
        == 412
    )
    assert (
        client.put(
            "/api/v1/flows?draft=true", json=_changed("draft 3"), headers={**h, "If-Match": "*"}
        ).status_code
        == 200
    )
