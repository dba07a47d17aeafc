"""The reports API: figures, breakdowns, filters, drill-down, comments, CSV, settings --
owner, another app, stranger; bad input answers 4xx."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stayflow.db import transaction
from tests.conftest import STRANGER_HEADERS, Tenant
from tests.reports.helpers import BASE, app_pk, finish, new_session

Q = {"since": "2026-01-01", "until": "2026-01-31"}


@pytest.fixture
def seeded(session_factory: sessionmaker[Session], owner: Tenant, other: Tenant) -> None:
    with transaction(session_factory) as db:
        pk = app_pk(db, owner.app_id)
        a = new_session(db, pk, "sub_a", BASE, offers_shown=["off10", "pause"], plan="Pro")
        finish(db, a, "saved", offer="off10", reason="too_expensive", comment="=SUM(A1) too pricey")
        b = new_session(
            db, pk, "sub_b", BASE + timedelta(days=1), offers_shown=["off10"], plan="Team"
        )
        finish(db, b, "canceled", reason="too_expensive", comment="Way too expensive")
        c = new_session(db, pk, "sub_c", BASE + timedelta(days=2), currency="eur", plan="Pro")
        finish(db, c, "deflected", reason="unused")
        d = new_session(db, pk, "sub_d", BASE + timedelta(days=3), email="qa@test.invalid")
        finish(db, d, "canceled", reason="unused")
        new_session(db, pk, "sub_e", BASE + timedelta(days=40))  # outside the range
        o = new_session(db, app_pk(db, other.app_id), "sub_o", BASE)
        finish(db, o, "canceled", reason="unused", comment="other app's comment")


def test_figures_breakdowns_and_drill_down(
    client: TestClient, owner: Tenant, other: Tenant, seeded: None
) -> None:
    h = owner.headers
    assert client.post("/api/v1/reports/refresh", headers=h).json()["recounted"] >= 5
    put = client.put(
        "/api/v1/reports/settings",
        headers=h,
        json={"dedup_days": 60, "blocked_domains": ["test.invalid"], "test_accounts": []},
    )
    assert put.status_code == 200 and put.json()["recount_pending"] is True
    client.post("/api/v1/reports/refresh", headers=h)
    body = client.get("/api/v1/reports", headers=h, params=Q).json()
    assert body["source"] == "rollups"
    usd = next(r for r in body["per_currency"] if r["currency"] == "usd")
    assert (usd["sessions"], usd["saves"], usd["cancels"], usd["decided"]) == (2, 1, 1, 2)
    assert usd["save_rate"] == 0.5
    eur = next(r for r in body["per_currency"] if r["currency"] == "eur")
    assert (eur["sessions"], eur["deflects"]) == (1, 1)
    # One filter reads the rollups kept per filter value; two read the facts; both agree.
    filtered = client.get("/api/v1/reports", headers=h, params={**Q, "reason": "too_expensive"})
    assert filtered.json()["source"] == "rollups"
    assert [(r["currency"], r["sessions"]) for r in filtered.json()["per_currency"]] == [("usd", 2)]
    two = client.get(
        "/api/v1/reports", headers=h, params={**Q, "reason": "too_expensive", "plan": "Pro"}
    )
    assert two.json()["source"] == "facts"
    assert [(r["currency"], r["sessions"]) for r in two.json()["per_currency"]] == [("usd", 1)]
    reasons = client.get("/api/v1/reports/breakdowns/reason", headers=h, params=Q).json()["rows"]
    assert {(r["currency"], r["value"], r["sessions"], r["save_rate"]) for r in reasons} == {
        ("usd", "too_expensive", 2, 0.5),
        ("eur", "unused", 1, 0.0),
    }
    plans = client.get(
        "/api/v1/reports/breakdowns/plan", headers=h, params={**Q, "currency": "USD"}
    ).json()["rows"]
    assert {(r["value"], r["sessions"]) for r in plans} == {("Pro", 1), ("Team", 1)}
    days = client.get("/api/v1/reports/over-time", headers=h, params=Q).json()["rows"]
    assert [(r["value"], r["currency"]) for r in days] == [
        ("2026-01-01", "usd"),
        ("2026-01-02", "usd"),
        ("2026-01-03", "eur"),
    ]
    offers = client.get("/api/v1/reports/offers", headers=h, params=Q).json()["rows"]
    assert {(r["offer_id"], r["shown"], r["accepted"]) for r in offers} == {
        ("off10", 2, 1),
        ("pause", 1, 0),
    }
    assert client.get("/api/v1/reports/offers", headers=h, params={**Q, "offer": "pause"}).json()[
        "rows"
    ] == [
        {
            "currency": "usd",
            "offer_id": "pause",
            "shown": 1,
            "accepted": 0,
            "acceptance_rate": 0.0,
            "mrr_kept": 0,
        }
    ]
    saves = client.get("/api/v1/reports/sessions", headers=h, params={**Q, "figure": "saves"})
    assert [s["subscription_id"] for s in saves.json()["data"]] == ["sub_a"]
    assert saves.json()["data"][0]["offers_shown"] == ["off10", "pause"]
    comments = client.get(
        "/api/v1/reports/comments", headers=h, params={**Q, "q": "EXPENSIVE"}
    ).json()["data"]
    assert [c["comment"] for c in comments] == ["Way too expensive"]
    first = client.get("/api/v1/reports/comments", headers=h, params={**Q, "limit": 1}).json()
    assert [c["comment"] for c in first["data"]] == ["Way too expensive"]  # newest first
    assert first["has_more"] is True
    rest = client.get(
        "/api/v1/reports/comments",
        headers=h,
        params={**Q, "limit": 1, "before_id": first["next_before_id"]},
    ).json()
    assert [c["comment"] for c in rest["data"]] == ["=SUM(A1) too pricey"]
    assert rest["has_more"] is False
    # Another app sees none of it.
    theirs = client.get("/api/v1/reports/comments", headers=other.headers, params=Q).json()
    assert [c["comment"] for c in theirs["data"]] == []
    client.post("/api/v1/reports/refresh", headers=other.headers)
    theirs = client.get("/api/v1/reports/comments", headers=other.headers, params=Q).json()
    assert [c["comment"] for c in theirs["data"]] == ["other app's comment"]


def test_csv_exports(client: TestClient, owner: Tenant, seeded: None) -> None:
    h = owner.headers
    client.post("/api/v1/reports/refresh", headers=h)
    got = client.get("/api/v1/reports/csv/sessions", headers=h, params=Q)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert sorted(r["subscription_id"] for r in rows) == ["sub_a", "sub_b", "sub_c", "sub_d"]
    a = next(r for r in rows if r["subscription_id"] == "sub_a")
    assert (a["outcome"], a["offer_id"], a["currency"], a["reason_id"]) == (
        "saved",
        "off10",
        "usd",
        "too_expensive",
    )
    assert a["comment"] == "'=SUM(A1) too pricey"  # never a formula in a spreadsheet
    table = client.get("/api/v1/reports/csv/reason", headers=h, params=Q)
    lines = list(csv.DictReader(io.StringIO(table.text)))
    assert {(r["currency"], r["value"], r["sessions"]) for r in lines} == {
        ("usd", "too_expensive", "2"),
        ("usd", "unused", "1"),
        ("eur", "unused", "1"),
    }


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/reports", {"since": "2026-02-01", "until": "2026-01-01"}),
        ("/api/v1/reports", {"since": "2010-01-01", "until": "2026-01-01"}),
        ("/api/v1/reports", {"since": "yesterday"}),
        ("/api/v1/reports", {"currency": "dollars"}),
        ("/api/v1/reports", {"variant": "no-slash"}),
        ("/api/v1/reports/breakdowns/colour", {}),
        ("/api/v1/reports/sessions", {"figure": "everything"}),
        ("/api/v1/reports/csv/secrets", {}),
        ("/api/v1/reports/experiments/nope", {}),
    ],
)
def test_bad_input_is_4xx(
    client: TestClient, owner: Tenant, path: str, params: dict[str, str]
) -> None:
    got = client.get(path, headers=owner.headers, params=params)
    assert 400 <= got.status_code < 500, got.text
    assert got.json()["error"]["message"]


def test_settings_and_auth(client: TestClient, owner: Tenant) -> None:
    assert client.get("/api/v1/reports", headers=STRANGER_HEADERS).status_code == 401
    assert client.get("/api/v1/reports").status_code == 401
    bad = client.put("/api/v1/reports/settings", headers=owner.headers, json={"dedup_days": 500})
    assert bad.status_code == 422
    bad = client.put(
        "/api/v1/reports/settings",
        headers=owner.headers,
        json={"blocked_domains": ["two words"]},
    )
    assert bad.status_code == 400
    assert client.get("/api/v1/reports/settings", headers=owner.headers).json()["dedup_days"] == 60
    ended = client.post(
        "/api/v1/reports/experiments/nope/end", headers=owner.headers, json={"promote": None}
    )
    assert ended.status_code == 404
