"""The admin's reports pages: figures with drill-down and CSV links, SVG charts with their
tables, bad filters as 400 pages, experiments ended and promoted by owners only."""

from __future__ import annotations

import csv
import io
import random
import re

from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.models import App
from stayflow.db import transaction
from stayflow.flows import service as flows_service
from tests.conftest import Tenant
from tests.reports.test_experiments import FLOWS, _run

RANGE = "since=2026-01-01&until=2026-01-31"


def test_reports_page_charts_drill_down_csv_and_experiment(
    signed_in, add_user, owner: Tenant, other: Tenant, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as db:
        app = db.scalar(__import__("sqlalchemy").select(App).where(App.app_id == owner.app_id))
        assert app is not None
        flows_service.apply(db, app, FLOWS)
        rng = random.Random(3)
        _run(db, app.id, rng, "holdout", 40, 0, 0)
        _run(db, app.id, rng, "b", 40, 0.5, 0)
    add_user("olga@example.com", owner.app_id, "owner")
    add_user("vera@example.com", owner.app_id, "viewer")
    add_user("zed@example.com", other.app_id, "owner")
    base = f"/admin/apps/{owner.app_id}/reports"
    olga = signed_in("olga@example.com")
    page = olga.client.get(f"{base}?{RANGE}")
    assert page.status_code == 200, page.text
    sessions = re.search(r'data-figure="sessions">(\d+)<', page.text)
    assert sessions and int(sessions.group(1)) == 80
    assert f"{base}/charts/outcomes.svg?since=2026-01-01&amp;until=2026-01-31" in page.text
    chart = olga.client.get(f"{base}/charts/outcomes.svg?{RANGE}")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert chart.text.startswith("<svg") and "Outcomes per day" in chart.text
    reasons = olga.client.get(f"{base}/charts/reason.svg?{RANGE}")
    assert reasons.status_code == 200
    # A filter in the URL, kept in every link.
    filtered = olga.client.get(f"{base}?{RANGE}&variant=exp1/b")
    assert re.search(r'data-figure="sessions">40<', filtered.text)
    assert "variant=exp1%2Fb" in filtered.text
    drill = olga.client.get(f"{base}/sessions?figure=saves&{RANGE}&variant=exp1/b")
    assert drill.status_code == 200
    saves = drill.text.count("<code>sub_b_")
    assert 5 < saves < 40
    got = olga.client.get(f"{base}/csv/sessions?figure=saves&{RANGE}")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert len(rows) == saves and {r["outcome"] for r in rows} == {"saved"}
    assert {r["variant_id"] for r in rows} == {"b"} and {r["currency"] for r in rows} == {"usd"}
    assert all(r["mrr_kept"] == "2000" for r in rows)
    bad = olga.client.get(f"{base}?since=yesterday")
    assert bad.status_code == 400 and "2026-12-01" in bad.text
    # The experiment: its verdict, and ending it with the winner promoted (owner only).
    x = olga.client.get(f"{base}/experiments/exp1?metric=save_rate")
    assert x.status_code == 200
    assert "Variant b saves more than holdout" in x.text
    assert "End and make b the default" in x.text
    # Its dates: sessions of 2026-01-01..20 count; a range before them has no data yet, and
    # the other-metric link keeps the range.
    assert 'type="date"' in x.text and 'name="since"' in x.text
    early = olga.client.get(
        f"{base}/experiments/exp1?metric=save_rate&since=2025-11-01&until=2025-12-31"
    )
    assert early.status_code == 200 and "Not enough data yet" in early.text
    assert 'value="2025-11-01"' in early.text
    assert "since=2025-11-01&amp;until=2025-12-31" in early.text
    ranged = olga.client.get(f"{base}/experiments/exp1?metric=save_rate&since=2026-01-01")
    assert "Variant b saves more than holdout" in ranged.text
    for bad, says in (("since=soon", "2026-12-01"), ("since=2026-02-01&until=2026-01-01", "first")):
        answer = olga.client.get(f"{base}/experiments/exp1?{bad}")
        assert answer.status_code == 400 and says in answer.text, bad
    vera = signed_in("vera@example.com")
    seen = vera.client.get(f"{base}/experiments/exp1")
    assert seen.status_code == 200 and "End and make" not in seen.text
    refused = vera.client.post(
        f"{base}/experiments/exp1/end",
        data={"csrf": vera.csrf(f"{base}/experiments/exp1"), "promote": "b"},
    )
    assert refused.status_code == 403
    forged = olga.client.post(f"{base}/experiments/exp1/end", data={"csrf": "x", "promote": "b"})
    assert forged.status_code == 403
    done = olga.client.post(
        f"{base}/experiments/exp1/end",
        data={"csrf": olga.csrf(f"{base}/experiments/exp1?metric=save_rate"), "promote": "b"},
    )
    assert done.status_code == 303
    with transaction(session_factory) as db:
        app = db.scalar(__import__("sqlalchemy").select(App).where(App.app_id == owner.app_id))
        doc, _ = flows_service.current(db, app)
        assert doc.experiments[0].active is False and doc.experiences[0].id == "discount"
    # Another app's owner finds nothing here.
    zed = signed_in("zed@example.com")
    assert zed.client.get(f"{base}?{RANGE}").status_code == 404
