"""The app's event log: what the cancel flow writes, and the documented schemas."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from stayflow.cancel_sessions import service as sessions
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction, utcnow
from stayflow.events.models import Event
from stayflow.events.schemas import EVENT_MODELS, render_doc
from tests.billing_actions.helpers import make_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def test_the_documented_schemas_are_current():
    doc = DOC.read_text()
    assert render_doc(doc) == doc, "run: python -m stayflow.events.schemas docs/webhooks.md"


def log(factory, app_pk):
    with factory() as db:
        rows = db.scalars(select(Event).where(Event.app_pk == app_pk).order_by(Event.id)).all()
    for row in rows:
        EVENT_MODELS[row.type].model_validate(row.data)  # every event matches its schema
    return [(r.type, r.data) for r in rows]


def test_each_outcome_writes_its_events(session_factory, settings, owner):
    env = make_env(session_factory, settings, owner.app_id)
    env.set_flows(
        [
            {"id": "docs", "type": "redirect", "url": "https://app.example.com/help"},
            {"id": "off", "type": "discount", "coupon": "co_20"},
        ]
    )
    saved = env.accept("sub_1", "docs")
    canceled = env.cancel("sub_2", comment="too dear")
    with transaction(session_factory) as db:
        cs = env._session(db, "sub_3")
        sessions.deflect(db, cs, sessions.snapshot(cs), utcnow())
        deflected = cs.session_id
    env.run_jobs()  # the cancel's billing job: no Stripe connection, so skipped
    events = log(session_factory, env.app_pk)
    of = {}
    for type_, data in events:
        of.setdefault(data["session_id"], []).append((type_, data))
    assert [t for t, _ in of[saved]] == ["session.created", "session.saved", "session.completed"]
    assert of[saved][1][1]["offer"]["id"] == "docs"
    assert of[saved][1][1]["outcome"] == "redirected"
    assert [t for t, _ in of[canceled]] == [
        "session.created",
        "session.canceled",
        "session.completed",
    ]
    assert of[canceled][1][1]["reason_id"] == "too_expensive"
    assert of[canceled][1][1]["comment"] == "too dear"
    completed = of[canceled][2][1]
    assert completed["billing"]["action"] == "cancel"
    assert completed["billing"]["status"] == "skipped"
    assert completed["app_id"] == owner.app_id
    assert completed["subscription_id"] == "sub_2"
    assert completed["experience_id"] == "default"
    assert completed["offers_shown"] == ["docs", "off"]
    assert [t for t, _ in of[deflected]] == [
        "session.created",
        "session.deflected",
        "session.completed",
    ]
    assert of[deflected][2][1]["billing"] is None


def test_an_abandoned_session_never_opened_gets_created_and_abandoned(
    session_factory, settings, owner
):
    env = make_env(session_factory, settings, owner.app_id)
    env.set_flows([])
    with transaction(session_factory) as db:
        cs = env._session(db, "sub_9")
        opened = cs.session_id
        db.execute(
            update(CancelSession)
            .where(CancelSession.id == cs.id)
            .values(abandon_at=utcnow() - timedelta(minutes=1))
        )
        never = CancelSession(
            session_id="cs_never",
            app_pk=env.app_pk,
            token_hash="f" * 64,
            subscription_id="sub_10",
            save_return_url="https://app.example.com/a",
            cancel_confirmation_url="https://app.example.com/b",
            expires_at=utcnow() + timedelta(hours=1),
            abandon_at=utcnow() - timedelta(minutes=1),
        )
        db.add(never)
    with transaction(session_factory) as db:
        assert sessions.mark_abandoned(db, utcnow()) == 2
    with transaction(session_factory) as db:
        assert sessions.mark_abandoned(db, utcnow()) == 0
    events = [(t, d["session_id"]) for t, d in log(session_factory, env.app_pk)]
    assert events.count(("session.created", opened)) == 1
    assert events.count(("session.abandoned", opened)) == 1
    assert events.count(("session.created", "cs_never")) == 1
    assert events.count(("session.abandoned", "cs_never")) == 1
    # Coming back to an abandoned session does not create it twice.
    with transaction(session_factory) as db:
        back = db.scalar(select(CancelSession).where(CancelSession.session_id == "cs_never"))
        from stayflow.apps.models import App
        from stayflow.cancel_sessions.enrichment import NoEnrichment

        app = db.get(App, env.app_pk)
        sessions.ensure_assigned(db, back, app, NoEnrichment(), utcnow())
    events = [(t, d["session_id"]) for t, d in log(session_factory, env.app_pk)]
    assert events.count(("session.created", "cs_never")) == 1
