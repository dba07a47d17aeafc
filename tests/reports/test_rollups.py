"""The rollups equal the raw aggregation after any sequence of changes.

A seeded random sequence of changes (new sessions, outcomes, attribution statuses and
amounts, counting-rule changes, partial refreshes) runs on each backend; afterwards the
rollups and offer rollups must equal, row for row, a brute-force count over the raw
sessions and watches written independently here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.attribution import service as attribution
from stayflow.attribution.models import AttributionWatch
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction
from stayflow.reports import service
from stayflow.reports.models import COUNTERS, ReportOfferRollup, ReportRollup, ReportSettings
from tests.conftest import Tenant
from tests.reports.helpers import BASE, app_pk, finish, new_session

OUTCOME_COUNTER = {
    "saved": "saves",
    "deflected": "deflects",
    "canceled": "cancels",
    "abandoned": "abandoned",
}
STATUS_COUNTER = {"validated": "validated", "lapsed": "lapsed", "reactivated": "reactivations"}


def _age(created: datetime, customer_created: int | None) -> str:
    if customer_created is None:
        return ""
    days = (created - datetime.fromtimestamp(customer_created, UTC)).days
    for limit, label in ((30, "<1m"), (90, "1-3m"), (365, "3-12m"), (730, "1-2y")):
        if days < limit:
            return label
    return "2y+"


def raw_aggregation(
    db: Session, pk: int
) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]]]:
    settings = db.scalar(select(ReportSettings).where(ReportSettings.app_pk == pk))
    window = timedelta(days=settings.dedup_days if settings else 60)
    blocked = set(settings.blocked_domains) if settings else set()
    tests = set(settings.test_accounts) if settings else set()
    sessions = [
        cs
        for cs in db.scalars(select(CancelSession).where(CancelSession.app_pk == pk))
        if cs.viewed_at is not None or cs.outcome is not None
    ]
    watches = {
        w.session_id: w
        for w in db.scalars(select(AttributionWatch).where(AttributionWatch.app_pk == pk))
    }
    rollups: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    offers: dict[Any, dict[str, int]] = defaultdict(
        lambda: {"shown": 0, "accepted": 0, "mrr_kept": 0}
    )
    for cs in sessions:
        superseded = (
            window.days > 0
            and cs.subscription_id != "[erased]"
            and any(
                o.subscription_id == cs.subscription_id
                and cs.created_at < o.created_at <= cs.created_at + window
                for o in sessions
            )
        )
        if superseded:
            continue
        fields = cs.enriched_fields
        email = fields.get("subscription.customer.email") or ""
        if email and email.split("@")[1] in blocked:
            continue
        if {cs.subscription_id, email, fields.get("subscription.customer.id")} & tests:
            continue
        watch = watches.get(cs.session_id)
        currency = watch.currency if watch and watch.currency else fields["subscription.currency"]
        day = cs.created_at.date()
        kept = watch.mrr_kept if watch else 0
        values = {
            "all": "",
            "reason": cs.reason_id or "",
            "plan": fields["subscription.plan.product.name"],
            "interval": fields["subscription.plan.interval"],
            "account_age": _age(cs.created_at, fields.get("subscription.customer.created")),
            "audience": cs.flow["experience"].get("audience", ""),
            "experience": cs.experience_id or "",
        }
        if cs.experiment_id:
            values["variant"] = f"{cs.experiment_id}/{cs.variant_id}"
        for dimension, value in values.items():
            row = rollups[(day, currency, dimension, value)]
            row["sessions"] += 1
            if cs.outcome in OUTCOME_COUNTER:
                row[OUTCOME_COUNTER[cs.outcome]] += 1
            if watch and watch.status in STATUS_COUNTER:
                row[STATUS_COUNTER[watch.status]] += 1
            row["mrr_kept"] += kept
            row["mrr_kept_sq"] += kept * kept
            row["mrr_lost"] += watch.mrr_lost if watch else 0
            row["cash"] += watch.cash_collected if watch else 0
        accepted = cs.offer_accepted_id if cs.outcome == "saved" else None
        for offer in cs.offers_shown:
            row = offers[(day, currency, offer)]
            row["shown"] += 1
            if offer == accepted:
                row["accepted"] += 1
                row["mrr_kept"] += kept
    return dict(rollups), dict(offers)


def stored(db: Session, pk: int) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]]]:
    rollups = {
        (r.day, r.currency, r.dimension, r.value): {c: getattr(r, c) for c in COUNTERS}
        for r in db.scalars(select(ReportRollup).where(ReportRollup.app_pk == pk))
        if any(getattr(r, c) for c in COUNTERS)
    }
    offers = {
        (r.day, r.currency, r.offer_id): {
            "shown": r.shown,
            "accepted": r.accepted,
            "mrr_kept": r.mrr_kept,
        }
        for r in db.scalars(select(ReportOfferRollup).where(ReportOfferRollup.app_pk == pk))
        if r.shown or r.accepted or r.mrr_kept
    }
    return rollups, offers


def _random_step(db: Session, pk: int, rng: random.Random, subs: list[str]) -> str:
    kind = rng.choices(
        ["session", "outcome", "enroll", "watch", "refresh", "rules"], [30, 30, 8, 15, 10, 4]
    )[0]
    if kind == "session":
        sub = rng.choice(subs)
        experiment = rng.random() < 0.5
        new_session(
            db,
            pk,
            sub,
            BASE + timedelta(days=rng.randrange(0, 150), minutes=rng.randrange(0, 1440)),
            currency=rng.choice(["usd", "usd", "eur"]),
            plan=rng.choice(["Pro", "Team"]),
            interval=rng.choice(["month", "year"]),
            email=f"{sub}@{rng.choice(['example.com', 'test.invalid'])}",
            customer_created=BASE - timedelta(days=rng.randrange(0, 900)),
            experience=rng.choice(["default", "vip"]),
            audience=rng.choice([None, "big"]),
            experiment="exp1" if experiment else None,
            variant=rng.choice(["a", "b", "holdout"]) if experiment else None,
            offers_shown=rng.sample(["off10", "pause", "ext"], rng.randrange(0, 3)),
        )
    elif kind == "outcome":
        open_ = db.scalars(
            select(CancelSession).where(CancelSession.app_pk == pk, CancelSession.outcome.is_(None))
        ).all()
        if open_:
            cs = rng.choice(open_)
            outcome = rng.choice(["saved", "deflected", "canceled", "abandoned"])
            if outcome == "saved" and not cs.offers_shown:
                outcome = "canceled"
            finish(
                db,
                cs,
                outcome,
                reason=rng.choice([None, "too_expensive", "unused"]),
                comment=rng.choice([None, "pricey"]),
                offer=rng.choice(cs.offers_shown) if outcome == "saved" else None,
            )
    elif kind == "enroll":
        attribution.enroll(db, pk)
    elif kind == "watch":
        watches = db.scalars(select(AttributionWatch).where(AttributionWatch.app_pk == pk)).all()
        if watches:
            w = rng.choice(watches)
            db.execute(
                update(AttributionWatch)
                .where(AttributionWatch.id == w.id)
                .values(
                    status=rng.choice(
                        ["pending", "validated", "lapsed", "confirmed", "reactivated"]
                    ),
                    currency=rng.choice([None, "usd", "eur"]),
                    mrr_kept=rng.randrange(0, 5000),
                    mrr_lost=rng.randrange(0, 3000),
                    cash_collected=rng.randrange(0, 9000),
                )
            )
            # What attribution's judge() does when it changes these columns.
            service.mark_dirty(db, pk, [w.session_id])
    elif kind == "refresh":
        service.refresh(db, pk, batch=rng.randrange(1, 6))
    else:
        service.set_settings(
            db,
            pk,
            dedup_days=rng.choice([0, 30, 60]),
            blocked_domains=rng.choice([[], ["test.invalid"]]),
            test_accounts=rng.choice([[], [subs[0]], [f"{subs[1]}@example.com"]]),
        )
    return kind


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_equal_the_raw_aggregation_after_random_changes(
    session_factory: sessionmaker[Session], owner: Tenant, other: Tenant, seed: int
) -> None:
    rng = random.Random(seed)
    subs = [f"sub_{i}" for i in range(12)]
    with transaction(session_factory) as db:
        pk, other_pk = app_pk(db, owner.app_id), app_pk(db, other.app_id)
    kinds: dict[str, int] = defaultdict(int)
    for _ in range(40):  # transactions
        with transaction(session_factory) as db:
            for _ in range(rng.randrange(1, 8)):
                kinds[_random_step(db, pk, rng, subs)] += 1
            if rng.random() < 0.2:
                _random_step(db, other_pk, rng, subs)
    assert kinds["session"] > 20 and kinds["outcome"] > 20 and kinds["watch"] > 5
    with transaction(session_factory) as db:
        service.refresh_all(db, pk)
        service.refresh_all(db, other_pk)
    with transaction(session_factory) as db:
        raw_rollups, raw_offers = raw_aggregation(db, pk)
        rollups, offer_rollups = stored(db, pk)
        assert raw_rollups, "the sequence produced counted sessions"
        assert rollups == raw_rollups
        assert offer_rollups == raw_offers
        other_raw, other_offers = raw_aggregation(db, other_pk)
        assert stored(db, other_pk) == (other_raw, other_offers)


def test_a_second_visit_within_the_window_counts_once_with_the_latest_outcome(
    session_factory: sessionmaker[Session], owner: Tenant
) -> None:
    with transaction(session_factory) as db:
        pk = app_pk(db, owner.app_id)
        first = new_session(db, pk, "sub_x", BASE, offers_shown=["off10"])
        finish(db, first, "saved", offer="off10")
        service.refresh_all(db, pk)
    with transaction(session_factory) as db:
        rollups, _ = stored(db, pk)
        assert rollups[(BASE.date(), "usd", "all", "")]["saves"] == 1
        second = new_session(db, pk, "sub_x", BASE + timedelta(days=59))
        finish(db, second, "canceled")
        third = new_session(db, pk, "sub_y", BASE + timedelta(days=1))
        finish(db, third, "canceled")
        service.refresh_all(db, pk)
    with transaction(session_factory) as db:
        rollups, _ = stored(db, pk)
        assert (BASE.date(), "usd", "all", "") not in rollups  # superseded: counts nothing
        later = (BASE + timedelta(days=59)).date()
        assert rollups[(later, "usd", "all", "")]["cancels"] == 1
        assert rollups[(later, "usd", "all", "")]["sessions"] == 1
        # A shorter window: the first visit is a subscriber of its own again.
        service.set_settings(db, pk, dedup_days=30, blocked_domains=[], test_accounts=[])
        service.refresh_all(db, pk)
        rollups, _ = stored(db, pk)
        assert rollups[(BASE.date(), "usd", "all", "")]["saves"] == 1


def test_an_erased_subscriber_leaves_no_id_in_the_facts_and_the_rollups_stay_exact(
    session_factory: sessionmaker[Session], owner: Tenant
) -> None:
    from stayflow.apps.erase import erase_subscriber
    from stayflow.apps.models import App
    from stayflow.reports.models import ReportFact

    with transaction(session_factory) as db:
        pk = app_pk(db, owner.app_id)
        first = new_session(db, pk, "sub_ada", BASE, email="ada@example.com")
        finish(db, first, "canceled", comment="ada's words")
        second = new_session(db, pk, "sub_ada", BASE + timedelta(days=3), offers_shown=["off10"])
        finish(db, second, "saved", offer="off10")
        other = new_session(db, pk, "sub_bob", BASE)
        finish(db, other, "canceled")
        service.refresh_all(db, pk)
    with transaction(session_factory) as db:
        app = db.get(App, pk)
        assert app is not None
        erase_subscriber(db, app, subscription_id="sub_ada")
    with transaction(session_factory) as db:
        service.refresh_all(db, pk)
        subs = set(db.scalars(select(ReportFact.subscription_id).where(ReportFact.app_pk == pk)))
        assert subs == {"[erased]", "sub_bob"}
        assert stored(db, pk) == raw_aggregation(db, pk)
