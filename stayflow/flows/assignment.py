"""Which experience a session gets: experiments first (stable A/B), then experiences in order."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from stayflow.flows.rules import evaluate
from stayflow.flows.schemas import Experience, FlowsDocument, Reason
from stayflow.offers.schemas import Offer

# Used when an app has configured no reasons: Stripe's feedback values, labelled in
# English here and translated by the page's catalogs (the labels are msgids).
BUILTIN_REASONS: tuple[tuple[str, str], ...] = (
    ("too_expensive", "It's too expensive"),
    ("unused", "I don't use it enough"),
    ("missing_features", "It's missing features I need"),
    ("switched_service", "I'm switching to another service"),
    ("too_complex", "It's too hard to use"),
    ("low_quality", "The quality wasn't good enough"),
    ("customer_service", "Customer service was less than expected"),
    ("other", "Some other reason"),
)
DEFAULT_EXPERIENCE_ID = "default"


class FlowSnapshot(BaseModel):
    """What one session shows, copied at assignment so later edits never change an open page."""

    experience: Experience
    experiment_id: str | None = None
    variant_id: str | None = None
    reasons: list[Reason]
    offers: list[Offer] = Field(default_factory=list)
    builtin_reasons: bool = False
    # A holdout variant: no offers and no questions, straight to the cancel confirmation.
    holdout: bool = False


def variant_bucket(app_id: str, experiment_id: str, subscription_id: str, total: int) -> int:
    """A number in [0, total) fixed by (app, experiment, subscription): the same on every run."""
    digest = hashlib.sha256(f"{app_id}\x1f{experiment_id}\x1f{subscription_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % total


def _in_audience(
    doc: FlowsDocument, audience_id: str | None, fields: Mapping[str, Any], now: datetime
) -> bool:
    if audience_id is None:
        return True
    for audience in doc.audiences:
        if audience.id == audience_id:
            return evaluate(audience.rule, fields, now)
    return False


def builtin_reasons() -> list[Reason]:
    return [Reason(id=rid, label=label, feedback=rid) for rid, label in BUILTIN_REASONS]


def choose(
    doc: FlowsDocument,
    fields: Mapping[str, Any],
    *,
    app_id: str,
    subscription_id: str,
    now: datetime,
) -> FlowSnapshot:
    experiences = {e.id: e for e in doc.experiences}
    experience: Experience | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    holdout = False
    for experiment in doc.experiments:
        if not experiment.active or not _in_audience(doc, experiment.audience, fields, now):
            continue
        total = sum(v.weight for v in experiment.variants)
        point = variant_bucket(app_id, experiment.id, subscription_id, total)
        for variant in experiment.variants:
            if point < variant.weight:
                experiment_id, variant_id = experiment.id, variant.name
                holdout = variant.holdout
                if variant.experience is not None:
                    experience = experiences[variant.experience]
                break
            point -= variant.weight
        if experiment_id is not None:
            break
    if experience is None:
        for candidate in doc.experiences:
            if _in_audience(doc, candidate.audience, fields, now):
                experience = candidate
                break
    if experience is None:
        # No experiences configured: every reason and every offer.
        experience = Experience(id=DEFAULT_EXPERIENCE_ID, offers=[o.id for o in doc.offers])

    builtin = not doc.reasons
    all_reasons = builtin_reasons() if builtin else doc.reasons
    if experience.reasons is None:
        reasons = list(all_reasons)
    else:
        by_id = {r.id: r for r in all_reasons}
        reasons = [by_id[rid] for rid in experience.reasons if rid in by_id]
    offers_by_id = {o.id: o for o in doc.offers}
    offers = [
        offers_by_id[oid]
        for oid in experience.offers
        if oid in offers_by_id and _in_audience(doc, offers_by_id[oid].audience, fields, now)
    ]
    if holdout:
        # The holdout's copy and branding are the experience it would otherwise get.
        reasons, offers = [], []
    return FlowSnapshot(
        experience=experience,
        experiment_id=experiment_id,
        variant_id=variant_id,
        reasons=reasons,
        offers=offers,
        builtin_reasons=builtin,
        holdout=holdout,
    )


def offers_for_reason(snapshot: FlowSnapshot, reason_id: str | None) -> list[Offer]:
    """The snapshot's offers placed for this reason (an offer with no reasons fits any)."""
    return [
        o
        for o in snapshot.offers
        if not o.reasons or (reason_id is not None and reason_id in o.reasons)
    ]
