"""Reports at scale: the dashboard's queries over a year of sessions, beside a plain COUNT(*).

    python bench/reports.py [--sessions 1000000] [--backend postgresql|sqlite|both]

One app gets ``--sessions`` sessions spread over 365 days; two other apps get a tenth as
many each (noise the queries must skip). Then, for 30 and 365 days, without a filter, with
one filter (reason; offer: read from the rollups kept per filter value) and with two
(reason and plan: read from the facts), it times what the admin's reports page computes:
its refresh (nothing dirty here), ``read.dashboard`` (figures, outcomes over time, the
eight breakdowns, the offers) and the latest comments (in-process calls, the functions the
page calls; no HTTP, no template, no chart images).

Setup is NOT the product's write path (disclosed): cancel sessions and their report facts
are bulk-inserted by SQL (``generate_series`` on PostgreSQL, a recursive CTE on SQLite),
and the rollups are built from the facts by one ``INSERT ... SELECT ... GROUP BY`` per
filter value and dimension, the same sums the incremental code keeps
(tests/reports/test_rollups.py checks that equality). After setup the script checks that
the rollups' totals equal the facts'. No attribution watches are generated, so the revenue
card's two counts read an empty index.
Timings are the median of 5 runs after one warm-up; PostgreSQL runs with its defaults
(fsync on) and ANALYZE after the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))
from _support import create_database, drop_database

from stayflow.apps import service as apps_service
from stayflow.crypto import Encryptor
from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.reports import read, service
from stayflow.reports.facts import DIMENSION_COLUMNS, FILTER_COLUMNS, FILTERS
from stayflow.reports.models import COUNTERS
from stayflow.reports.repository import Filters
from stayflow.settings import Settings

START = date(2025, 12, 1)
END = START + timedelta(days=364)
OUTCOMES = ["saved", "canceled", "canceled", "deflected", "abandoned", "canceled", "saved"]
REASONS = ["too_expensive", "unused", "missing_features", "switched_service", "other"]
PLANS = ["Starter", "Pro", "Team"]
AGES = ["<1m", "1-3m", "3-12m", "1-2y", "2y+"]
OFFERS = ["off20", "pause_2m", "extend_1m"]


def _arr(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def _pick_pg(values: list[str], expr: str) -> str:
    return f"({_arr(values)})[1 + ({expr}) % {len(values)}]"


def _pick_sqlite(values: list[str], expr: str) -> str:
    cases = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"(CASE ({expr}) % {len(values)} {cases} END)"


def load(db: Session, app_pk: int, n: int, offset: int) -> None:
    """n sessions (ids offset+1..offset+n) and their facts, by SQL."""
    pg = db.get_bind().dialect.name == "postgresql"
    pick = _pick_pg if pg else _pick_sqlite
    if pg:
        seq = f"generate_series({offset + 1}::bigint, {offset + n}::bigint) AS g(i)"
        ts = (
            f"(TIMESTAMPTZ '{START.isoformat()} 00:00:00+00' + ((i * 7919) % 365) "
            "* INTERVAL '1 day' + (i % 86400) * INTERVAL '1 second')"
        )
        day = f"(DATE '{START.isoformat()}' + ((i * 7919) % 365)::int)"
        empty, empty_list = "'{}'::jsonb", "'[]'::jsonb"
        plus_day = f"{ts} + INTERVAL '1 day'"
        with_seq = ""
    else:
        with_seq = (
            f"WITH RECURSIVE g(i) AS (SELECT {offset + 1} UNION ALL SELECT i + 1 FROM g "
            f"WHERE i < {offset + n}) "
        )
        seq = "g"
        ts = (
            f"(datetime('{START.isoformat()}', '+' || ((i * 7919) % 365) || ' days', "
            f"'+' || (i % 86400) || ' seconds') || '.000000')"
        )
        day = f"date('{START.isoformat()}', '+' || ((i * 7919) % 365) || ' days')"
        empty, empty_list = "'{}'", "'[]'"
        plus_day = (
            f"(datetime('{START.isoformat()}', '+' || ((i * 7919) % 365 + 1) || ' days', "
            f"'+' || (i % 86400) || ' seconds') || '.000000')"
        )
    outcome = pick(OUTCOMES, "i")
    db.execute(
        text(
            f"{with_seq}INSERT INTO cancel_sessions (id, session_id, app_pk, token_hash, "
            "subscription_id, signed, request_fields, signed_fields, enriched_fields, flow, "
            "offers_shown, created_at, viewed_at, expires_at, abandon_at, outcome, reason_id, "
            "reason_comment) "
            f"SELECT i, 'cs_' || i, {app_pk}, 'h' || i, "
            f"'sub_' || (i % {max(1, n * 9 // 10)} + {offset}), "
            f"{'true' if pg else '1'}, {empty}, {empty}, {empty}, {empty}, {empty_list}, "
            f"{ts}, {ts}, {plus_day}, {plus_day}, {outcome}, {pick(REASONS, 'i / 7')}, "
            f"CASE WHEN i % 50 = 0 THEN 'comment number ' || i ELSE NULL END FROM {seq}"
        )
    )
    saved_status = pick(["validated", "lapsed", "pending"], "i / 3")
    canceled_status = pick(["confirmed", "confirmed", "reactivated"], "i / 5")
    status = (
        f"CASE WHEN {outcome} = 'saved' THEN {saved_status} "
        f"WHEN {outcome} = 'canceled' THEN {canceled_status} ELSE '' END"
    )
    kept = f"CASE WHEN {outcome} = 'saved' THEN 1000 + (i % 40) * 100 ELSE 0 END"
    offer = pick(OFFERS, "i / 11")
    true, false = ("true", "false") if pg else ("1", "0")
    db.execute(
        text(
            f"{with_seq}INSERT INTO report_facts (app_pk, session_pk, session_id, subscription_id, "
            "created_at, day, currency, outcome, reason_id, offer_id, offers_shown, "
            "experience_id, experiment_id, variant_id, audience_id, plan, interval, "
            "account_age, status, mrr_kept, mrr_lost, cash, excluded, counted) "
            f"SELECT {app_pk}, i, 'cs_' || i, 'sub_' || i, {ts}, {day}, "
            f"CASE WHEN i % 10 = 0 THEN 'eur' ELSE 'usd' END, {outcome}, "
            f"{pick(REASONS, 'i / 7')}, CASE WHEN {outcome} = 'saved' THEN {offer} ELSE '' END, "
            f"',' || {offer} || ',', {pick(['default', 'annual', 'vip'], 'i / 13')}, "
            f"'exp1', {pick(['holdout', 'a', 'b'], 'i / 17')}, "
            f"{pick(['', 'annual'], 'i / 19')}, {pick(PLANS, 'i / 23')}, "
            f"{pick(['month', 'year'], 'i / 29')}, {pick(AGES, 'i / 31')}, {status}, {kept}, "
            f"CASE WHEN {outcome} = 'canceled' THEN 1500 ELSE 0 END, {kept} * 2, {false}, "
            f"CASE WHEN i % 20 = 0 THEN {false} ELSE {true} END FROM {seq}"
        )
    )


def _keys(*exprs: str) -> str:
    """A GROUP BY list without the constants (PostgreSQL refuses a constant there)."""
    return ", ".join(e for e in exprs if not e.startswith("'"))


def build_rollups(db: Session) -> None:
    """The rollups from the facts: per filter (none, or one filter value) and dimension one
    ``INSERT ... SELECT ... GROUP BY`` (setup only)."""
    sums = {
        "sessions": "count(*)",
        "saves": "sum(CASE WHEN outcome = 'saved' THEN 1 ELSE 0 END)",
        "deflects": "sum(CASE WHEN outcome IN ('deflected', 'redirected') THEN 1 ELSE 0 END)",
        "cancels": "sum(CASE WHEN outcome = 'canceled' THEN 1 ELSE 0 END)",
        "abandoned": "sum(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END)",
        "validated": "sum(CASE WHEN status = 'validated' THEN 1 ELSE 0 END)",
        "lapsed": "sum(CASE WHEN status = 'lapsed' THEN 1 ELSE 0 END)",
        "reactivations": "sum(CASE WHEN status = 'reactivated' THEN 1 ELSE 0 END)",
        "mrr_kept": "sum(mrr_kept)",
        "mrr_kept_sq": "sum(mrr_kept * mrr_kept)",
        "mrr_lost": "sum(mrr_lost)",
        "cash": "sum(cash)",
    }
    assert tuple(sums) == COUNTERS
    variant = "experiment_id || '/' || variant_id"
    values = {"all": "''", **DIMENSION_COLUMNS, "variant": variant}
    # filter -> (its value's expression, the facts it keeps); an offer filter per offer.
    filters: list[tuple[str, str, str]] = [("", "''", "1 = 1")]
    for name in FILTERS:
        if name == "offer":
            filters += [("offer", f"'{o}'", f"offers_shown LIKE '%,{o},%'") for o in OFFERS]
        elif name == "variant":
            filters.append(("variant", variant, "experiment_id <> ''"))
        else:
            column = FILTER_COLUMNS[name]
            filters.append((name, column, f"{column} <> ''"))
    counted = "counted AND NOT excluded"
    for name, wanted, keeps in filters:
        for dimension, expr in values.items():
            has = "experiment_id <> ''" if dimension == "variant" else "1 = 1"
            db.execute(
                text(
                    "INSERT INTO report_rollups (app_pk, filter_dim, filter_value, day, currency, "
                    f"dimension, value, {', '.join(COUNTERS)}) SELECT app_pk, '{name}', {wanted}, "
                    f"day, currency, '{dimension}', {expr}, {', '.join(sums.values())} "
                    f"FROM report_facts WHERE {counted} AND {keeps} AND {has} "
                    f"GROUP BY {_keys('app_pk', wanted, 'day', 'currency', expr)}"
                )
            )
        for offer in OFFERS:
            db.execute(
                text(
                    "INSERT INTO report_offer_rollups (app_pk, filter_dim, filter_value, day, "
                    f"currency, offer_id, shown, accepted, mrr_kept) SELECT app_pk, '{name}', "
                    f"{wanted}, day, currency, '{offer}', "
                    f"sum(CASE WHEN offers_shown LIKE '%,{offer},%' THEN 1 ELSE 0 END), "
                    f"sum(CASE WHEN offer_id = '{offer}' THEN 1 ELSE 0 END), "
                    f"sum(CASE WHEN offer_id = '{offer}' THEN mrr_kept ELSE 0 END) "
                    f"FROM report_facts WHERE {counted} AND {keeps} "
                    f"GROUP BY {_keys('app_pk', wanted, 'day', 'currency')}"
                )
            )


def dashboard(db: Session, app_pk: int, f: Filters) -> None:
    """What /admin/apps/{id}/reports computes: the refresh it runs first (nothing is dirty
    here), the figures, outcomes over time, every breakdown and the offers (one query per
    rollup table), and the newest comments."""
    service.refresh_all(db, app_pk, max_rounds=5)
    read.dashboard(db, app_pk, f)
    read.comments(db, app_pk, f, None, None, 50)


def timed(factory: Callable[[], Session], fn: Callable[[Session], object]) -> float:
    samples = []
    for attempt in range(6):
        with factory() as db:
            began = time.perf_counter()
            fn(db)
            elapsed = time.perf_counter() - began
        if attempt:
            samples.append(elapsed)
    return statistics.median(samples) * 1000


def run(backend: str, sessions: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="stayflow-bench-reports-"))
    url = create_database(backend, folder)
    try:
        settings = Settings(database_url=url, secret_key="bench-" + "x" * 40, log_json=False)
        engine = make_engine(settings)
        migrate(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as db:
            apps = [
                apps_service.create_app(db, Encryptor(settings.secret_key), f"app{i}").app.id
                for i in range(3)
            ]
        began = time.perf_counter()
        noise = max(1, sessions // 10)
        with transaction(factory) as db:
            load(db, apps[0], sessions, 0)
            load(db, apps[1], noise, sessions)
            load(db, apps[2], noise, sessions + noise)
            build_rollups(db)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        setup = time.perf_counter() - began
        with factory() as db:
            facts = db.execute(
                text(
                    "SELECT count(*), sum(mrr_kept) FROM report_facts "
                    f"WHERE app_pk = {apps[0]} AND counted AND NOT excluded"
                )
            ).one()
            rolled = db.execute(
                text(
                    "SELECT sum(sessions), sum(mrr_kept) FROM report_rollups "
                    f"WHERE app_pk = {apps[0]} AND filter_dim = '' AND dimension = 'all'"
                )
            ).one()
            assert tuple(facts) == tuple(rolled), (facts, rolled)
        load_avg = os.getloadavg()
        print(
            f"\n{backend}: {sessions:,} sessions in app 1 + {noise:,} in each of 2 others; "
            f"setup {setup:.1f} s (bulk SQL, see docstring); load average "
            f"{load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}"
        )
        print(f"{'range':>6} {'filter':<22} {'dashboard ms':>13} {'COUNT(*) ms':>12} {'rows':>9}")
        for days in (30, 365):
            since = END - timedelta(days=days - 1)
            for label, extra in (
                ("none (rollups)", {}),
                ("reason (rollups)", {"reason": "too_expensive"}),
                ("offer (rollups)", {"offer": "pause_2m"}),
                ("reason+plan (facts)", {"reason": "too_expensive", "plan": "Pro"}),
            ):
                f = Filters(since=since, until=END, **extra)  # type: ignore[arg-type]
                ms = timed(factory, lambda db, f=f: dashboard(db, apps[0], f))
                count_sql = text(
                    "SELECT count(*) FROM cancel_sessions WHERE app_pk = :a AND created_at >= :s "
                    "AND created_at < :u"
                )
                params = {"a": apps[0], "s": since, "u": END + timedelta(days=1)}
                if backend == "sqlite":
                    params["s"] = f"{since.isoformat()} 00:00:00.000000"
                    params["u"] = f"{(END + timedelta(days=1)).isoformat()} 00:00:00.000000"
                rows = 0

                def count(db: Session, q=count_sql, p=params) -> None:
                    nonlocal rows
                    rows = int(db.execute(q, p).scalar_one())

                count_ms = timed(factory, count)
                print(f"{days:>5}d {label:<22} {ms:>13.1f} {count_ms:>12.1f} {rows:>9,}")
        engine.dispose()
    finally:
        drop_database(url)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    for backend in backends:
        run(backend, args.sessions)


if __name__ == "__main__":
    main()
