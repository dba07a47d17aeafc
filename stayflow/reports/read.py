"""The reports as the API and the admin pages show them (built from the repository)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stayflow.attribution import repository as attribution_repository
from stayflow.attribution.models import UNMATCHED, AttributionWatch
from stayflow.errors import BadRequest
from stayflow.reports import repository
from stayflow.reports.experiments import ExperimentReport
from stayflow.reports.models import COUNTERS
from stayflow.reports.repository import Filters
from stayflow.reports.schemas import (
    CommentOut,
    CommentsOut,
    ExperimentOut,
    Figures,
    FiguresOut,
    FiltersOut,
    OfferRow,
    OffersOut,
    RevenueCard,
    Row,
    SessionRowOut,
    SessionsOut,
    TableOut,
)

MAX_RANGE_DAYS = 3 * 366
TABLES = ("over-time", *repository.BREAKDOWNS, "offers")


class InvalidRange(BadRequest):
    error_type = "invalid_range"


def filters(
    today: date,
    since: date | None,
    until: date | None,
    **rest: str | None,
) -> Filters:
    until = until or today
    since = since or until - timedelta(days=29)
    if since > until:
        raise InvalidRange("since must be on or before until")
    if (until - since).days > MAX_RANGE_DAYS:
        raise InvalidRange(f"a range covers at most {MAX_RANGE_DAYS} days")
    cleaned = {k: (v.lower() if k == "currency" and v else v) or None for k, v in rest.items()}
    return Filters(since=since, until=until, **cleaned)


def filters_out(f: Filters) -> FiltersOut:
    return FiltersOut(**asdict(f))


def _figures(currency: str, c: dict[str, int]) -> dict[str, Any]:
    decided = c["saves"] + c["deflects"] + c["cancels"]
    return {
        "currency": currency,
        **{k: c[k] for k in COUNTERS if k != "mrr_kept_sq"},
        "decided": decided,
        "save_rate": c["saves"] / decided if decided else None,
    }


def _revenue(db: Session, app_pk: int) -> RevenueCard:
    state = attribution_repository.get_state(db, app_pk)
    # Two index counts (app; app + status), not a scan of every watch's amounts.
    watched = db.scalar(select(func.count()).where(AttributionWatch.app_pk == app_pk)) or 0
    unmatched = (
        db.scalar(
            select(func.count()).where(
                AttributionWatch.app_pk == app_pk, AttributionWatch.status == UNMATCHED
            )
        )
        or 0
    )
    return RevenueCard(
        last_sync_at=state.last_sync_at if state else None,
        last_sync_outcome=state.last_sync_outcome if state else None,
        sessions_matched=int(watched) - int(unmatched),
        sessions_unmatched=unmatched,
    )


def _figures_out(
    db: Session, app_pk: int, f: Filters, rows: dict[tuple[Any, ...], dict[str, int]]
) -> FiguresOut:
    return FiguresOut(
        filters=filters_out(f),
        source="facts" if f.needs_facts else "rollups",
        per_currency=[Figures(**_figures(k[0], v)) for k, v in sorted(rows.items())],
        revenue=_revenue(db, app_pk),
    )


def figures(db: Session, app_pk: int, f: Filters) -> FiguresOut:
    return _figures_out(db, app_pk, f, repository.grouped(db, app_pk, f, "all"))


def _table_out(
    f: Filters, dimension: str, grouped: dict[tuple[Any, ...], dict[str, int]]
) -> TableOut:
    by = "day" if dimension == "over-time" else dimension
    rows: list[Row] = []
    for key, counters in grouped.items():
        if by == "day":
            day, currency = key
            value = day.isoformat()
        else:
            currency, value = key
        rows.append(Row(value=str(value), **_figures(currency, counters)))
    if by == "day":
        rows.sort(key=lambda r: (r.value, r.currency))
    else:
        rows.sort(key=lambda r: (r.currency, -r.sessions, r.value))
    return TableOut(filters=filters_out(f), dimension=dimension, rows=rows)


def table(db: Session, app_pk: int, f: Filters, dimension: str) -> TableOut:
    by = "day" if dimension == "over-time" else dimension
    return _table_out(f, dimension, repository.grouped(db, app_pk, f, by))


@dataclass
class Dashboard:
    """What the reports page shows, read with one query per rollup table."""

    figures: FiguresOut
    over_time: TableOut
    breakdowns: dict[str, TableOut]
    offers: OffersOut


def _summed(
    rows: dict[tuple[Any, ...], dict[str, int]], key: Callable[[tuple[Any, ...]], tuple[Any, ...]]
) -> dict[tuple[Any, ...], dict[str, int]]:
    out: dict[tuple[Any, ...], dict[str, int]] = {}
    for k, counters in rows.items():
        total = out.setdefault(key(k), dict.fromkeys(COUNTERS, 0))
        for name, value in counters.items():
            total[name] += value
    return out


def dashboard(db: Session, app_pk: int, f: Filters) -> Dashboard:
    """The figures, outcomes per day, every breakdown and the offers (equal to calling
    ``figures``, ``table`` and ``offers`` one by one)."""
    grouped = repository.dashboard(db, app_pk, f)
    per_day = grouped.pop("day")
    per_currency = _summed(per_day, lambda k: (k[1],))
    grouped["currency"] = {(c[0], c[0]): v for c, v in per_currency.items()}
    return Dashboard(
        figures=_figures_out(db, app_pk, f, per_currency),
        over_time=_table_out(f, "over-time", per_day),
        breakdowns={d: _table_out(f, d, grouped[d]) for d in repository.BREAKDOWNS if d in grouped},
        offers=offers(db, app_pk, f),
    )


def offers(db: Session, app_pk: int, f: Filters) -> OffersOut:
    rows = [
        OfferRow(
            currency=currency,
            offer_id=offer,
            shown=c["shown"],
            accepted=c["accepted"],
            acceptance_rate=c["accepted"] / c["shown"] if c["shown"] else None,
            mrr_kept=c["mrr_kept"],
        )
        for (currency, offer), c in repository.offers(db, app_pk, f).items()
    ]
    rows.sort(key=lambda r: (r.currency, -r.shown, r.offer_id))
    return OffersOut(filters=filters_out(f), rows=rows)


def comments(
    db: Session, app_pk: int, f: Filters, q: str | None, before_id: int | None, limit: int
) -> CommentsOut:
    found = repository.comments(db, app_pk, f, q, before_id=before_id, limit=limit + 1)
    page = found[:limit]
    return CommentsOut(
        data=[
            CommentOut(
                session_id=r.session_id,
                created_at=r.created_at,
                reason_id=r.reason_id,
                outcome=r.outcome,
                comment=r.reason_comment or "",
            )
            for r in page
        ],
        has_more=len(found) > limit,
        next_before_id=page[-1].fact_id if len(found) > limit else None,
    )


def session_row(r: Any) -> SessionRowOut:
    return SessionRowOut(
        session_id=r.session_id,
        subscription_id=r.subscription_id,
        customer_id=r.customer_id or (r.enriched_fields or {}).get("subscription.customer.id"),
        created_at=r.created_at,
        outcome_at=r.outcome_at,
        outcome=r.outcome,
        reason_id=r.reason_id,
        comment=r.reason_comment,
        offer_id=r.offer_id,
        offers_shown=[o for o in str(r.offers_shown).split(",") if o],
        experience_id=r.experience_id,
        experiment_id=r.experiment_id,
        variant_id=r.variant_id,
        plan=r.plan,
        interval=r.interval,
        attribution_status=r.status,
        currency=r.currency,
        mrr_at_session=r.mrr_at_session,
        mrr_kept=r.mrr_kept,
        mrr_lost=r.mrr_lost,
        cash=r.cash,
    )


def sessions(
    db: Session, app_pk: int, f: Filters, figure: str, before_id: int | None, limit: int
) -> SessionsOut:
    found = repository.sessions(db, app_pk, f, figure, before_id=before_id, limit=limit + 1)
    page = found[:limit]
    return SessionsOut(
        figure=figure,
        data=[session_row(r) for r in page],
        has_more=len(found) > limit,
        next_before_id=page[-1].fact_id if len(found) > limit else None,
    )


def experiment_out(r: ExperimentReport) -> ExperimentOut:
    return ExperimentOut.model_validate(asdict(r))


# --- CSV ------------------------------------------------------------------------------


def _csv_lines(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if v is None else _safe_cell(v) for v in row])
        yield buffer.getvalue()


def _safe_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is prefixed with a quote (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def table_csv(db: Session, app_pk: int, f: Filters, name: str) -> Iterator[str]:
    if name == "offers":
        out = offers(db, app_pk, f)
        header = ["currency", "offer_id", "shown", "accepted", "acceptance_rate", "mrr_kept"]
        return _csv_lines(header, ([getattr(r, h) for h in header] for r in out.rows))
    if name == "figures":
        fig = figures(db, app_pk, f)
        header = list(Figures.model_fields)
        return _csv_lines(header, ([getattr(r, h) for h in header] for r in fig.per_currency))
    t = table(db, app_pk, f, name)
    header = ["value", *[h for h in Figures.model_fields]]
    return _csv_lines(header, ([getattr(r, h) for h in header] for r in t.rows))


SESSION_CSV = [
    "session_id",
    "subscription_id",
    "customer_id",
    "created_at",
    "outcome_at",
    "outcome",
    "reason_id",
    "comment",
    "offer_id",
    "offers_shown",
    "experience_id",
    "experiment_id",
    "variant_id",
    "plan",
    "interval",
    "attribution_status",
    "currency",
    "mrr_at_session",
    "mrr_kept",
    "mrr_lost",
    "cash",
]


def sessions_csv(
    db: Session, app_pk: int, f: Filters, figure: str, mapped: list[str], limit: int
) -> Iterator[str]:
    """One row per session; MRR figures in minor units of the row's currency."""

    def rows() -> Iterator[list[Any]]:
        for r in repository.iter_sessions(db, app_pk, f, figure, limit=limit):
            out = session_row(r).model_dump()
            out["offers_shown"] = " ".join(out["offers_shown"])
            fields = r.enriched_fields or {}
            yield [out[h] for h in SESSION_CSV] + [fields.get(m) for m in mapped]

    return _csv_lines(SESSION_CSV + [f"field.{m}" for m in mapped], rows())
