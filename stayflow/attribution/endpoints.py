"""Admin API: the revenue data card, the sessions behind it, the window and rates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, status

from stayflow.attribution import report, repository, service
from stayflow.attribution.schemas import (
    DataCard,
    RateOut,
    RatesIn,
    SettingsIn,
    SettingsOut,
    WatchList,
    WatchOut,
)
from stayflow.billing import repository as billing_repository
from stayflow.billing.service import NotConnected
from stayflow.db import utcnow
from stayflow.deps import DB, CurrentApp
from stayflow.errors import BadRequest
from stayflow.jobs import service as jobs

router = APIRouter(prefix="/api/v1/attribution", tags=["attribution"])

Status = Literal["pending", "validated", "lapsed", "unmatched", "confirmed", "reactivated"]
Outcome = Literal["saved", "deflected", "canceled"]


class InvalidRange(BadRequest):
    error_type = "invalid_range"


def _range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    since = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since
    until = until.replace(tzinfo=UTC) if until and until.tzinfo is None else until
    if since is not None and until is not None and since >= until:
        raise InvalidRange("since must be before until")
    return since, until


@router.get("", response_model=DataCard)
def data_card(
    db: DB,
    app: CurrentApp,
    since: datetime | None = Query(None, description="Sessions started at or after (UTC)."),
    until: datetime | None = Query(None, description="Sessions started before (UTC)."),
) -> DataCard:
    since, until = _range(since, until)
    return report.data_card(db, app.id, since, until, utcnow().date())


@router.get("/sessions", response_model=WatchList)
def sessions(
    db: DB,
    app: CurrentApp,
    status_: Status | None = Query(None, alias="status"),
    outcome: Outcome | None = Query(None),
    currency: str | None = Query(None, min_length=3, max_length=3, pattern="^[A-Za-z]{3}$"),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    before_id: int | None = Query(None, ge=1, le=2**62),
    limit: int = Query(100, ge=1, le=500),
) -> WatchList:
    since, until = _range(since, until)
    rows = repository.list_watches(
        db,
        app.id,
        status=status_,
        outcome=outcome,
        currency=currency,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit + 1,
    )
    return WatchList(
        data=[WatchOut.model_validate(r) for r in rows[:limit]], has_more=len(rows) > limit
    )


def _settings(db: DB, app_pk: int) -> SettingsOut:
    state = repository.get_or_create_state(db, app_pk)
    return SettingsOut(
        window_days=state.window_days,
        rates=[RateOut.model_validate(r) for r in repository.all_rates(db, app_pk)],
    )


@router.get("/settings", response_model=SettingsOut)
def get_settings(db: DB, app: CurrentApp) -> SettingsOut:
    return _settings(db, app.id)


@router.put("/settings", response_model=SettingsOut)
def put_settings(body: SettingsIn, db: DB, app: CurrentApp) -> SettingsOut:
    service.set_window(db, app.id, body.window_days)
    return _settings(db, app.id)


@router.put("/rates", response_model=SettingsOut)
def put_rates(body: RatesIn, db: DB, app: CurrentApp) -> SettingsOut:
    report.set_rates(db, app.id, body.rates)
    return _settings(db, app.id)


@router.post("/sync", status_code=status.HTTP_202_ACCEPTED)
def start_sync(db: DB, app: CurrentApp) -> dict[str, str]:
    conn = billing_repository.get_connection(db, app)
    if conn is None or not conn.connected:
        raise NotConnected("this app is not connected to Stripe")
    # At most one requested sync per app per minute.
    minute = int(utcnow().timestamp() // 60)
    jobs.enqueue(
        db, "attribution.sync", {}, app_pk=app.id, unique_key=f"attribution.sync:{app.id}:{minute}"
    )
    return {"status": "queued"}
