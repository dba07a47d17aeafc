"""Migration 0012_reports15 remakes the rollups with their filter columns: every app that
had facts is recounted by the next refresh, and the new rollups equal the raw count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from stayflow.db import make_engine, make_session_factory, migrate, transaction
from stayflow.reports import service
from stayflow.reports.models import ReportSettings
from stayflow.settings import Settings
from tests.conftest import (
    TEST_SECRET_KEY,
    create_pg_database,
    drop_pg_database,
    require_postgres,
)
from tests.reports.test_rollups import raw_aggregation, stored

FIELDS = {
    "subscription.currency": "usd",
    "subscription.plan.product.name": "Pro",
    "subscription.plan.interval": "month",
}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_upgrade_recounts_every_app_with_facts_into_filtered_rollups(
    backend: str, tmp_path: Path
) -> None:
    if backend == "postgres":
        require_postgres()
        url = create_pg_database("stayflow_reports_migration")
    else:
        url = f"sqlite:///{tmp_path}/migrate.db"
    engine = make_engine(Settings(database_url=url, secret_key=TEST_SECRET_KEY))
    try:
        migrate(engine, "0011_attr12")
        with engine.begin() as conn:
            for pk in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO apps (id, app_id, name, secret_encrypted, settings, "
                        "created_at) VALUES (:pk, :aid, 'x', 'x', '{}', '2026-11-30 10:00:00')"
                    ),
                    {"pk": pk, "aid": f"app_{pk}"},
                )
            for pk, sub, reason, outcome in (
                (1, "sub_1", "too_expensive", "canceled"),
                (2, "sub_2", "unused", "deflected"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO cancel_sessions (id, session_id, app_pk, token_hash, "
                        "subscription_id, signed, request_fields, signed_fields, "
                        "enriched_fields, experience_id, flow, offers_shown, created_at, "
                        "viewed_at, expires_at, abandon_at, outcome, reason_id) VALUES (:pk, "
                        ":sid, 1, :h, :sub, true, '{}', '{}', :fields, 'default', :flow, "
                        "'[\"off10\"]', '2026-11-30 12:00:00', '2026-11-30 12:00:00', "
                        "'2026-11-30 13:00:00', '2026-11-30 13:00:00', :outcome, :reason)"
                    ),
                    {
                        "pk": pk,
                        "sid": f"cs_{pk}",
                        "h": f"h{pk}",
                        "sub": sub,
                        "fields": json.dumps(FIELDS),
                        "flow": json.dumps({"experience": {"id": "default"}}),
                        "outcome": outcome,
                        "reason": reason,
                    },
                )
            # App 1 had been counted under the old layout; app 2 has no sessions.
            conn.execute(
                text(
                    "INSERT INTO report_facts (app_pk, session_pk, session_id, subscription_id, "
                    "created_at, day, currency, outcome, reason_id, offer_id, offers_shown, "
                    "experience_id, experiment_id, variant_id, audience_id, plan, interval, "
                    "account_age, status, mrr_kept, mrr_lost, cash, excluded, counted) VALUES "
                    "(1, 1, 'cs_1', 'sub_1', '2026-11-30 12:00:00', '2026-11-30', 'usd', "
                    "'canceled', 'too_expensive', '', ',off10,', 'default', '', '', '', 'Pro', "
                    "'month', '', '', 0, 0, 0, false, true)"
                )
            )
        migrate(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as db:
            query = select(ReportSettings.app_pk, ReportSettings.rebuild_requested)
            flags = {pk: requested for pk, requested in db.execute(query)}
            assert flags == {1: True}
            assert service.apps_to_refresh(db) == [1]
            service.refresh_all(db, 1)
        with transaction(factory) as db:
            rollups, offers = stored(db, 1)
            assert (rollups, offers) == raw_aggregation(db, 1)
            assert {(k[2], k[3]) for k in rollups} >= {
                ("", ""),
                ("reason", "too_expensive"),
                ("reason", "unused"),
                ("offer", "off10"),
                ("plan", "Pro"),
            }
    finally:
        engine.dispose()
        if backend == "postgres":
            drop_pg_database(url)
