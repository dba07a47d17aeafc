"""The rollups equal the raw aggregation after any sequence of changes.

A seeded random sequence of changes (new sessions, outcomes, attribution statuses and
amounts, counting-rule changes, partial refreshes) runs on each backend; afterwards the
rollups and offer rollups must equal, row for row, a brute-force count over the raw
sessions and watches written independently here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from stayflow.attribution import service as attribution
from stayflow.attribution.models import AttributionWatch
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction
from stayflow.reports import read, repository, service
from stayflow.reports.facts import FILTERS
from stayflow.reports.models import COUNTERS, ReportOfferRollup, ReportRollup, ReportSettings
from stayflow.reports.repository import BREAKDOWNS, Filters
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


@dataclass
class RawSession:
    """One counted session as this test reads it from the raw sessions and watches."""

    day: date
    currency: str
    values: dict[str, str]  # dimension -> value ("all" -> "")
    filters: set[tuple[str, str]]  # the (filter, value) pairs it matches, ("", "") too
    counters: dict[str, int]
    offers: dict[str, dict[str, int]]


def raw_sessions(db: Session, pk: int) -> list[RawSession]:
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
    out: list[RawSession] = []
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
        filters = {("", "")} | {("offer", o) for o in cs.offers_shown}
        for name in ("experience", "reason", "audience", "plan", "variant"):
            if values.get(name):
                filters.add((name, values[name]))
        counters = dict.fromkeys(COUNTERS, 0)
        counters["sessions"] = 1
        if cs.outcome in OUTCOME_COUNTER:
            counters[OUTCOME_COUNTER[cs.outcome]] += 1
        if watch and watch.status in STATUS_COUNTER:
            counters[STATUS_COUNTER[watch.status]] += 1
        counters["mrr_kept"] = kept
        counters["mrr_kept_sq"] = kept * kept
        counters["mrr_lost"] = watch.mrr_lost if watch else 0
        counters["cash"] = watch.cash_collected if watch else 0
        accepted = cs.offer_accepted_id if cs.outcome == "saved" else None
        offers: dict[str, dict[str, int]] = {}
        for offer in cs.offers_shown:
            took = offer == accepted
            offers[offer] = {"shown": 1, "accepted": int(took), "mrr_kept": kept if took else 0}
        out.append(RawSession(cs.created_at.date(), currency, values, filters, counters, offers))
    return out


def _add(total: dict[str, int], counters: dict[str, int]) -> None:
    for name, value in counters.items():
        total[name] += value


def raw_aggregation(
    db: Session, pk: int
) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]]]:
    """What the rollup tables must hold: per (day, currency, filter, filter value, dimension,
    value), and per (day, currency, filter, filter value, offer)."""
    rollups: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    offers: dict[Any, dict[str, int]] = defaultdict(
        lambda: {"shown": 0, "accepted": 0, "mrr_kept": 0}
    )
    for raw in raw_sessions(db, pk):
        for name, wanted in raw.filters:
            for dimension, value in raw.values.items():
                _add(rollups[(raw.day, raw.currency, name, wanted, dimension, value)], raw.counters)
            for offer, counters in raw.offers.items():
                _add(offers[(raw.day, raw.currency, name, wanted, offer)], counters)
    return dict(rollups), dict(offers)


def stored(db: Session, pk: int) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]]]:
    rollups = {
        (r.day, r.currency, r.filter_dim, r.filter_value, r.dimension, r.value): {
            c: getattr(r, c) for c in COUNTERS
        }
        for r in db.scalars(select(ReportRollup).where(ReportRollup.app_pk == pk))
        if any(getattr(r, c) for c in COUNTERS)
    }
    offers = {
        (r.day, r.currency, r.filter_dim, r.filter_value, r.offer_id): {
            "shown": r.shown,
            "accepted": r.accepted,
            "mrr_kept": r.mrr_kept,
        }
        for r in db.scalars(select(ReportOfferRollup).where(ReportOfferRollup.app_pk == pk))
        if r.shown or r.accepted or r.mrr_kept
    }
    return rollups, offers


def expected_reads(raws: list[RawSession], f: Filters) -> dict[str, dict[Any, dict[str, int]]]:
    """What ``repository.grouped`` (by ``all``, ``day`` and each breakdown) and
    ``repository.offers`` must answer for ``f``, brute force over the raw sessions."""
    chosen = [(name, getattr(f, name)) for name in FILTERS if getattr(f, name)]
    out: dict[str, dict[Any, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    )
    offers: dict[Any, dict[str, int]] = defaultdict(
        lambda: {"shown": 0, "accepted": 0, "mrr_kept": 0}
    )
    for raw in raws:
        if not f.since <= raw.day <= f.until:
            continue
        if f.currency is not None and raw.currency != f.currency:
            continue
        if not all(c in raw.filters for c in chosen):
            continue
        _add(out["all"][(raw.currency,)], raw.counters)
        _add(out["day"][(raw.day, raw.currency)], raw.counters)
        _add(out["currency"][(raw.currency, raw.currency)], raw.counters)
        for dimension, value in raw.values.items():
            if dimension != "all":
                _add(out[dimension][(raw.currency, value)], raw.counters)
        for offer, counters in raw.offers.items():
            if f.offer is None or offer == f.offer:
                _add(offers[(raw.currency, offer)], counters)
    result = {by: dict(rows) for by, rows in out.items()}
    result["offers"] = dict(offers)
    return result


def check_filtered_reads(db: Session, pk: int, rng: random.Random) -> int:
    """Every single filter (read from the rollups) and a few pairs (read from the facts)
    answer exactly what the raw sessions give, over a few ranges and currencies."""
    raws = raw_sessions(db, pk)
    singles = sorted({c for raw in raws for c in raw.filters} - {("", "")})
    views: list[dict[str, str]] = [{}, {"reason": "no_such_reason"}]
    views += [{name: value} for name, value in singles]
    for _ in range(6):
        (n1, v1), (n2, v2) = rng.sample(singles, 2)
        if n1 != n2:
            views.append({n1: v1, n2: v2})
    checked = 0
    for extra in views:
        for since, until, currency in (
            (BASE.date(), (BASE + timedelta(days=200)).date(), None),
            ((BASE + timedelta(days=40)).date(), (BASE + timedelta(days=90)).date(), None),
            (BASE.date(), (BASE + timedelta(days=200)).date(), "eur"),
        ):
            f = Filters(since=since, until=until, currency=currency, **extra)  # type: ignore[arg-type]
            assert f.needs_facts == (len(extra) > 1)
            want = expected_reads(raws, f)
            for by in ("all", "day", *BREAKDOWNS):
                assert repository.grouped(db, pk, f, by) == want.get(by, {}), (extra, by)
            assert repository.offers(db, pk, f) == want["offers"], extra
            board = read.dashboard(db, pk, f)
            assert board.figures == read.figures(db, pk, f)
            assert board.over_time == read.table(db, pk, f, "over-time")
            assert board.breakdowns == {d: read.table(db, pk, f, d) for d in BREAKDOWNS}
            assert board.offers == read.offers(db, pk, f)
            checked += 1
    return checked


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
        assert check_filtered_reads(db, pk, rng) > 30


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
        assert rollups[(BASE.date(), "usd", "", "", "all", "")]["saves"] == 1
        second = new_session(db, pk, "sub_x", BASE + timedelta(days=59))
        finish(db, second, "canceled")
        third = new_session(db, pk, "sub_y", BASE + timedelta(days=1))
        finish(db, third, "canceled")
        service.refresh_all(db, pk)
    with transaction(session_factory) as db:
        rollups, _ = stored(db, pk)
        assert (BASE.date(), "usd", "", "", "all", "") not in rollups  # superseded
        later = (BASE + timedelta(days=59)).date()
        assert rollups[(later, "usd", "", "", "all", "")]["cancels"] == 1
        assert rollups[(later, "usd", "", "", "all", "")]["sessions"] == 1
        # A shorter window: the first visit is a subscriber of its own again.
        service.set_settings(db, pk, dedup_days=30, blocked_domains=[], test_accounts=[])
        service.refresh_all(db, pk)
        rollups, _ = stored(db, pk)
        assert rollups[(BASE.date(), "usd", "", "", "all", "")]["saves"] == 1


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
