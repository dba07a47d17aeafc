"""Data a business must be able to remove: a whole app, or one subscriber (API and CLI).

Each test fills two apps with the same kinds of rows (every tenant-owned table) and checks
that only the owner's are touched: the other app's rows are compared before and after.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.repository import get_app_by_public_id
from stayflow.attribution.models import AttributionWatch, MirrorInvoice
from stayflow.billing.actions.models import APPLIED, PENDING, BillingAction, BillingEvent
from stayflow.cancel_sessions.models import CancelSession
from stayflow.cli.main import main
from stayflow.db import Base, transaction, utcnow
from stayflow.enrichment.models import FieldMapping
from stayflow.flows.models import FlowConfig
from stayflow.jobs.models import Job
from stayflow.mirror.models import MirrorCustomer, MirrorSubscription, StripeEvent
from tests.conftest import TEST_SECRET_KEY

EMAIL = "ada@example.com"


def _session(app_pk: int, n: int, sub: str, cus: str, **extra: Any) -> CancelSession:
    now = utcnow()
    fields: dict[str, Any] = dict(
        session_id=f"cs_{app_pk}_{n}",
        app_pk=app_pk,
        token_hash=f"{app_pk:032d}{n:032d}",
        subscription_id=sub,
        request_fields={"email": EMAIL, "first_name": "Ada", "account": {"internal_id": "42"}},
        enriched_fields={
            "subscription.id": sub,
            "subscription.status": "active",
            "subscription.plan.amount": 2000,
            "subscription.plan.currency": "usd",
            "subscription.customer.id": cus,
            "subscription.customer.email": EMAIL,
            "subscription.customer.name": "Ada Lovelace",
            "subscription.metadata.user": "u-42",
            "seats": 3,
        },
        locale="en",
        save_return_url=f"https://app.example.com/account?email={EMAIL}",
        cancel_confirmation_url="https://app.example.com/goodbye",
        reason_id="too_expensive",
        reason_feedback="too_expensive",
        reason_comment="Too dear for me, Ada",
        offer_accepted_id="discount20",
        outcome="saved",
        outcome_at=now,
        expires_at=now + timedelta(days=1),
        abandon_at=now + timedelta(hours=1),
    )
    fields.update(extra)
    return CancelSession(**fields)


def populate(db: Session, app_pk: int, sub: str = "sub_ada", cus: str = "cus_ada") -> None:
    """One subscriber with every kind of row, a second one, and the app's own settings."""
    db.add_all(
        [
            _session(app_pk, 1, sub, cus),
            _session(app_pk, 2, sub, cus, outcome="canceled", offer_accepted_id=None),
            _session(app_pk, 3, "sub_bob", "cus_bob", request_fields={"email": "b@x.io"}),
            BillingAction(
                app_pk=app_pk,
                session_id=f"cs_{app_pk}_1",
                kind="apply_offer",
                subscription_id=sub,
                offer_id="discount20",
                offer_type="discount",
                status=APPLIED,
                plan={"type": "discount", "subscription_ids": [sub], "comment": "Too dear"},
                result={"subscriptions": {sub: {"status": "active", "discounts": ["di_1"]}}},
            ),
            BillingEvent(
                app_pk=app_pk,
                type="billing.action.applied",
                data={"session_id": f"cs_{app_pk}_1", "subscription_id": sub, "result": {}},
            ),
            MirrorSubscription(
                app_pk=app_pk,
                subscription_id=sub,
                customer_id=cus,
                status="active",
                raw={"id": sub, "customer": cus, "metadata": {"user": "u-42"}},
                version=1,
                source="webhook",
            ),
            MirrorSubscription(
                app_pk=app_pk,
                subscription_id="sub_bob",
                customer_id="cus_bob",
                status="active",
                raw={"id": "sub_bob"},
                version=1,
                source="webhook",
            ),
            MirrorCustomer(
                app_pk=app_pk, customer_id=cus, email=EMAIL, raw={"email": EMAIL}, version=1
            ),
            StripeEvent(
                app_pk=app_pk,
                event_id=f"evt_{app_pk}",
                type="customer.updated",
                object_id=cus,
                stripe_created=1,
                payload={"data": {"object": {"email": EMAIL}}},
                handled_at=utcnow(),
            ),
            AttributionWatch(
                app_pk=app_pk,
                session_id=f"cs_{app_pk}_1",
                subscription_id=sub,
                customer_id=cus,
                outcome="saved",
                offer_id="discount20",
                session_at=utcnow(),
                window_days=30,
                window_ends_at=utcnow() + timedelta(days=30),
                currency="usd",
                mrr_at_session=2000,
            ),
            MirrorInvoice(
                app_pk=app_pk,
                invoice_id=f"in_{app_pk}",
                subscription_id=sub,
                customer_id=cus,
                status="paid",
                currency="usd",
                amount_paid=2000,
                stripe_created=1,
                version=1,
            ),
            FieldMapping(app_pk=app_pk, field="seats", source="metadata.seats", type="number"),
            FlowConfig(app_pk=app_pk, document={"reasons": []}, version=1),
            Job(
                name="jobs.noop",
                app_pk=app_pk,
                payload={"subscription_id": sub},
                status="succeeded",
            ),
            Job(name="jobs.noop", app_pk=app_pk, payload={"subscription_id": sub}),
        ]
    )


def snapshot(engine: Engine, app_pk: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of an app, every table (ordered), for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            column = "id" if table.name == "apps" else "app_pk"
            if column not in table.c:
                continue
            rows = conn.execute(
                select(table).where(table.c[column] == app_pk).order_by(table.c.id)
            ).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


@pytest.fixture
def two_apps(session_factory: sessionmaker[Session], owner, other) -> tuple[int, int]:
    with transaction(session_factory) as db:
        owner_pk = get_app_by_public_id(db, owner.app_id).id  # type: ignore[union-attr]
        other_pk = get_app_by_public_id(db, other.app_id).id  # type: ignore[union-attr]
        populate(db, owner_pk)
        populate(db, other_pk)
    return owner_pk, other_pk


def test_delete_app_removes_everything_it_owns_and_nothing_else(
    client, owner, other, engine: Engine, two_apps
) -> None:
    owner_pk, other_pk = two_apps
    others_before = snapshot(engine, other_pk)
    assert all(others_before[t] for t in ("cancel_sessions", "jobs", "mirror_customers"))

    unconfirmed = client.delete("/api/v1/app", headers=owner.headers)
    assert unconfirmed.status_code == 400
    assert owner.app_id in unconfirmed.json()["error"]["message"]
    wrong = client.delete(f"/api/v1/app?confirm={other.app_id}", headers=owner.headers)
    assert wrong.status_code == 400
    assert snapshot(engine, owner_pk)["apps"]  # nothing deleted yet

    deleted = client.delete(f"/api/v1/app?confirm={owner.app_id}", headers=owner.headers)
    assert deleted.status_code == 200, deleted.text
    rows = deleted.json()["rows"]
    for table in (
        "api_keys",
        "cancel_sessions",
        "billing_actions",
        "billing_events",
        "mirror_subscriptions",
        "mirror_customers",
        "stripe_events",
        "field_mappings",
        "flow_configs",
        "attribution_watches",
        "mirror_invoices",
        "jobs",
        "apps",
    ):
        assert rows.get(table), table
    assert all(rows_ == [] for rows_ in snapshot(engine, owner_pk).values())
    assert snapshot(engine, other_pk) == others_before
    # The key died with its app; the other app's key works.
    assert client.get("/api/v1/app", headers=owner.headers).status_code == 401
    assert client.get("/api/v1/app", headers=other.headers).status_code == 200


def test_deleting_a_connected_app_removes_its_webhook_endpoint_in_stripe(
    settings, sandbox, stripe_client, owner, other
) -> None:
    from fastapi.testclient import TestClient

    from stayflow.app import create_app

    app = create_app(settings.model_copy(update={"stripe_api_base": sandbox.url}))
    with TestClient(app) as client:
        for tenant in (owner, other):
            put = client.put(
                "/api/v1/billing/stripe",
                json={"api_key": sandbox.secret_key},
                headers=tenant.headers,
            )
            assert put.status_code == 200, put.text
        endpoints = stripe_client.v1.webhook_endpoints.list().data
        assert len(endpoints) == 2
        deleted = client.delete(f"/api/v1/app?confirm={owner.app_id}", headers=owner.headers)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["rows"]["billing_connections"] == 1
        left = stripe_client.v1.webhook_endpoints.list().data
        assert [e.url for e in left] == [e.url for e in endpoints if other.app_id in e.url]
        assert client.get("/api/v1/billing/stripe", headers=other.headers).json()["connected"]


def test_erase_by_subscription_keeps_anonymous_counts(
    client, owner, engine: Engine, session_factory, two_apps
) -> None:
    owner_pk, other_pk = two_apps
    others_before = snapshot(engine, other_pk)
    erased = client.post(
        "/api/v1/subscribers/erase", json={"subscription_id": "sub_ada"}, headers=owner.headers
    )
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["subscription_ids"] == ["sub_ada"] and body["customer_ids"] == ["cus_ada"]
    assert body["counts"] == {
        "cancel_sessions": 2,
        "billing_actions": 1,
        "billing_events": 1,
        "mirror_subscriptions": 1,
        "mirror_customers": 1,
        "stripe_events": 1,
        "jobs": 1,
        "webhook_attempts": 0,
        "attribution_watches": 1,
        "mirror_invoices": 1,
    }
    with session_factory() as db:
        sessions = db.scalars(
            select(CancelSession).where(CancelSession.app_pk == owner_pk).order_by(CancelSession.id)
        ).all()
        ada, ada2, bob = sessions
        # Anonymous counts stay: outcome, reason, offer, amounts, plan.
        assert (ada.outcome, ada.reason_id, ada.offer_accepted_id) == (
            "saved",
            "too_expensive",
            "discount20",
        )
        assert ada2.outcome == "canceled"
        assert ada.enriched_fields == {
            "subscription.status": "active",
            "subscription.plan.amount": 2000,
            "subscription.plan.currency": "usd",
        }
        for cs in (ada, ada2):
            assert cs.request_fields == {} and cs.reason_comment is None
            assert cs.subscription_id == "[erased]" and EMAIL not in cs.save_return_url
        # Another subscriber of the same app is untouched.
        assert bob.subscription_id == "sub_bob" and bob.request_fields == {"email": "b@x.io"}
        action = db.scalars(select(BillingAction).where(BillingAction.app_pk == owner_pk)).one()
        assert action.subscription_id == "[erased]" and action.offer_type == "discount"
        assert "sub_ada" not in json.dumps([action.plan, action.result])
        assert "comment" not in action.plan
        watch = db.scalars(
            select(AttributionWatch).where(AttributionWatch.app_pk == owner_pk)
        ).one()
        assert (watch.outcome, watch.mrr_at_session, watch.subscription_id) == (
            "saved",
            2000,
            "[erased]",
        )
        assert watch.customer_id is None
        event = db.scalars(select(BillingEvent).where(BillingEvent.app_pk == owner_pk)).one()
        assert "sub_ada" not in json.dumps(event.data)
        assert [
            m.subscription_id
            for m in db.scalars(
                select(MirrorSubscription).where(MirrorSubscription.app_pk == owner_pk)
            )
        ] == ["sub_bob"]
        assert (
            db.scalars(select(MirrorCustomer).where(MirrorCustomer.app_pk == owner_pk)).all() == []
        )
        stripe_event = db.scalars(select(StripeEvent).where(StripeEvent.app_pk == owner_pk)).one()
        assert stripe_event.payload == {} and stripe_event.type == "customer.updated"
    # Nothing of Ada's is left in any of the owner's rows (Bob's session and mirror row stay).
    rows = snapshot(engine, owner_pk)
    rows["cancel_sessions"] = [r for r in rows["cancel_sessions"] if "sub_bob" not in r]
    rows["mirror_subscriptions"] = []
    # A queued job still needs its payload to run; only finished jobs are history.
    rows["jobs"] = [r for r in rows["jobs"] if "queued" not in r]
    dump = json.dumps(rows, default=str)
    for trace in (EMAIL, "Ada", "sub_ada", "cus_ada", "u-42", "Too dear"):
        assert trace not in dump, [
            (table, row) for table, rs in rows.items() for row in rs if trace in str(row)
        ]
    assert snapshot(engine, other_pk) == others_before


def test_erase_by_customer_and_again_and_bad_requests(
    client, owner, engine: Engine, session_factory, two_apps
) -> None:
    owner_pk, other_pk = two_apps
    others_before = snapshot(engine, other_pk)
    erased = client.post(
        "/api/v1/subscribers/erase", json={"customer_id": "cus_ada"}, headers=owner.headers
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["subscription_ids"] == ["sub_ada"]
    assert erased.json()["counts"]["cancel_sessions"] == 2
    with session_factory() as db:
        left = db.scalars(
            select(CancelSession.reason_comment).where(CancelSession.app_pk == owner_pk)
        ).all()
    assert sorted(left, key=str) == sorted([None, None, "Too dear for me, Ada"], key=str)
    again = client.post(
        "/api/v1/subscribers/erase", json={"customer_id": "cus_ada"}, headers=owner.headers
    )
    assert again.status_code == 200 and again.json()["counts"]["cancel_sessions"] == 0
    for bad in ({}, {"subscription_id": "sub_ada", "customer_id": "cus_ada"}):
        refused = client.post("/api/v1/subscribers/erase", json=bad, headers=owner.headers)
        assert refused.status_code == 400, refused.text
        assert "exactly one" in refused.json()["error"]["message"]
    assert snapshot(engine, other_pk) == others_before


def test_erase_waits_for_a_pending_billing_action(client, owner, session_factory, two_apps) -> None:
    owner_pk, _ = two_apps
    with transaction(session_factory) as db:
        db.add(
            BillingAction(
                app_pk=owner_pk,
                session_id=f"cs_{owner_pk}_2",
                kind="cancel",
                subscription_id="sub_ada",
                status=PENDING,
            )
        )
    refused = client.post(
        "/api/v1/subscribers/erase", json={"subscription_id": "sub_ada"}, headers=owner.headers
    )
    assert refused.status_code == 409
    with session_factory() as db:
        kept = db.scalars(
            select(CancelSession.subscription_id).where(CancelSession.app_pk == owner_pk)
        ).all()
    assert kept.count("sub_ada") == 2  # nothing erased


def test_cli_delete_and_erase(
    monkeypatch, database_url: str, engine: Engine, owner, other, two_apps
) -> None:
    owner_pk, other_pk = two_apps
    monkeypatch.setenv("STAYFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("STAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    others_before = snapshot(engine, other_pk)
    runner = CliRunner()

    erased = runner.invoke(
        main, ["apps", "erase-subscriber", owner.app_id, "--customer", "cus_ada"]
    )
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["counts"]["cancel_sessions"] == 2
    neither = runner.invoke(main, ["apps", "erase-subscriber", owner.app_id])
    assert neither.exit_code == 1 and "exactly one" in neither.output

    unknown = runner.invoke(main, ["apps", "delete", "app_nope", "--yes"])
    assert unknown.exit_code == 1 and "no app" in unknown.output
    declined = runner.invoke(main, ["apps", "delete", owner.app_id], input="something else\n")
    assert declined.exit_code == 1 and "nothing was deleted" in declined.output
    assert snapshot(engine, owner_pk)["apps"]
    confirmed = runner.invoke(main, ["apps", "delete", owner.app_id], input=f"{owner.app_id}\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert json.loads(confirmed.output.splitlines()[-1])["rows"]["cancel_sessions"] == 3
    assert all(rows == [] for rows in snapshot(engine, owner_pk).values())
    assert snapshot(engine, other_pk) == others_before
