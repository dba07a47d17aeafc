"""The flows document: what the admin API takes and the flows file holds (YAML or JSON)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stayflow.flows.copy import check_language_tags, validate_copy
from stayflow.flows.ids import Identifier
from stayflow.flows.rules import MAX_DEPTH, Rule, rule_depth
from stayflow.offers.schemas import Offer

# Stripe's cancellation_details.feedback values.
FEEDBACK_VALUES = (
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
)
Feedback = Literal[
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
]
KINDS = ("reasons", "offers", "audiences", "experiences", "experiments")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonCopy(_Strict):
    label: str = Field(min_length=1, max_length=200)

    @field_validator("label")
    @classmethod
    def _copy(cls, value: str) -> str:
        validate_copy(value)
        return value


class Reason(ReasonCopy):
    id: Identifier
    feedback: Feedback = "other"
    comment: bool = Field(default=False, description="Ask for a free-text comment.")
    translations: dict[str, ReasonCopy] = Field(default_factory=dict)

    @field_validator("translations")
    @classmethod
    def _languages(cls, value: dict[str, ReasonCopy]) -> dict[str, ReasonCopy]:
        check_language_tags(value)
        return value


class Audience(_Strict):
    id: Identifier
    description: str | None = Field(default=None, max_length=500)
    rule: Rule

    @field_validator("rule")
    @classmethod
    def _depth(cls, value: Rule) -> Rule:
        if rule_depth(value) > MAX_DEPTH:
            raise ValueError(f"rules nest at most {MAX_DEPTH} levels deep")
        return value


class ExperienceCopy(_Strict):
    """The page's headings for one experience; the page's own words come from gettext."""

    title: str | None = Field(default=None, max_length=300)
    intro: str | None = Field(default=None, max_length=2000)
    offers_title: str | None = Field(default=None, max_length=300)
    confirm_title: str | None = Field(default=None, max_length=300)
    confirm_body: str | None = Field(default=None, max_length=2000)

    @field_validator("title", "intro", "offers_title", "confirm_title", "confirm_body")
    @classmethod
    def _copy(cls, value: str | None) -> str | None:
        return validate_copy(value)


class Branding(_Strict):
    company_name: str | None = Field(default=None, max_length=200)
    # A data: URI, because the page loads nothing from anywhere else.
    logo: str | None = Field(default=None, max_length=200_000)
    primary_color: str | None = None
    background_color: str | None = None

    @field_validator("primary_color", "background_color")
    @classmethod
    def _color(cls, value: str | None) -> str | None:
        if value is not None and not _COLOR.match(value):
            raise ValueError("a colour must be written #rrggbb")
        return value

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is not None and not _DATA_IMAGE.match(value):
            raise ValueError(
                "the logo must be a base64 data: URI (png, jpeg, gif, webp or svg+xml); "
                "the page loads no external assets"
            )
        return value


class Experience(ExperienceCopy):
    id: Identifier
    # None: everyone (a default experience).
    audience: Identifier | None = None
    # None: every reason, in the document's order.
    reasons: list[Identifier] | None = None
    offers: list[Identifier] = Field(default_factory=list)
    branding: Branding | None = None
    translations: dict[str, ExperienceCopy] = Field(default_factory=dict)

    @field_validator("translations")
    @classmethod
    def _languages(cls, value: dict[str, ExperienceCopy]) -> dict[str, ExperienceCopy]:
        check_language_tags(value)
        return value


class Variant(_Strict):
    id: Identifier | None = Field(
        default=None, description='Defaults to the experience id ("holdout" for a holdout).'
    )
    experience: Identifier | None = Field(
        default=None, description="The experience shown; required unless the variant is a holdout."
    )
    weight: int = Field(default=1, ge=0, le=1_000_000)
    holdout: bool = Field(
        default=False,
        description="No offers and no questions: straight to the cancel confirmation, so "
        "the report can measure what the flow itself saves.",
    )

    @model_validator(mode="after")
    def _experience(self) -> Variant:
        if self.experience is None and not self.holdout:
            raise ValueError("a variant needs an experience (or holdout: true)")
        return self

    @property
    def name(self) -> str:
        return self.id or self.experience or "holdout"


class Experiment(_Strict):
    """An A/B split between experiences; checked before the experiences, in order."""

    id: Identifier
    audience: Identifier | None = None
    active: bool = True
    variants: list[Variant] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _weights(self) -> Experiment:
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError(f"experiment {self.id!r}: the variants' weights must add up to > 0")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.id!r}: variant ids must be unique")
        return self


class FlowsDocument(_Strict):
    """Everything one app's cancel flow is made of. Order matters for reasons and experiences."""

    reasons: list[Reason] = Field(default_factory=list, max_length=50)
    offers: list[Offer] = Field(default_factory=list, max_length=100)
    audiences: list[Audience] = Field(default_factory=list, max_length=100)
    experiences: list[Experience] = Field(default_factory=list, max_length=100)
    experiments: list[Experiment] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _references(self) -> FlowsDocument:
        ids: dict[str, set[str]] = {}
        for kind in KINDS:
            seen: set[str] = set()
            for item in getattr(self, kind):
                if item.id in seen:
                    raise ValueError(f"{kind}: the id {item.id!r} is used twice")
                seen.add(item.id)
            ids[kind] = seen

        def need(kind: str, ref: str | None, where: str) -> None:
            if ref is not None and ref not in ids[kind]:
                raise ValueError(f"{where} refers to unknown {kind[:-1]} {ref!r}")

        for offer in self.offers:
            for reason in offer.reasons:
                need("reasons", reason, f"offer {offer.id!r}")
            need("audiences", offer.audience, f"offer {offer.id!r}")
        for exp in self.experiences:
            need("audiences", exp.audience, f"experience {exp.id!r}")
            for reason in exp.reasons or []:
                need("reasons", reason, f"experience {exp.id!r}")
            for offer_id in exp.offers:
                need("offers", offer_id, f"experience {exp.id!r}")
        for experiment in self.experiments:
            need("audiences", experiment.audience, f"experiment {experiment.id!r}")
            for variant in experiment.variants:
                need("experiences", variant.experience, f"experiment {experiment.id!r}")
            if sum(1 for v in experiment.variants if v.holdout) > 1:
                raise ValueError(f"experiment {experiment.id!r}: at most one holdout variant")
        if self.experiences and all(e.audience is not None for e in self.experiences):
            raise ValueError(
                "experiences: one experience must have no audience; it is the default "
                "for everyone the others do not match"
            )
        return self

    def normalized(self) -> dict[str, Any]:
        """The canonical form: stored, exported and diffed (defaults left out)."""
        data = self.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
        for kind, items in data.items():
            # id (and an offer's type) first: files read better that way.
            data[kind] = [
                {k: item[k] for k in ("id", "type") if k in item}
                | {k: v for k, v in item.items() if k not in ("id", "type")}
                for item in items
            ]
        return data


class FlowsOut(BaseModel):
    version: int = Field(description="Increases by one on every change.")
    flows: dict[str, Any] = Field(description="The flows document.")


class FlowsApplied(FlowsOut):
    changed: bool
    diff: str = Field(description="A unified diff of the document in YAML, old to new.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Accepted but risky: audiences reading unsigned request fields (allowed "
        "only with the app's allow_unsigned_targeting).",
    )


class FlowsSaved(FlowsApplied):
    draft: bool = Field(
        default=False,
        description="Saved as the draft: the live flows (and `version`) are unchanged until "
        "POST /api/v1/flows/publish.",
    )


class VersionSummary(BaseModel):
    number: int = Field(description="1, 2, ...: the live flows' `version` after this change.")
    author: str = Field(description='An admin user\'s email, "api key <key id>", or "cli".')
    created_at: datetime
    message: str | None
    live: bool = Field(description="Whether this is the version live now.")


class VersionList(BaseModel):
    data: list[VersionSummary] = Field(description="Newest first.")
    live_version: int


class VersionOut(VersionSummary):
    flows: dict[str, Any] = Field(description="The whole flows document of this version.")
    diff: str = Field(description="A unified diff (YAML) from the previous version to this one.")


class DraftOut(BaseModel):
    flows: dict[str, Any] = Field(description="The draft's whole flows document.")
    message: str | None
    author: str | None
    updated_at: datetime | None
    base_version: int | None = Field(description="The live version when the draft was saved.")
    live_version: int
    diff: str = Field(description="A unified diff (YAML) from the live flows to the draft.")


class PublishRequest(_Strict):
    message: str | None = Field(
        default=None, max_length=500, description="Instead of the draft's own message."
    )


class ResolveRequest(_Strict):
    subscription_id: str = Field(min_length=1, max_length=255)
    fields: dict[str, Any] = Field(default_factory=dict)


class ResolveOut(BaseModel):
    experience_id: str
    experiment_id: str | None
    variant_id: str | None
    reasons: list[str]
    offers: list[str]
