"""Experiments with a holdout: assignment, the report's verdicts, ending and promoting."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.models import App
from stayflow.attribution import service as attribution
from stayflow.attribution.models import AttributionWatch
from stayflow.db import transaction
from stayflow.flows import service as flows_service
from stayflow.flows.assignment import choose
from stayflow.flows.schemas import FlowsDocument
from stayflow.reports import experiments, service
from tests.conftest import Tenant
from tests.reports.helpers import BASE, app_pk, finish, new_session

FLOWS = {
    "reasons": [{"id": "too_expensive", "label": "Too expensive", "feedback": "too_expensive"}],
    "offers": [
        {"id": "off20", "type": "discount", "coupon": "c20"},
    ],
    "experiences": [
        {"id": "default", "offers": []},
        {"id": "discount", "offers": ["off20"]},
    ],
    "experiments": [
        {
            "id": "exp1",
            "variants": [
                {"id": "holdout", "holdout": True, "weight": 1},
                {"id": "b", "experience": "discount", "weight": 1},
            ],
        }
    ],
}


def test_a_holdout_variant_gets_no_offers_and_no_questions() -> None:
    doc = FlowsDocument.model_validate(FLOWS)
    seen = {}
    for i in range(60):
        snap = choose(doc, {}, app_id="app_x", subscription_id=f"sub_{i}", now=datetime.now(UTC))
        seen[snap.variant_id] = snap
    assert set(seen) == {"holdout", "b"}
    assert (
        seen["holdout"].holdout and seen["holdout"].offers == [] and seen["holdout"].reasons == []
    )
    assert seen["holdout"].experience.id == "default"
    assert [o.id for o in seen["b"].offers] == ["off20"] and not seen["b"].holdout


def test_a_variant_needs_an_experience_unless_it_is_a_holdout() -> None:
    bad = {**FLOWS, "experiments": [{"id": "e", "variants": [{"id": "x"}]}]}
    with pytest.raises(flows_service.InvalidFlows, match="needs an experience"):
        flows_service.validate(bad)
    two = {
        **FLOWS,
        "experiments": [
            {"id": "e", "variants": [{"id": "h1", "holdout": True}, {"id": "h2", "holdout": True}]}
        ],
    }
    with pytest.raises(flows_service.InvalidFlows, match="at most one holdout"):
        flows_service.validate(two)


def _run(
    db: Session, pk: int, rng: random.Random, variant: str, n: int, save_p: float, start: int
) -> None:
    for i in range(n):
        cs = new_session(
            db,
            pk,
            f"sub_{variant}_{start + i}",
            BASE + timedelta(days=rng.randrange(0, 20)),
            experience="discount" if variant == "b" else "default",
            experiment="exp1",
            variant=variant,
            offers_shown=["off20"] if variant == "b" else [],
        )
        if variant == "b" and rng.random() < save_p:
            finish(db, cs, "saved", offer="off20")
        else:
            finish(db, cs, "canceled", reason="too_expensive")
    attribution.enroll(db, pk)
    # MRR kept by each save (as attribution's judge would set it): 2000 minor units.
    db.execute(
        update(AttributionWatch)
        .where(AttributionWatch.app_pk == pk, AttributionWatch.outcome == "saved")
        .values(currency="usd", mrr_kept=2000)
    )
    from sqlalchemy import select

    ids = list(db.scalars(select(AttributionWatch.session_id).where(AttributionWatch.app_pk == pk)))
    service.mark_dirty(db, pk, ids)
    service.refresh_all(db, pk)


def test_experiment_report_verdicts_and_promotion(
    session_factory: sessionmaker[Session], owner: Tenant
) -> None:
    rng = random.Random(5)
    until = date(2026, 3, 1)
    with transaction(session_factory) as db:
        pk = app_pk(db, owner.app_id)
        app = db.get(App, pk)
        assert app is not None
        flows_service.apply(db, app, FLOWS)
        _run(db, pk, rng, "holdout", 10, 0, 0)
        _run(db, pk, rng, "b", 10, 0.5, 0)
        found = experiments.report(db, app, "exp1", since=date(2025, 1, 1), until=until)
        assert found.control == "holdout"
        assert not found.enough_data
        assert found.verdict.startswith("Not enough data yet")
        assert found.comparisons[0].verdict == "not enough data yet"
        # Enough decided sessions, and a flow that saves a third of them.
        _run(db, pk, rng, "holdout", 150, 0, 100)
        _run(db, pk, rng, "b", 150, 0.35, 100)
        found = experiments.report(
            db, app, "exp1", since=date(2025, 1, 1), until=until, metric="save_rate"
        )
        holdout, b = found.variants
        assert (holdout.decided, holdout.saves) == (160, 0)
        assert b.decided == 160 and b.saves > 40
        cmp = found.comparisons[0]
        assert cmp.save_rate.difference == pytest.approx(b.saves / 160)
        assert cmp.save_rate.significant
        lo, hi = cmp.save_rate.sequential_interval.low, cmp.save_rate.sequential_interval.high
        assert found.verdict == (
            f"Variant b saves more than holdout: +{b.saves / 1.6:.1f} points "
            f"(95% CI {lo * 100:.1f} to {hi * 100:.1f})."
        )
        assert found.winner == "b"
        by_money = experiments.report(db, app, "exp1", since=date(2025, 1, 1), until=until)
        assert by_money.currency == "usd"
        assert by_money.variants[1].mrr_per_session == pytest.approx(b.saves * 2000 / 160)
        assert by_money.verdict.startswith("Variant b keeps more MRR per session than holdout: +")
        assert by_money.winner == "b"
        with pytest.raises(experiments.CannotPromote):
            experiments.end(db, app, "exp1", "holdout")
        _, version = flows_service.current(db, app)
        applied = experiments.end(db, app, "exp1", "b")
        assert applied.version == version + 1
        doc, _ = flows_service.current(db, app)
        assert doc.experiments[0].active is False
        assert doc.experiences[0].id == "discount" and doc.experiences[0].audience is None
        snap = choose(doc, {}, app_id=owner.app_id, subscription_id="sub_new", now=BASE)
        assert snap.experience.id == "discount" and snap.experiment_id is None
        with pytest.raises(experiments.ExperimentNotFound):
            experiments.report(db, app, "nope", since=date(2025, 1, 1), until=until)
