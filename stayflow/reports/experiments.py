"""An experiment's report (per variant, against the control) and ending it.

The control is the holdout variant when there is one (so the report shows what the flow
itself saves), else the first variant. Save rates count every currency; revenue per
exposure (MRR kept per decided session, the primary metric) one currency at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.attribution.report import exponent
from stayflow.errors import BadRequest, Conflict, NotFound
from stayflow.flows import service as flows_service
from stayflow.flows.schemas import Experiment
from stayflow.reports import repository
from stayflow.reports import stats as S

Gettext = Callable[[str], str]
METRICS = ("mrr_per_session", "save_rate")


class ExperimentNotFound(NotFound):
    pass


class CannotPromote(Conflict):
    error_type = "cannot_promote"


class InvalidExperimentQuery(BadRequest):
    pass


@dataclass
class VariantReport:
    id: str
    experience: str | None
    holdout: bool
    weight: int
    sessions: int
    decided: int
    saves: int
    save_rate: float
    save_rate_interval: S.Interval
    mrr_kept: int  # minor units of ``currency``
    mrr_per_session: float  # minor units
    is_control: bool = False


@dataclass
class ComparisonReport:
    variant: str
    save_rate: S.Comparison
    revenue: S.Comparison
    verdict: str


@dataclass
class ExperimentReport:
    experiment_id: str
    active: bool
    control: str
    currency: str | None
    metric: str
    variants: list[VariantReport]
    comparisons: list[ComparisonReport]
    verdict: str
    enough_data: bool
    winner: str | None
    currencies: list[str] = field(default_factory=list)


def _identity(text: str) -> str:
    return text


def money(amount_minor: float, currency: str | None) -> str:
    if not currency:
        return f"{amount_minor:.2f}"
    digits = exponent(currency)
    return f"{amount_minor / 10**digits:,.{digits}f} {currency.upper()}"


def find_experiment(db: Session, app: App, experiment_id: str) -> Experiment:
    doc, _ = flows_service.current(db, app)
    for experiment in doc.experiments:
        if experiment.id == experiment_id:
            return experiment
    raise ExperimentNotFound(f"no experiment {experiment_id!r}")


def _sentence(
    name: str, control: str, metric: str, cmp: S.Comparison, currency: str | None, _: Gettext
) -> str:
    low, high = cmp.sequential_interval.low, cmp.sequential_interval.high
    if metric == "save_rate":
        points = cmp.difference * 100
        more = _("variant %(v)s saves more than %(c)s: %(d)s points (95%% CI %(lo)s to %(hi)s)")
        less = _("variant %(v)s saves less than %(c)s: %(d)s points (95%% CI %(lo)s to %(hi)s)")
        values = {
            "d": f"{points:+.1f}",
            "lo": f"{low * 100:.1f}",
            "hi": f"{high * 100:.1f}",
        }
    else:
        more = _(
            "variant %(v)s keeps more MRR per session than %(c)s: %(d)s (95%% CI %(lo)s to %(hi)s)"
        )
        less = _(
            "variant %(v)s keeps less MRR per session than %(c)s: %(d)s (95%% CI %(lo)s to %(hi)s)"
        )
        sign = "+" if cmp.difference >= 0 else "-"
        values = {
            "d": sign + money(abs(cmp.difference), currency),
            "lo": money(low, currency),
            "hi": money(high, currency),
        }
    template = more if cmp.difference > 0 else less
    return template % {"v": name, "c": control, **values}


def report(
    db: Session,
    app: App,
    experiment_id: str,
    *,
    since: date,
    until: date,
    currency: str | None = None,
    metric: str = "mrr_per_session",
    gettext: Gettext = _identity,
) -> ExperimentReport:
    _ = gettext
    if metric not in METRICS:
        raise InvalidExperimentQuery(f"metric must be one of {', '.join(METRICS)}")
    experiment = find_experiment(db, app, experiment_id)
    arms = repository.variant_arms(db, app.id, experiment_id, since, until)
    per_currency: dict[str, int] = {}
    for (cur, _v), counters in arms.items():
        per_currency[cur] = per_currency.get(cur, 0) + counters["sessions"]
    currencies = sorted(c for c in per_currency if c)
    if currency is None and currencies:
        currency = max(currencies, key=lambda c: (per_currency[c], c))
    names = [v.name for v in experiment.variants]
    holdouts = [v.name for v in experiment.variants if v.holdout]
    control = holdouts[0] if holdouts else names[0]

    def all_currencies(name: str) -> dict[str, int]:
        total: dict[str, int] = {}
        for (_cur, v), counters in arms.items():
            if v == name:
                for k, n in counters.items():
                    total[k] = total.get(k, 0) + n
        return total

    save_arms: dict[str, S.Arm] = {}
    money_arms: dict[str, S.Arm] = {}
    variants: list[VariantReport] = []
    for v in experiment.variants:
        t = all_currencies(v.name)
        decided = t.get("saves", 0) + t.get("deflects", 0) + t.get("cancels", 0)
        save_arms[v.name] = S.Arm(decided, t.get("saves", 0))
        m = arms.get((currency or "", v.name), {})
        m_decided = m.get("saves", 0) + m.get("deflects", 0) + m.get("cancels", 0)
        money_arms[v.name] = S.Arm(
            m_decided, m.get("saves", 0), m.get("mrr_kept", 0), m.get("mrr_kept_sq", 0)
        )
        variants.append(
            VariantReport(
                id=v.name,
                experience=v.experience,
                holdout=v.holdout,
                weight=v.weight,
                sessions=t.get("sessions", 0),
                decided=decided,
                saves=t.get("saves", 0),
                save_rate=save_arms[v.name].save_rate,
                save_rate_interval=S.wilson(t.get("saves", 0), decided),
                mrr_kept=m.get("mrr_kept", 0),
                mrr_per_session=money_arms[v.name].mean_kept,
                is_control=v.name == control,
            )
        )
    short = [v for v in variants if v.decided < S.MIN_DECIDED]
    enough = not short
    comparisons: list[ComparisonReport] = []
    winner: str | None = None
    best = 0.0
    for row in variants:
        if row.id == control:
            continue
        rate = S.compare_save_rates(save_arms[control], save_arms[row.id])
        revenue = S.compare_revenue(money_arms[control], money_arms[row.id])
        primary = revenue if metric == "mrr_per_session" else rate
        if not enough:
            sentence = _("not enough data yet")
        elif primary.significant:
            sentence = _sentence(row.id, control, metric, primary, currency, _)
            if primary.difference > best:
                winner, best = row.id, primary.difference
        else:
            sentence = _("no difference detected between %(v)s and %(c)s") % {
                "v": row.id,
                "c": control,
            }
        comparisons.append(ComparisonReport(row.id, rate, revenue, sentence))
    if not enough:
        verdict = _(
            "Not enough data yet: every variant needs %(n)d decided sessions (fewest: %(v)s "
            "with %(have)d)."
        ) % {"n": S.MIN_DECIDED, "v": short[0].id, "have": short[0].decided}
    elif winner is not None:
        verdict = next(c.verdict for c in comparisons if c.variant == winner)
        verdict = verdict[:1].upper() + verdict[1:] + "."
    elif any(
        c.verdict != _("not enough data yet")
        and (c.revenue if metric == "mrr_per_session" else c.save_rate).significant
        for c in comparisons
    ):
        # Every significant difference favours the control.
        verdict = _("The control %(c)s does best.") % {"c": control}
        winner = control
    else:
        verdict = _("No difference detected yet.")
    if winner is not None and winner in holdouts:
        winner = None  # a holdout is a measurement, not a flow to promote
    return ExperimentReport(
        experiment_id=experiment_id,
        active=experiment.active,
        control=control,
        currency=currency,
        metric=metric,
        variants=variants,
        comparisons=comparisons,
        verdict=verdict,
        enough_data=enough,
        winner=winner,
        currencies=currencies,
    )


def end(db: Session, app: App, experiment_id: str, promote: str | None) -> flows_service.Applied:
    """Stop the experiment; with ``promote``, its variant's experience becomes the default
    for the experiment's audience (first in order). One new flows version."""
    experiment = find_experiment(db, app, experiment_id)
    doc, _ = flows_service.current(db, app)
    data: dict[str, Any] = doc.normalized()
    for item in data.get("experiments", []):
        if item["id"] == experiment_id:
            item["active"] = False
    if promote is not None:
        variant = next((v for v in experiment.variants if v.name == promote), None)
        if variant is None:
            raise CannotPromote(f"experiment {experiment_id!r} has no variant {promote!r}")
        if variant.holdout or variant.experience is None:
            raise CannotPromote("a holdout has no experience to promote; end without promoting")
        experiences = list(data.get("experiences", []))
        chosen = next((e for e in experiences if e["id"] == variant.experience), None)
        if chosen is None:  # an experiment without experiences in the document: none to move
            raise CannotPromote(f"experience {variant.experience!r} is not in the flows")
        rest = [e for e in experiences if e["id"] != variant.experience]
        chosen = dict(chosen)
        if experiment.audience is None:
            chosen.pop("audience", None)
        else:
            chosen["audience"] = experiment.audience
        data["experiences"] = [chosen, *rest]
    try:
        return flows_service.apply(db, app, data)
    except flows_service.InvalidFlows as exc:
        raise CannotPromote(f"cannot promote {promote!r}: {exc.message}") from exc
