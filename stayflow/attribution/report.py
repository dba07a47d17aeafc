"""The revenue data card: what a business checks before it trusts the numbers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import delete
from sqlalchemy.orm import Session

from stayflow.attribution import repository
from stayflow.attribution.models import (
    CONFIRMED,
    LAPSED,
    PENDING,
    REACTIVATED,
    UNMATCHED,
    VALIDATED,
    ExchangeRate,
)
from stayflow.attribution.mrr import round_half_up
from stayflow.attribution.schemas import (
    ConvertedTotals,
    CurrencyTotals,
    DataCard,
    LastSync,
    RateIn,
)
from stayflow.cancel_sessions.models import CANCELED
from stayflow.errors import BadRequest

# Stripe's zero- and three-decimal currencies; every other has two decimals.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


class InvalidRate(BadRequest):
    error_type = "invalid_rate"


def exponent(currency: str) -> int:
    c = currency.lower()
    return 0 if c in ZERO_DECIMAL else 3 if c in THREE_DECIMAL else 2


def convert(amount: int, currency: str, base: str, rate: str) -> Fraction:
    """Minor units of ``currency`` into minor units of ``base`` at ``rate`` (major units)."""
    major = Fraction(amount, 10 ** exponent(currency))
    converted: Fraction = major * Fraction(Decimal(rate)) * 10 ** exponent(base)
    return converted


def set_rates(db: Session, app_pk: int, rates: list[RateIn]) -> None:
    """Replace the app's rate table (all rates must share one base currency)."""
    bases = {r.base_currency.lower() for r in rates}
    if len(bases) > 1:
        raise InvalidRate("every rate must convert into the same base currency")
    for r in rates:
        if Decimal(r.rate) <= 0:
            raise InvalidRate(f"the rate for {r.currency.upper()} must be positive")
    db.execute(delete(ExchangeRate).where(ExchangeRate.app_pk == app_pk))
    seen: set[tuple[str, date]] = set()
    for r in rates:
        key = (r.currency.lower(), r.valid_from)
        if key in seen:
            raise InvalidRate(f"two rates for {r.currency.upper()} on {r.valid_from}")
        seen.add(key)
        db.add(
            ExchangeRate(
                app_pk=app_pk,
                currency=r.currency.lower(),
                base_currency=r.base_currency.lower(),
                rate=r.rate,
                valid_from=r.valid_from,
            )
        )
    db.flush()


def data_card(
    db: Session, app_pk: int, since: datetime | None, until: datetime | None, today: date
) -> DataCard:
    state = repository.get_or_create_state(db, app_pk)
    per: dict[str | None, CurrencyTotals] = {}
    for currency, outcome, status, count, at_session, kept, lost, cash in repository.watch_totals(
        db, app_pk, since, until
    ):
        t = per.setdefault(currency, CurrencyTotals(currency=currency))
        n = int(count)
        t.sessions += n
        if status == UNMATCHED:
            t.unmatched += n
        elif outcome == CANCELED:
            if status == CONFIRMED:
                t.cancels_confirmed += n
            elif status == REACTIVATED:
                t.cancels_reactivated += n
            else:
                t.cancels_pending += n
        elif status == PENDING:
            t.saves_pending += n
        elif status == VALIDATED:
            t.saves_validated += n
        elif status == LAPSED:
            t.saves_lapsed += n
        t.mrr_at_session += int(at_session)
        t.mrr_kept += int(kept)
        t.mrr_lost += int(lost)
        t.cash_collected += int(cash)
    totals = sorted(per.values(), key=lambda t: t.currency or "")
    unmatched = sum(t.unmatched for t in totals)
    return DataCard(
        since=since,
        until=until,
        window_days=state.window_days,
        last_sync=LastSync(
            at=state.last_sync_at,
            outcome=state.last_sync_outcome,
            mode=state.last_sync_mode,
            stripe_requests=state.last_sync_requests,
            error=state.last_sync_error,
        ),
        sessions_matched=sum(t.sessions for t in totals) - unmatched,
        sessions_unmatched=unmatched,
        sessions_abandoned=repository.abandoned_count(db, app_pk, since, until),
        saves_pending=sum(t.saves_pending for t in totals),
        saves_validated=sum(t.saves_validated for t in totals),
        saves_lapsed=sum(t.saves_lapsed for t in totals),
        cancels_confirmed=sum(t.cancels_confirmed for t in totals),
        cancels_reactivated=sum(t.cancels_reactivated for t in totals),
        per_currency=totals,
        converted=_converted(db, app_pk, totals, today),
    )


def _converted(
    db: Session, app_pk: int, totals: list[CurrencyTotals], today: date
) -> ConvertedTotals | None:
    rates = repository.rates(db, app_pk, today)
    if not rates:
        return None
    base = next(iter(rates.values())).base_currency
    sums = {"kept": Fraction(0), "lost": Fraction(0), "cash": Fraction(0)}
    missing: list[str] = []
    as_of = max(r.valid_from for r in rates.values())
    for t in totals:
        if t.currency is None:
            continue
        if t.currency == base:
            rate = "1"
        elif t.currency in rates:
            rate = rates[t.currency].rate
        else:
            missing.append(t.currency)
            continue
        sums["kept"] += convert(t.mrr_kept, t.currency, base, rate)
        sums["lost"] += convert(t.mrr_lost, t.currency, base, rate)
        sums["cash"] += convert(t.cash_collected, t.currency, base, rate)
    return ConvertedTotals(
        currency=base,
        rates_as_of=as_of,
        mrr_kept=round_half_up(sums["kept"]),
        mrr_lost=round_half_up(sums["lost"]),
        cash_collected=round_half_up(sums["cash"]),
        missing_rates=sorted(missing),
    )
