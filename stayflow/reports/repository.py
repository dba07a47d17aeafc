"""Every query the reports make. Figures read the rollups, also with one filter (experience,
offer, reason, audience, variant or plan: the rollups are kept per filter value too); two
or more of those filters at once read the facts instead; drill-downs and exports read the
facts joined to the sessions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, Select, and_, case, cast, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from stayflow.attribution.models import AttributionWatch
from stayflow.cancel_sessions.models import CancelSession
from stayflow.reports.facts import DIMENSION_COLUMNS, FILTERS
from stayflow.reports.models import COUNTERS, ReportFact, ReportOfferRollup, ReportRollup

Counters = dict[str, int]
BREAKDOWNS = (
    "reason",
    "plan",
    "interval",
    "account_age",
    "audience",
    "experience",
    "variant",
    "currency",
)
# What a figure's drill-down lists (figure -> condition on the facts).
FIGURES = (
    "sessions",
    "saves",
    "deflects",
    "cancels",
    "abandoned",
    "decided",
    "validated",
    "lapsed",
    "reactivations",
)


@dataclass(frozen=True)
class Filters:
    since: date
    until: date  # inclusive
    currency: str | None = None
    experience: str | None = None
    offer: str | None = None
    reason: str | None = None
    audience: str | None = None
    variant: str | None = None  # "experiment/variant"
    plan: str | None = None

    @property
    def rollup_filter(self) -> tuple[str, str] | None:
        """The rollups' (filter_dim, filter_value) that answer this view: ``("", "")``
        without a filter, the filter when there is one; None for two or more (the rollups
        are kept per single filter: such a view reads the facts)."""
        chosen = [
            (name, getattr(self, name)) for name in FILTERS if getattr(self, name) is not None
        ]
        if not chosen:
            return ("", "")
        # The rollups keep no empty filter value (the API and the page never ask for one).
        return chosen[0] if len(chosen) == 1 and chosen[0][1] else None

    @property
    def needs_facts(self) -> bool:
        return self.rollup_filter is None

    def query(self) -> dict[str, str]:
        """As URL query parameters (for links that keep the view)."""
        out = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        for name in ("currency", "experience", "offer", "reason", "audience", "variant", "plan"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


F = ReportFact
R = ReportRollup


def _fact_where(app_pk: int, f: Filters, *, by_index: bool = True) -> list[ColumnElement[bool]]:
    # by_index=False: "app_pk + 0" keeps the planner off the facts' (app_pk, day) index,
    # so a query walked from the sessions' side (comments) stays on that side.
    where: list[ColumnElement[bool]] = [
        F.app_pk == app_pk if by_index else (F.app_pk + 0) == app_pk,
        F.day >= f.since,
        F.day <= f.until,
        F.counted.is_(True),
        F.excluded.is_(False),
    ]
    if f.currency is not None:
        where.append(F.currency == f.currency)
    if f.experience is not None:
        where.append(F.experience_id == f.experience)
    if f.reason is not None:
        where.append(F.reason_id == f.reason)
    if f.audience is not None:
        where.append(F.audience_id == f.audience)
    if f.plan is not None:
        where.append(F.plan == f.plan)
    if f.offer is not None:
        where.append(F.offers_shown.contains(f",{f.offer},", autoescape=True))
    if f.variant is not None:
        experiment, _, variant = f.variant.partition("/")
        where.extend([F.experiment_id == experiment, F.variant_id == variant])
    return where


def _one_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _fact_counters(src: Any = F) -> list[ColumnElement[Any]]:
    """The counters summed over facts (``src``: the facts' table, or a subquery of it)."""
    return [
        func.count().label("sessions"),
        _one_if(src.outcome == "saved").label("saves"),
        _one_if(src.outcome.in_(("deflected", "redirected"))).label("deflects"),
        _one_if(src.outcome == "canceled").label("cancels"),
        _one_if(src.outcome == "abandoned").label("abandoned"),
        _one_if(src.status == "validated").label("validated"),
        _one_if(src.status == "lapsed").label("lapsed"),
        _one_if(src.status == "reactivated").label("reactivations"),
        func.sum(src.mrr_kept).label("mrr_kept"),
        func.sum(src.mrr_kept * src.mrr_kept).label("mrr_kept_sq"),
        func.sum(src.mrr_lost).label("mrr_lost"),
        func.sum(src.cash).label("cash"),
    ]


def _rollup_where(
    app_pk: int, f: Filters, table: type[ReportRollup] | type[ReportOfferRollup] = ReportRollup
) -> list[ColumnElement[bool]]:
    """The rows of a rollup table (both carry the same key columns) that ``f`` reads."""
    chosen = f.rollup_filter
    assert chosen is not None, "two or more filters read the facts"
    where = [
        table.app_pk == app_pk,
        table.filter_dim == chosen[0],
        table.filter_value == chosen[1],
        table.day >= f.since,
        table.day <= f.until,
    ]
    if f.currency is not None:
        where.append(table.currency == f.currency)
    return where


def _rollup_counters() -> list[ColumnElement[Any]]:
    return [func.sum(getattr(R, c)).label(c) for c in COUNTERS]


def _rows(db: Session, query: Select[Any], keys: int) -> dict[tuple[Any, ...], Counters]:
    out: dict[tuple[Any, ...], Counters] = {}
    for row in db.execute(query):
        values = tuple(row)
        counters = {c: int(v or 0) for c, v in zip(COUNTERS, values[keys:], strict=True)}
        # A rollup row whose facts all moved away sums to zero: nothing to show.
        if any(counters.values()):
            out[values[:keys]] = counters
    return out


def grouped(db: Session, app_pk: int, f: Filters, by: str) -> dict[tuple[Any, ...], Counters]:
    """Counters grouped by (currency, value) for a breakdown, (day, currency) for ``day``, or
    (currency,) for ``all``."""
    if f.needs_facts:
        where = _fact_where(app_pk, f)
        if by == "all":
            keys: list[Any] = [F.currency]
        elif by == "day":
            keys = [F.day, F.currency]
        elif by == "currency":
            keys = [F.currency, F.currency]
        elif by == "variant":
            keys = [F.currency, F.experiment_id, F.variant_id]
            where.append(F.experiment_id != "")
        else:
            keys = [F.currency, getattr(F, DIMENSION_COLUMNS[by])]
        rows = _rows(db, select(*keys, *_fact_counters()).where(*where).group_by(*keys), len(keys))
        if by == "variant":
            return {(k[0], f"{k[1]}/{k[2]}"): v for k, v in rows.items()}
        return rows
    where = _rollup_where(app_pk, f)
    if by == "all":
        keys = [R.currency]
        where.append(R.dimension == "all")
    elif by == "day":
        keys = [R.day, R.currency]
        where.append(R.dimension == "all")
    elif by == "currency":
        keys = [R.currency, R.currency]
        where.append(R.dimension == "all")
    else:
        keys = [R.currency, R.value]
        where.append(R.dimension == by)
    return _rows(db, select(*keys, *_rollup_counters()).where(*where).group_by(*keys), len(keys))


# The facts' columns (by name) of each grouping the page shows, for one pass over them.
_FACT_GROUPS: dict[str, tuple[str, ...]] = {
    "day": ("day",),
    **{by: (column,) for by, column in DIMENSION_COLUMNS.items()},
    "variant": ("experiment_id", "variant_id"),
}
_FACT_GROUP_COLUMNS = ("day", *DIMENSION_COLUMNS.values(), "experiment_id", "variant_id")


def _grouping_bits(columns: tuple[str, ...]) -> int:
    """PostgreSQL's GROUPING(...) of a set grouped by ``columns``: a 1 bit (first column
    highest) for each column the set leaves out."""
    width = len(_FACT_GROUP_COLUMNS)
    return sum(1 << (width - 1 - i) for i, c in enumerate(_FACT_GROUP_COLUMNS) if c not in columns)


def _facts_in_one_pass(db: Session, app_pk: int, f: Filters) -> dict[str, dict[Any, Counters]]:
    """``dashboard`` from the facts in one scan (PostgreSQL's GROUPING SETS), for the views
    the rollups do not answer (two or more filters)."""
    by_bits = {_grouping_bits(columns): name for name, columns in _FACT_GROUPS.items()}
    columns = [getattr(F, c) for c in _FACT_GROUP_COLUMNS]
    sets = [tuple_(F.currency, *[getattr(F, c) for c in cs]) for cs in _FACT_GROUPS.values()]
    query = (
        select(func.grouping(*columns), F.currency, *columns, *_fact_counters())
        .where(*_fact_where(app_pk, f))
        .group_by(func.grouping_sets(*sets))
    )
    width = 2 + len(columns)
    out: dict[str, dict[Any, Counters]] = {name: {} for name in _FACT_GROUPS}
    for row in db.execute(query):
        values = tuple(row)
        name = by_bits[int(values[0])]
        currency = values[1]
        named = dict(zip(_FACT_GROUP_COLUMNS, values[2:width], strict=True))
        counters = {c: int(v or 0) for c, v in zip(COUNTERS, values[width:], strict=True)}
        if name == "day":
            out["day"][(named["day"], currency)] = counters
        elif name == "variant":
            if named["experiment_id"]:
                key = f"{named['experiment_id']}/{named['variant_id']}"
                out["variant"][(currency, key)] = counters
        else:
            out[name][(currency, named[DIMENSION_COLUMNS[name]])] = counters
    return out


def _facts_in_one_scan(db: Session, app_pk: int, f: Filters) -> dict[str, dict[Any, Counters]]:
    """``dashboard`` from the facts where GROUPING SETS are missing (SQLite): the matching
    facts are read once into a common table expression (used by every grouping, so SQLite
    materializes it) and each grouping sums that, in one UNION ALL statement."""
    wanted = (*_FACT_GROUP_COLUMNS, "currency", "outcome", "status", "mrr_kept", "mrr_lost", "cash")
    matched = select(*[getattr(F, c) for c in wanted]).where(*_fact_where(app_pk, f)).cte("matched")
    m = matched.c
    no_day = cast(None, Date)
    parts = []
    for name, columns in _FACT_GROUPS.items():
        if name == "day":
            keys: list[Any] = [m.day, literal(""), literal("")]
        else:
            keys = [no_day, getattr(m, columns[0])]
            keys.append(getattr(m, columns[1]) if len(columns) > 1 else literal(""))
        parts.append(
            select(literal(name), m.currency, *keys, *_fact_counters(m))
            .where(m.experiment_id != "" if name == "variant" else literal(True))
            .group_by(*[getattr(m, c) for c in ("currency", *columns)])
        )
    out: dict[str, dict[Any, Counters]] = {name: {} for name in _FACT_GROUPS}
    for row in db.execute(union_all(*parts)):
        name, currency, day, first, second, *sums = tuple(row)
        counters = {c: int(v or 0) for c, v in zip(COUNTERS, sums, strict=True)}
        if name == "day":
            out["day"][(day, currency)] = counters
        elif name == "variant":
            out["variant"][(currency, f"{first}/{second}")] = counters
        else:
            out[name][(currency, first)] = counters
    return out


def dashboard(db: Session, app_pk: int, f: Filters) -> dict[str, dict[tuple[Any, ...], Counters]]:
    """Every grouping the reports page shows, by ``grouped``'s keys: ``day`` and each of
    ``BREAKDOWNS`` except ``currency`` (the caller sums ``day`` into the figures and the
    currency breakdown). From the rollups, one query: each dimension per value, ``all``
    per day."""
    if f.needs_facts:
        if db.get_bind().dialect.name == "postgresql":
            return _facts_in_one_pass(db, app_pk, f)
        return _facts_in_one_scan(db, app_pk, f)
    day = case((R.dimension == "all", R.day), else_=None).label("per_day")
    query = (
        select(R.dimension, R.value, R.currency, day, *_rollup_counters())
        .where(*_rollup_where(app_pk, f))
        .group_by(R.dimension, R.value, R.currency, day)
    )
    out: dict[str, dict[Any, Counters]] = {"day": {}}
    out.update({by: {} for by in BREAKDOWNS if by != "currency"})
    for (dimension, value, currency, per_day), counters in _rows(db, query, 4).items():
        if dimension == "all":
            out["day"][(per_day, currency)] = counters
        elif dimension in out:
            out[dimension][(currency, value)] = counters
    return out


def _offers_from_facts_pg(db: Session, app_pk: int, f: Filters) -> dict[tuple[str, str], Counters]:
    """``offers`` from the facts, summed by PostgreSQL: each fact's offers (shown, and the
    accepted one) unnested from its ",a,b," list."""
    listed = (
        func.unnest(func.string_to_array(F.offers_shown.concat(F.offer_id), ","))
        .table_valued("offer")
        .render_derived()
    )
    each = select(listed.c.offer).where(listed.c.offer != "").distinct().lateral("each_offer")
    offer = each.c.offer
    took = F.offer_id == offer
    query = (
        select(
            F.currency,
            offer,
            _one_if(func.strpos(F.offers_shown, literal(",").concat(offer).concat(",")) > 0),
            _one_if(took),
            func.sum(case((took, F.mrr_kept), else_=0)),
        )
        .select_from(F)
        .join(each, literal(True))
        .where(*_fact_where(app_pk, f))
        .group_by(F.currency, offer)
    )
    if f.offer is not None:
        query = query.where(offer == f.offer)
    return {
        (currency, offer_id): {
            "shown": int(shown),
            "accepted": int(accepted),
            "mrr_kept": int(kept),
        }
        for currency, offer_id, shown, accepted, kept in db.execute(query)
    }


def offers(db: Session, app_pk: int, f: Filters) -> dict[tuple[str, str], Counters]:
    """(currency, offer) -> shown, accepted, mrr_kept."""
    out: dict[tuple[str, str], Counters] = {}
    if f.needs_facts and db.get_bind().dialect.name == "postgresql":
        return _offers_from_facts_pg(db, app_pk, f)
    if f.needs_facts:
        query = select(F.currency, F.offers_shown, F.offer_id, F.mrr_kept).where(
            *_fact_where(app_pk, f)
        )
        for currency, shown, accepted, kept in db.execute(query):
            for offer in {o for o in str(shown).split(",") if o} | (
                {accepted} if accepted else set()
            ):
                row = out.setdefault((currency, offer), {"shown": 0, "accepted": 0, "mrr_kept": 0})
                row["shown"] += int(f",{offer}," in str(shown))
                if offer == accepted:
                    row["accepted"] += 1
                    row["mrr_kept"] += int(kept)
        if f.offer is not None:
            out = {k: v for k, v in out.items() if k[1] == f.offer}
        return out
    OR = ReportOfferRollup
    where = _rollup_where(app_pk, f, OR)
    if f.offer is not None:
        where.append(OR.offer_id == f.offer)
    totals = (
        select(
            OR.currency,
            OR.offer_id,
            func.sum(OR.shown),
            func.sum(OR.accepted),
            func.sum(OR.mrr_kept),
        )
        .where(*where)
        .group_by(OR.currency, OR.offer_id)
    )
    for cur, offer_id, shown_n, accepted_n, kept_n in db.execute(totals):
        if not (shown_n or accepted_n or kept_n):
            continue
        out[(cur, offer_id)] = {
            "shown": int(shown_n or 0),
            "accepted": int(accepted_n or 0),
            "mrr_kept": int(kept_n or 0),
        }
    return out


def _figure_where(figure: str) -> ColumnElement[bool]:
    return {
        "sessions": literal(True),
        "saves": F.outcome == "saved",
        "deflects": F.outcome.in_(("deflected", "redirected")),
        "cancels": F.outcome == "canceled",
        "abandoned": F.outcome == "abandoned",
        "decided": F.outcome.in_(("saved", "deflected", "redirected", "canceled")),
        "validated": F.status == "validated",
        "lapsed": F.status == "lapsed",
        "reactivations": F.status == "reactivated",
    }[figure]


SESSION_COLUMNS = (
    F.id.label("fact_id"),
    F.session_id,
    F.subscription_id,
    F.created_at,
    F.day,
    F.currency,
    F.outcome,
    F.reason_id,
    F.offer_id,
    F.offers_shown,
    F.experience_id,
    F.experiment_id,
    F.variant_id,
    F.audience_id,
    F.plan,
    F.interval,
    F.account_age,
    F.status,
    F.mrr_kept,
    F.mrr_lost,
    F.cash,
    CancelSession.outcome_at,
    CancelSession.reason_comment,
    CancelSession.enriched_fields,
    AttributionWatch.mrr_at_session,
    AttributionWatch.customer_id,
)


def _sessions_query(app_pk: int, f: Filters, figure: str) -> Select[Any]:
    return (
        select(*SESSION_COLUMNS)
        .join(CancelSession, CancelSession.id == F.session_pk)
        .outerjoin(
            AttributionWatch,
            and_(AttributionWatch.session_id == F.session_id, AttributionWatch.app_pk == app_pk),
        )
        .where(*_fact_where(app_pk, f), _figure_where(figure))
    )


def sessions(
    db: Session, app_pk: int, f: Filters, figure: str, *, before_id: int | None, limit: int
) -> Sequence[Any]:
    query = _sessions_query(app_pk, f, figure)
    if before_id is not None:
        query = query.where(F.id < before_id)
    return db.execute(query.order_by(F.id.desc()).limit(limit)).all()


def iter_sessions(
    db: Session, app_pk: int, f: Filters, figure: str, *, limit: int, chunk: int = 1000
) -> Iterator[Any]:
    """The sessions behind a figure, newest first, in keyset pages (bounded by ``limit``)."""
    before: int | None = None
    given = 0
    while given < limit:
        rows = sessions(db, app_pk, f, figure, before_id=before, limit=min(chunk, limit - given))
        if not rows:
            return
        yield from rows
        given += len(rows)
        before = rows[-1].fact_id


def comments(
    db: Session, app_pk: int, f: Filters, search: str | None, *, before_id: int | None, limit: int
) -> Sequence[Any]:
    """The newest comments first. Walked from the sessions' side, newest first, so the scan
    stops after ``limit`` comments instead of reading every fact in the range (the cursor
    is the cancel session's pk)."""
    query = (
        select(
            CancelSession.id.label("fact_id"),
            F.session_id,
            F.created_at,
            F.reason_id,
            F.outcome,
            F.currency,
            CancelSession.reason_comment,
        )
        .select_from(CancelSession)
        .join(F, F.session_pk == CancelSession.id)
        .where(
            CancelSession.app_pk == app_pk,
            CancelSession.reason_comment.is_not(None),
            # A fact's day is its session's UTC start day: the same range on the sessions'
            # side keeps the walk inside the range (with a filter that matches few
            # sessions, it would otherwise read back through every older session).
            CancelSession.created_at >= datetime.combine(f.since, time(), UTC),
            CancelSession.created_at < datetime.combine(f.until + timedelta(days=1), time(), UTC),
            # SQLite would start from the facts' index otherwise; PostgreSQL's planner
            # needs no hint (and a wrong row estimate from the hint misleads it).
            *_fact_where(app_pk, f, by_index=db.get_bind().dialect.name == "postgresql"),
        )
    )
    if search:
        query = query.where(
            func.lower(CancelSession.reason_comment).contains(search.lower(), autoescape=True)
        )
    if before_id is not None:
        cursor_at = db.scalar(
            select(CancelSession.created_at).where(
                CancelSession.app_pk == app_pk, CancelSession.id == before_id
            )
        )
        if cursor_at is None:
            return []
        query = query.where(
            or_(
                CancelSession.created_at < cursor_at,
                and_(CancelSession.created_at == cursor_at, CancelSession.id < before_id),
            )
        )
    # The order of the sessions' (app_pk, created_at) index: the scan stops after ``limit``.
    order = (CancelSession.created_at.desc(), CancelSession.id.desc())
    return db.execute(query.order_by(*order).limit(limit)).all()


def variant_arms(
    db: Session, app_pk: int, experiment_id: str, since: date, until: date
) -> dict[tuple[str, str], Counters]:
    """(currency, variant id) -> counters, from the ``variant`` rollups of one experiment."""
    prefix = f"{experiment_id}/"
    query = (
        select(R.currency, R.value, *_rollup_counters())
        .where(
            R.app_pk == app_pk,
            R.filter_dim == "",
            R.filter_value == "",
            R.dimension == "variant",
            R.day >= since,
            R.day <= until,
            R.value.startswith(prefix, autoescape=True),
        )
        .group_by(R.currency, R.value)
    )
    return {(k[0], k[1][len(prefix) :]): v for k, v in _rows(db, query, 2).items()}


def first_day(db: Session, app_pk: int) -> date | None:
    return db.scalar(
        select(func.min(R.day)).where(
            R.app_pk == app_pk, R.filter_dim == "", R.filter_value == "", R.dimension == "all"
        )
    )
