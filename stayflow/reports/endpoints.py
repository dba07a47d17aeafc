"""Admin API: figures, breakdowns, comments, drill-downs, CSV, counting rules, experiments."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from stayflow.db import utcnow
from stayflow.deps import DB, CurrentApp
from stayflow.enrichment.models import FieldMapping
from stayflow.reports import experiments, read, service
from stayflow.reports.repository import Filters
from stayflow.reports.schemas import (
    CommentsOut,
    EndIn,
    EndOut,
    ExperimentOut,
    FiguresOut,
    OffersOut,
    SessionsOut,
    SettingsIn,
    SettingsOut,
    TableOut,
)

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Dimension = Literal[
    "reason", "plan", "interval", "account_age", "audience", "experience", "variant", "currency"
]
Figure = Literal[
    "sessions",
    "saves",
    "deflects",
    "cancels",
    "abandoned",
    "decided",
    "validated",
    "lapsed",
    "reactivations",
]
CsvTable = Literal[
    "figures",
    "over-time",
    "offers",
    "reason",
    "plan",
    "interval",
    "account_age",
    "audience",
    "experience",
    "variant",
    "currency",
]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_TEXT = r"^[^\x00-\x1f]{1,255}$"
MAX_CSV_SESSIONS = 100_000


def report_filters(
    since: date | None = Query(None, description="First day (UTC), default 29 days before until."),
    until: date | None = Query(None, description="Last day (UTC), inclusive; default today."),
    currency: str | None = Query(None, pattern="^[A-Za-z]{3}$"),
    experience: str | None = Query(None, pattern=_ID),
    offer: str | None = Query(None, pattern=_ID),
    reason: str | None = Query(None, pattern=_ID),
    audience: str | None = Query(None, pattern=_ID),
    variant: str | None = Query(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="experiment/variant",
    ),
    plan: str | None = Query(None, pattern=_TEXT),
) -> Filters:
    return read.filters(
        utcnow().date(),
        since,
        until,
        currency=currency,
        experience=experience,
        offer=offer,
        reason=reason,
        audience=audience,
        variant=variant,
        plan=plan,
    )


ReportFilters = Annotated[Filters, Depends(report_filters)]


@router.get("", response_model=FiguresOut)
def figures(db: DB, app: CurrentApp, f: ReportFilters) -> FiguresOut:
    return read.figures(db, app.id, f)


@router.get("/over-time", response_model=TableOut)
def over_time(db: DB, app: CurrentApp, f: ReportFilters) -> TableOut:
    return read.table(db, app.id, f, "over-time")


@router.get("/breakdowns/{dimension}", response_model=TableOut)
def breakdown(db: DB, app: CurrentApp, f: ReportFilters, dimension: Dimension) -> TableOut:
    return read.table(db, app.id, f, dimension)


@router.get("/offers", response_model=OffersOut)
def offers(db: DB, app: CurrentApp, f: ReportFilters) -> OffersOut:
    return read.offers(db, app.id, f)


@router.get("/comments", response_model=CommentsOut)
def comments(
    db: DB,
    app: CurrentApp,
    f: ReportFilters,
    q: str | None = Query(None, pattern=_TEXT, description="Words the comment contains."),
    before_id: int | None = Query(None, ge=1, le=2**62),
    limit: int = Query(50, ge=1, le=500),
) -> CommentsOut:
    return read.comments(db, app.id, f, q, before_id, limit)


@router.get("/sessions", response_model=SessionsOut)
def sessions(
    db: DB,
    app: CurrentApp,
    f: ReportFilters,
    figure: Figure = Query("sessions", description="The figure whose sessions to list."),
    before_id: int | None = Query(None, ge=1, le=2**62),
    limit: int = Query(100, ge=1, le=500),
) -> SessionsOut:
    return read.sessions(db, app.id, f, figure, before_id, limit)


def _csv(name: str, lines: object) -> StreamingResponse:
    return StreamingResponse(
        lines,  # type: ignore[arg-type]
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="stayflow-{name}.csv"'},
    )


@router.get(
    "/csv/sessions",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per session."}},
)
def sessions_csv(
    db: DB,
    app: CurrentApp,
    f: ReportFilters,
    figure: Figure = Query("sessions"),
) -> StreamingResponse:
    mapped = list(
        db.scalars(
            select(FieldMapping.field)
            .where(FieldMapping.app_pk == app.id)
            .order_by(FieldMapping.position, FieldMapping.field)
        )
    )
    # Rows are read now, while the request's transaction is open (not after it closes).
    lines = list(read.sessions_csv(db, app.id, f, figure, mapped, MAX_CSV_SESSIONS))
    return _csv(f"sessions-{figure}", iter(lines))


@router.get(
    "/csv/{table}",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The table as CSV."}},
)
def table_csv(db: DB, app: CurrentApp, f: ReportFilters, table: CsvTable) -> StreamingResponse:
    return _csv(table, iter(list(read.table_csv(db, app.id, f, table))))


def _settings_out(db: DB, app_pk: int) -> SettingsOut:
    row = service.get_settings(db, app_pk)
    if row is None:
        return SettingsOut(recount_pending=False)
    return SettingsOut(
        dedup_days=row.dedup_days,
        blocked_domains=list(row.blocked_domains),
        test_accounts=list(row.test_accounts),
        recount_pending=row.rebuild_requested,
    )


@router.get("/settings", response_model=SettingsOut)
def get_settings(db: DB, app: CurrentApp) -> SettingsOut:
    return _settings_out(db, app.id)


@router.put("/settings", response_model=SettingsOut)
def put_settings(body: SettingsIn, db: DB, app: CurrentApp) -> SettingsOut:
    service.set_settings(
        db,
        app.id,
        dedup_days=body.dedup_days,
        blocked_domains=body.blocked_domains,
        test_accounts=body.test_accounts,
    )
    return _settings_out(db, app.id)


@router.post("/refresh")
def refresh(db: DB, app: CurrentApp) -> dict[str, int]:
    """Recount what changed now, instead of waiting for the next minute's job."""
    return {"recounted": service.refresh_all(db, app.id, max_rounds=20)}


@router.get("/experiments/{experiment_id}", response_model=ExperimentOut)
def experiment(
    db: DB,
    app: CurrentApp,
    experiment_id: str = Path(pattern=_ID),
    since: date = Query(date(2000, 1, 1)),
    until: date | None = Query(None),
    currency: str | None = Query(None, pattern="^[A-Za-z]{3}$"),
    metric: Literal["mrr_per_session", "save_rate"] = Query("mrr_per_session"),
) -> ExperimentOut:
    until = until or utcnow().date()
    if since > until:
        raise read.InvalidRange("since must be on or before until")
    found = experiments.report(
        db,
        app,
        experiment_id,
        since=since,
        until=until,
        currency=currency.lower() if currency else None,
        metric=metric,
    )
    return read.experiment_out(found)


@router.post("/experiments/{experiment_id}/end", response_model=EndOut)
def end_experiment(
    body: EndIn, db: DB, app: CurrentApp, experiment_id: str = Path(pattern=_ID)
) -> EndOut:
    applied = experiments.end(db, app, experiment_id, body.promote)
    return EndOut(experiment_id=experiment_id, promoted=body.promote, flows_version=applied.version)
