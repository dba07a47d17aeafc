"""The only writer of the reports' tables: facts and rollups kept in step. Never commits.

Other domains call ``mark_dirty`` in the transaction that changes a session (its outcome,
its attribution status); ``refresh`` (the ``reports.refresh`` job, or a caller that wants
fresh figures) recounts the subscribers of the dirty sessions and applies the difference
between their old and new facts to the rollups. ``rebuild`` recounts a whole app (after its
counting rules change).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from stayflow.attribution.models import AttributionWatch
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import utcnow
from stayflow.errors import BadRequest
from stayflow.reports import facts as F
from stayflow.reports.models import (
    COUNTERS,
    OFFER_COUNTERS,
    ReportDirty,
    ReportFact,
    ReportOfferRollup,
    ReportRollup,
    ReportSettings,
)

REFRESH_BATCH = 2000
# Rollup rows per upsert round trip.
UPSERT_BATCH = 1000
# Subscribers recounted per statement batch (and sessions per subscriber read at most).
SUBSCRIBER_BATCH = 500
MAX_SESSIONS_PER_SUBSCRIBER = 1000
# Bounds a rebuild: pages of SUBSCRIBER_BATCH subscribers (50 million subscribers).
MAX_REBUILD_PAGES = 100_000
_FACT_COLUMNS = (
    "session_id",
    "subscription_id",
    "created_at",
    "day",
    "currency",
    "outcome",
    "reason_id",
    "offer_id",
    "offers_shown",
    "experience_id",
    "experiment_id",
    "variant_id",
    "audience_id",
    "plan",
    "interval",
    "account_age",
    "status",
    "mrr_kept",
    "mrr_lost",
    "cash",
    "excluded",
    "counted",
)


# What ``apps.erase`` writes over an erased subscriber's ids (kept in step with it).
ERASED = "[erased]"


class InvalidReportSettings(BadRequest):
    error_type = "invalid_report_settings"


# --- marking --------------------------------------------------------------------------


def mark_dirty(db: Session, app_pk: int, session_ids: Iterable[str]) -> None:
    """Note sessions whose figures changed, in the caller's transaction."""
    rows = [{"app_pk": app_pk, "session_id": sid, "created_at": utcnow()} for sid in session_ids]
    if rows:
        db.execute(insert(ReportDirty.__table__), rows)  # type: ignore[arg-type]


# --- settings -------------------------------------------------------------------------


def get_settings(db: Session, app_pk: int) -> ReportSettings | None:
    return db.scalar(select(ReportSettings).where(ReportSettings.app_pk == app_pk))


def rules_of(row: ReportSettings | None) -> F.Rules:
    if row is None:
        return F.Rules()
    return F.Rules(
        dedup_days=row.dedup_days,
        blocked_domains=frozenset(d.lower() for d in row.blocked_domains or []),
        test_accounts=frozenset(a.lower() if "@" in a else a for a in row.test_accounts or []),
    )


def _clean_list(values: Sequence[str], what: str, limit: int = 500) -> list[str]:
    out: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if len(value) > 255 or any(c.isspace() for c in value) or "\x00" in value:
            raise InvalidReportSettings(f"{what}: {value[:40]!r} is not a valid entry")
        out.append(value)
    if len(out) > limit:
        raise InvalidReportSettings(f"{what}: at most {limit} entries")
    return sorted(set(out))


def set_settings(
    db: Session,
    app_pk: int,
    *,
    dedup_days: int,
    blocked_domains: Sequence[str],
    test_accounts: Sequence[str],
) -> ReportSettings:
    """Change the counting rules; the next refresh recounts the app's sessions."""
    if not 0 <= dedup_days <= 365:
        raise InvalidReportSettings("dedup_days must be between 0 and 365")
    domains = [d.lower().lstrip("@") for d in _clean_list(blocked_domains, "blocked_domains")]
    accounts = _clean_list(test_accounts, "test_accounts")
    row = get_settings(db, app_pk)
    if row is None:
        row = ReportSettings(app_pk=app_pk)
        db.add(row)
    changed = (row.dedup_days, row.blocked_domains, row.test_accounts) != (
        dedup_days,
        domains,
        accounts,
    )
    row.dedup_days, row.blocked_domains, row.test_accounts = dedup_days, domains, accounts
    row.updated_at = utcnow()
    if changed:
        row.rebuild_requested = True
    db.flush()
    return row


# --- recounting -----------------------------------------------------------------------


def _lock_app(db: Session, app_pk: int) -> None:
    """One recount per app at a time (PostgreSQL; SQLite has one writer anyway)."""
    if db.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(b"stayflow.reports") * 1_000_003 + app_pk
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key % (2**63)})


_SESSION_COLUMNS = (
    CancelSession.id,
    CancelSession.session_id,
    CancelSession.subscription_id,
    CancelSession.created_at,
    CancelSession.outcome,
    CancelSession.reason_id,
    CancelSession.offer_accepted_id,
    CancelSession.offers_shown,
    CancelSession.experience_id,
    CancelSession.experiment_id,
    CancelSession.variant_id,
    CancelSession.flow,
    CancelSession.enriched_fields,
    CancelSession.request_fields,
)


def _inputs(
    db: Session,
    app_pk: int,
    subscription_ids: Sequence[str] = (),
    *,
    session_pks: Sequence[int] = (),
) -> list[F.FactInput]:
    """Every session that counts (opened, or finished/abandoned) of these subscribers (or,
    with ``session_pks``, these sessions)."""
    chosen = (
        CancelSession.id.in_(list(session_pks))
        if session_pks
        else CancelSession.subscription_id.in_(list(subscription_ids))
    )
    rows = db.execute(
        select(*_SESSION_COLUMNS)
        .where(
            CancelSession.app_pk == app_pk,
            chosen,
            or_(CancelSession.viewed_at.is_not(None), CancelSession.outcome.is_not(None)),
        )
        .order_by(CancelSession.subscription_id, CancelSession.created_at.desc())
    ).all()
    inputs: list[F.FactInput] = []
    per: dict[str, int] = {}
    for r in rows:
        per[r.subscription_id] = per.get(r.subscription_id, 0) + 1
        if per[r.subscription_id] > MAX_SESSIONS_PER_SUBSCRIBER and r.subscription_id != ERASED:
            continue
        inputs.append(
            F.FactInput(
                F.SessionRow(
                    id=r.id,
                    session_id=r.session_id,
                    subscription_id=r.subscription_id,
                    created_at=r.created_at,
                    outcome=r.outcome,
                    reason_id=r.reason_id,
                    offer_accepted_id=r.offer_accepted_id,
                    offers_shown=list(r.offers_shown or []),
                    experience_id=r.experience_id,
                    experiment_id=r.experiment_id,
                    variant_id=r.variant_id,
                    flow=r.flow or {},
                    enriched_fields=r.enriched_fields or {},
                    request_fields=r.request_fields or {},
                )
            )
        )
    ids = [i.session.session_id for i in inputs]
    watches: dict[str, F.WatchRow] = {}
    for start in range(0, len(ids), 500):
        for w in db.execute(
            select(
                AttributionWatch.session_id,
                AttributionWatch.status,
                AttributionWatch.currency,
                AttributionWatch.mrr_kept,
                AttributionWatch.mrr_lost,
                AttributionWatch.cash_collected,
            ).where(
                AttributionWatch.app_pk == app_pk,
                AttributionWatch.session_id.in_(ids[start : start + 500]),
            )
        ):
            watches[w.session_id] = F.WatchRow(
                w.status, w.currency, int(w.mrr_kept), int(w.mrr_lost), int(w.cash_collected)
            )
    for item in inputs:
        item.watch = watches.get(item.session.session_id)
    return inputs


def new_facts(inputs: Sequence[F.FactInput], rules: F.Rules) -> dict[int, dict[str, Any]]:
    """Facts by session pk, with the dedup flags worked out per subscriber."""
    by_subscriber: dict[str, list[F.FactInput]] = {}
    for item in inputs:
        by_subscriber.setdefault(item.session.subscription_id, []).append(item)
    out: dict[int, dict[str, Any]] = {}
    for subscriber, items in by_subscriber.items():
        if subscriber == ERASED:
            # Erased subscribers are no longer told apart: each visit counts on its own.
            flags = [True] * len(items)
        else:
            flags = F.counted_flags([i.session.created_at for i in items], rules.dedup_days)
        for item, flag in zip(items, flags, strict=True):
            out[item.session.id] = F.fact_of(item, counted=flag, rules=rules)
    return out


def _old_facts(
    db: Session, app_pk: int, subscription_ids: Sequence[str]
) -> dict[int, dict[str, Any]]:
    table = ReportFact.__table__
    rows = db.execute(
        select(table).where(
            table.c.app_pk == app_pk, table.c.subscription_id.in_(list(subscription_ids))
        )
    ).mappings()
    return {int(r["session_pk"]): dict(r) for r in rows}


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(c) == new[c] for c in _FACT_COLUMNS)


def _upsert_add(
    db: Session,
    table: Table,
    keys: Sequence[str],
    counters: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    if not rows:
        return
    dialect = db.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows.sort(key=lambda r: tuple(str(r[k]) for k in keys))  # one lock order: no deadlocks
    # One single-row statement run for many rows (compiled once; the driver batches it):
    # a multi-row VALUES built per batch cost more to compile than to run.
    stmt = insert_fn(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: table.c[c] + stmt.excluded[c] for c in counters},
    )
    for start in range(0, len(rows), UPSERT_BATCH):
        db.execute(stmt, rows[start : start + UPSERT_BATCH])


def apply_deltas(
    db: Session,
    app_pk: int,
    rollup: dict[tuple[Any, ...], dict[str, int]],
    offer: dict[tuple[Any, ...], dict[str, int]],
) -> None:
    rollup_rows = [
        {
            "app_pk": app_pk,
            "filter_dim": filter_dim,
            "filter_value": filter_value[:255],
            "day": day,
            "currency": currency,
            "dimension": dimension,
            "value": value[:255],
            **{c: counters.get(c, 0) for c in COUNTERS},
        }
        for (day, currency, filter_dim, filter_value, dimension, value), counters in rollup.items()
    ]
    _upsert_add(
        db,
        ReportRollup.__table__,  # type: ignore[arg-type]
        ("app_pk", "filter_dim", "filter_value", "day", "dimension", "currency", "value"),
        COUNTERS,
        rollup_rows,
    )
    offer_rows = [
        {
            "app_pk": app_pk,
            "filter_dim": filter_dim,
            "filter_value": filter_value[:255],
            "day": day,
            "currency": currency,
            "offer_id": offer_id,
            **{c: counters.get(c, 0) for c in OFFER_COUNTERS},
        }
        for (day, currency, filter_dim, filter_value, offer_id), counters in offer.items()
    ]
    _upsert_add(
        db,
        ReportOfferRollup.__table__,  # type: ignore[arg-type]
        ("app_pk", "filter_dim", "filter_value", "day", "currency", "offer_id"),
        OFFER_COUNTERS,
        offer_rows,
    )


def _replace(
    db: Session, app_pk: int, old: dict[int, dict[str, Any]], new: dict[int, dict[str, Any]]
) -> int:
    """Write the new facts over the old ones and move the rollups by the difference."""
    table: Any = ReportFact.__table__
    gone = [pk for pk in old if pk not in new]
    before = [old[pk] for pk in gone]
    after: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for pk, fact in new.items():
        if pk in old:
            if _same(old[pk], fact):
                continue
            before.append(old[pk])
            db.execute(update(table).where(table.c.id == old[pk]["id"]).values(**fact))
        else:
            inserts.append({"app_pk": app_pk, "session_pk": pk, **fact})
        after.append(fact)
    if inserts:
        db.execute(insert(table), inserts)
    if gone:
        db.execute(delete(table).where(table.c.session_pk.in_(gone)))
    rollup, offers = F.deltas(before, after)
    apply_deltas(db, app_pk, rollup, offers)
    return len(after) + len(gone)


def recount(db: Session, app_pk: int, subscription_ids: Sequence[str], rules: F.Rules) -> int:
    """Recompute the facts of these subscribers and move the rollups by the difference."""
    changed = 0
    subs = sorted(set(subscription_ids) - {ERASED})
    for start in range(0, len(subs), SUBSCRIBER_BATCH):
        chunk = subs[start : start + SUBSCRIBER_BATCH]
        changed += _replace(
            db, app_pk, _old_facts(db, app_pk, chunk), new_facts(_inputs(db, app_pk, chunk), rules)
        )
    return changed


def recount_sessions(db: Session, app_pk: int, session_pks: Sequence[int], rules: F.Rules) -> int:
    """Recompute the facts of these sessions alone (erased ones: no subscriber to group by)."""
    changed = 0
    pks = sorted(set(session_pks))
    table = ReportFact.__table__
    for start in range(0, len(pks), SUBSCRIBER_BATCH):
        chunk = pks[start : start + SUBSCRIBER_BATCH]
        rows = db.execute(select(table).where(table.c.session_pk.in_(chunk))).mappings()
        old = {int(r["session_pk"]): dict(r) for r in rows}
        inputs = _inputs(db, app_pk, session_pks=chunk)
        changed += _replace(db, app_pk, old, new_facts(inputs, rules))
    return changed


def forget_subscriber(db: Session, app_pk: int, session_pks: Sequence[int]) -> int:
    """After an erasure: the sessions' facts lose the subscriber's ids now (same transaction)."""
    return recount_sessions(db, app_pk, session_pks, rules_of(get_settings(db, app_pk)))


def rebuild(db: Session, app_pk: int) -> int:
    """Recount every session of the app from scratch (after its counting rules changed)."""
    _lock_app(db, app_pk)
    for model in (ReportRollup, ReportOfferRollup, ReportFact):
        db.execute(delete(model).where(model.app_pk == app_pk))
    db.execute(delete(ReportDirty).where(ReportDirty.app_pk == app_pk))
    settings = get_settings(db, app_pk)
    rules = rules_of(settings)
    if settings is not None:
        settings.rebuild_requested = False
    total = 0
    after = ""
    for _ in range(MAX_REBUILD_PAGES):
        subs = list(
            db.scalars(
                select(CancelSession.subscription_id)
                .where(CancelSession.app_pk == app_pk, CancelSession.subscription_id > after)
                .group_by(CancelSession.subscription_id)
                .order_by(CancelSession.subscription_id)
                .limit(SUBSCRIBER_BATCH)
            )
        )
        if not subs:
            break
        total += recount(db, app_pk, subs, rules)
        if ERASED in subs:
            erased = db.scalars(
                select(CancelSession.id).where(
                    CancelSession.app_pk == app_pk, CancelSession.subscription_id == ERASED
                )
            ).all()
            total += recount_sessions(db, app_pk, list(erased), rules)
        after = subs[-1]
    return total


def refresh(db: Session, app_pk: int, *, batch: int = REFRESH_BATCH) -> int:
    """Recount the subscribers of up to ``batch`` dirty sessions (all of the app on a rebuild)."""
    _lock_app(db, app_pk)
    settings = get_settings(db, app_pk)
    if settings is not None and settings.rebuild_requested:
        return rebuild(db, app_pk)
    query = (
        select(ReportDirty.id, ReportDirty.session_id)
        .where(ReportDirty.app_pk == app_pk)
        .order_by(ReportDirty.id)
        .limit(batch)
    )
    dirty = db.execute(query).all()
    if not dirty:
        return 0
    db.execute(delete(ReportDirty).where(ReportDirty.id.in_([d.id for d in dirty])))
    session_ids = sorted({d.session_id for d in dirty})
    subs: set[str] = set()
    erased: list[int] = []
    for start in range(0, len(session_ids), 500):
        for pk, sub in db.execute(
            select(CancelSession.id, CancelSession.subscription_id).where(
                CancelSession.app_pk == app_pk,
                CancelSession.session_id.in_(session_ids[start : start + 500]),
            )
        ):
            if sub == ERASED:
                erased.append(pk)
            else:
                subs.add(sub)
    rules = rules_of(settings)
    return recount(db, app_pk, sorted(subs), rules) + recount_sessions(db, app_pk, erased, rules)


def refresh_all(db: Session, app_pk: int, *, max_rounds: int = 50) -> int:
    """``refresh`` until nothing is dirty (bounded)."""
    total = 0
    for _ in range(max_rounds):
        done = refresh(db, app_pk)
        total += done
        if not db.scalar(select(ReportDirty.id).where(ReportDirty.app_pk == app_pk).limit(1)):
            break
    return total


def apps_to_refresh(db: Session, limit: int = 1000) -> list[int]:
    dirty = set(db.scalars(select(ReportDirty.app_pk).distinct().limit(limit)))
    dirty.update(
        db.scalars(select(ReportSettings.app_pk).where(ReportSettings.rebuild_requested.is_(True)))
    )
    return sorted(dirty)


def now() -> datetime:
    return utcnow()
