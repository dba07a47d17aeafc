"""The admin's reports pages: figures, charts with their tables, drill-downs, CSV, and
experiments (ending one and promoting its winner is for owners)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select

from stayflow.admin import i18n
from stayflow.admin.i18n import N_
from stayflow.admin.models import OWNER
from stayflow.admin.web import (
    AdminPageError,
    AppPage,
    CurrentAppPage,
    Now,
    check_csrf,
    redirect,
    render,
)
from stayflow.deps import DB
from stayflow.enrichment.models import FieldMapping
from stayflow.errors import StayflowError
from stayflow.flows import service as flows_service
from stayflow.reports import charts, experiments, read, service
from stayflow.reports.repository import FIGURES, Filters

router = APIRouter(prefix="/admin/apps/{app_id}/reports", include_in_schema=False)
# The experiment page counts from here unless told a first day.
EXPERIMENT_START = date(2000, 1, 1)

Text = Annotated[str, Query(max_length=255)]
FormStr = Annotated[str, Form()]
FILTER_NAMES = ("currency", "experience", "offer", "reason", "audience", "variant", "plan")
BREAKDOWN_TITLES = {
    "reason": N_("Reasons"),
    "plan": N_("Plan"),
    "interval": N_("Billing interval"),
    "currency": N_("Currency"),
    "account_age": N_("Account age"),
    "audience": N_("Audience"),
    "experience": N_("Experience"),
    "variant": N_("Experiment variant"),
}
FILTER_LABELS = {
    "currency": N_("Currency"),
    "experience": N_("Experience"),
    "offer": N_("Offer"),
    "reason": N_("Reason"),
    "audience": N_("Audience"),
    "variant": N_("Variant"),
    "plan": N_("Plan"),
}
# The experiment verdicts (written in stayflow.reports.experiments), marked here so the
# admin's catalogs carry them; the page passes its language's gettext to the report.
VERDICTS = (
    N_("variant %(v)s saves more than %(c)s: %(d)s points (95%% CI %(lo)s to %(hi)s)"),
    N_("variant %(v)s saves less than %(c)s: %(d)s points (95%% CI %(lo)s to %(hi)s)"),
    N_("variant %(v)s keeps more MRR per session than %(c)s: %(d)s (95%% CI %(lo)s to %(hi)s)"),
    N_("variant %(v)s keeps less MRR per session than %(c)s: %(d)s (95%% CI %(lo)s to %(hi)s)"),
    N_("not enough data yet"),
    N_("no difference detected between %(v)s and %(c)s"),
    N_(
        "Not enough data yet: every variant needs %(n)d decided sessions (fewest: %(v)s "
        "with %(have)d)."
    ),
    N_("The control %(c)s does best."),
    N_("No difference detected yet."),
)
CHART_TEXT = (
    N_("Outcomes per day"),
    N_("Saves"),
    N_("Deflects"),
    N_("Cancels"),
    N_("Abandoned"),
    N_("Save rate per day (%%)"),
    N_("Save rate"),
    N_("Offers shown and accepted"),
    N_("Shown"),
    N_("Accepted"),
    N_("Sessions"),
)
SVG_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # pygal's inline styles only; an SVG shown as an image runs no script anyway.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def _gettext_for(page: AppPage) -> Callable[[str], str]:
    language = i18n.page_language(page.viewer.user.language)
    return i18n.translations(language).gettext


def _parse(
    since: str, until: str, now: date, **rest: str
) -> tuple[Filters | None, dict[str, str], str | None]:
    raw = {"since": since, "until": until, **rest}
    kept = {k: v.strip() for k, v in raw.items() if v and v.strip()}
    try:
        s = date.fromisoformat(kept["since"]) if "since" in kept else None
        u = date.fromisoformat(kept["until"]) if "until" in kept else None
    except ValueError:
        return None, kept, "Dates are written like 2026-12-01."
    variant = kept.get("variant")
    if variant is not None and "/" not in variant:
        return None, kept, "A variant is written experiment/variant."
    try:
        f = read.filters(now, s, u, **{k: kept.get(k) for k in FILTER_NAMES})
    except StayflowError as exc:
        return None, kept, exc.message
    return f, kept, None


def _filters(request: Request, now: date) -> tuple[Filters | None, dict[str, str], str | None]:
    q = request.query_params
    return _parse(
        q.get("since", ""), q.get("until", ""), now, **{k: q.get(k, "")[:255] for k in FILTER_NAMES}
    )


def _choices(db: DB, page: CurrentAppPage) -> dict[str, list[str]]:
    doc, _ = flows_service.current(db, page.access.app)
    return {
        "experience": [e.id for e in doc.experiences],
        "offer": [o.id for o in doc.offers],
        "reason": [r.id for r in doc.reasons],
        "audience": [a.id for a in doc.audiences],
        "variant": [f"{x.id}/{v.name}" for x in doc.experiments for v in x.variants],
        "experiments": [x.id for x in doc.experiments],
    }


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


@router.get("", response_class=HTMLResponse)
def reports(request: Request, db: DB, page: CurrentAppPage, now: Now) -> Response:
    app = page.access.app
    service.refresh_all(db, app.id, max_rounds=5)
    f, kept, error = _filters(request, now.date())
    ctx: dict[str, Any] = {
        "section": "reports",
        "kept": kept,
        "error": error,
        "choices": _choices(db, page),
        "pct": _pct,
        "money": experiments.money,
        "filter_names": FILTER_NAMES,
        "filter_labels": FILTER_LABELS,
        "f": f,
    }
    if f is None:
        return render("reports.html", 400, **page.context(**ctx))
    query = urlencode(f.query())
    base = f"/admin/apps/{app.app_id}/reports"
    board = read.dashboard(db, app.id, f)
    ctx.update(
        f=f,
        query=query,
        base=base,
        figures=board.figures,
        over_time=board.over_time,
        breakdowns={d: board.breakdowns[d] for d in BREAKDOWN_TITLES},
        breakdown_titles=BREAKDOWN_TITLES,
        offers=board.offers,
        comments=read.comments(
            db, app.id, f, request.query_params.get("q", "")[:255] or None, None, 50
        ),
        q=request.query_params.get("q", "")[:255],
        figure_names=FIGURES,
    )
    return render("reports.html", **page.context(**ctx))


def _svg(body: bytes) -> Response:
    return Response(body, media_type="image/svg+xml", headers=SVG_HEADERS)


@router.get("/charts/{name}.svg")
def chart(request: Request, db: DB, page: CurrentAppPage, now: Now, name: str) -> Response:
    f, _kept, error = _filters(request, now.date())
    if f is None:
        raise AdminPageError(400, error or "Bad filter.")
    app_pk = page.access.app.id
    _gettext = _gettext_for(page)
    if name in ("outcomes", "save-rate"):
        rows = read.table(db, app_pk, f, "over-time").rows
        days = sorted({r.value for r in rows})
        per: dict[str, dict[str, int]] = {d: {} for d in days}
        for r in rows:
            for k in ("saves", "deflects", "cancels", "abandoned", "decided"):
                per[r.value][k] = per[r.value].get(k, 0) + getattr(r, k)
        if name == "outcomes":
            series = [
                (_gettext(label), [per[d].get(k, 0) for d in days])
                for k, label in (
                    ("saves", "Saves"),
                    ("deflects", "Deflects"),
                    ("cancels", "Cancels"),
                    ("abandoned", "Abandoned"),
                )
            ]
            return _svg(charts.stacked(_gettext("Outcomes per day"), days, series))
        rates = [
            round(100 * per[d]["saves"] / per[d]["decided"], 1) if per[d].get("decided") else None
            for d in days
        ]
        return _svg(
            charts.line(
                _gettext("Save rate per day (%%)") % {}, days, [(_gettext("Save rate"), rates)]
            )
        )
    if name == "offers":
        offer_rows = read.offers(db, app_pk, f).rows
        labels = [f"{r.offer_id} {r.currency}" for r in offer_rows]
        return _svg(
            charts.bars(
                _gettext("Offers shown and accepted"),
                labels,
                [
                    (_gettext("Shown"), [r.shown for r in offer_rows]),
                    (_gettext("Accepted"), [r.accepted for r in offer_rows]),
                ],
            )
        )
    if name in BREAKDOWN_TITLES:
        table_rows = read.table(db, app_pk, f, name).rows
        labels = [f"{r.value or '-'} {r.currency}" for r in table_rows]
        return _svg(
            charts.bars(
                _gettext(BREAKDOWN_TITLES[name]),
                labels,
                [
                    (_gettext("Sessions"), [r.sessions for r in table_rows]),
                    (_gettext("Saves"), [r.saves for r in table_rows]),
                ],
            )
        )
    raise AdminPageError(404, "There is no such chart.")


@router.get("/sessions", response_class=HTMLResponse)
def drill_down(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    now: Now,
    figure: Annotated[str, Query(max_length=20)] = "sessions",
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    f, _kept, error = _filters(request, now.date())
    if figure not in FIGURES:
        error = f"Choose a figure: {', '.join(FIGURES)}."
    if f is None or error:
        raise AdminPageError(400, error or "Bad filter.")
    found = read.sessions(db, page.access.app.id, f, figure, before, 100)
    return render(
        "reports_sessions.html",
        **page.context(
            section="reports",
            figure=figure,
            found=found,
            query=urlencode(f.query()),
            base=f"/admin/apps/{page.access.app.app_id}/reports",
            money=experiments.money,
        ),
    )


def _csv_response(name: str, lines: list[str]) -> StreamingResponse:
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="stayflow-{name}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/csv/{table}")
def csv_download(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    now: Now,
    table: str,
    figure: Annotated[str, Query(max_length=20)] = "sessions",
) -> Response:
    f, _kept, error = _filters(request, now.date())
    if f is None:
        raise AdminPageError(400, error or "Bad filter.")
    app_pk = page.access.app.id
    if table == "sessions":
        if figure not in FIGURES:
            raise AdminPageError(400, f"Choose a figure: {', '.join(FIGURES)}.")
        mapped = list(
            db.scalars(
                select(FieldMapping.field)
                .where(FieldMapping.app_pk == app_pk)
                .order_by(FieldMapping.position, FieldMapping.field)
            )
        )
        lines = list(read.sessions_csv(db, app_pk, f, figure, mapped, 100_000))
        return _csv_response(f"sessions-{figure}", lines)
    if table not in ("figures", *read.TABLES):
        raise AdminPageError(404, "There is no such table.")
    return _csv_response(table, list(read.table_csv(db, app_pk, f, table)))


def _experiment_range(since: str, until: str, today: date) -> tuple[date, date]:
    """The experiment page's dates: from the first day (blank) to today (blank)."""
    try:
        first = date.fromisoformat(since.strip()) if since.strip() else EXPERIMENT_START
        last = date.fromisoformat(until.strip()) if until.strip() else today
    except ValueError as exc:
        raise AdminPageError(400, i18n.Message("Dates are written like 2026-12-01.")) from exc
    if first > last:
        raise AdminPageError(400, i18n.Message("The first day must be on or before the last."))
    return first, last


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment(
    db: DB,
    page: CurrentAppPage,
    now: Now,
    experiment_id: str,
    metric: Annotated[str, Query(max_length=20)] = "mrr_per_session",
    currency: Annotated[str, Query(max_length=3)] = "",
    since: Annotated[str, Query(max_length=20)] = "",
    until: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    app = page.access.app
    first, last = _experiment_range(since, until, now.date())
    service.refresh_all(db, app.id, max_rounds=5)
    if metric not in experiments.METRICS:
        raise AdminPageError(400, "Choose a metric: mrr_per_session or save_rate.")
    try:
        found = experiments.report(
            db,
            app,
            experiment_id,
            since=first,
            until=last,
            currency=currency.lower() or None,
            metric=metric,
            gettext=_gettext_for(page),
        )
    except StayflowError as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc
    return render(
        "reports_experiment.html",
        **page.context(
            section="reports",
            report=found,
            dates={"since": since.strip(), "until": until.strip()},
            metric_link=urlencode(
                {
                    "metric": "save_rate"
                    if found.metric == "mrr_per_session"
                    else "mrr_per_session",
                    **{k: v.strip() for k, v in (("since", since), ("until", until)) if v.strip()},
                }
            ),
            is_owner=page.access.allows(OWNER),
            pct=_pct,
            money=experiments.money,
            notice=None,
        ),
    )


@router.post("/experiments/{experiment_id}/end")
def end_experiment(
    request: Request,
    db: DB,
    page: CurrentAppPage,
    experiment_id: str,
    csrf: FormStr = "",
    promote: FormStr = "",
) -> Response:
    check_csrf(request, page.viewer.session_hash, csrf)
    page.require(OWNER)
    try:
        experiments.end(db, page.access.app, experiment_id, promote.strip()[:100] or None)
    except StayflowError as exc:
        raise AdminPageError(exc.status_code, exc.message) from exc
    return redirect(f"/admin/apps/{page.access.app.app_id}/reports/experiments/{experiment_id}")
