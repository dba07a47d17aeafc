from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FIELD_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
SOURCE_PATH = r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+){0,12}$"
FieldTypeName = Literal[
    "text", "integer", "decimal", "boolean", "date", "datetime", "email", "url", "money"
]


class FieldMappingIn(BaseModel):
    """``{"field": "plan_interval", "source": "subscription.plan.interval", "type": "text"}``."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(pattern=FIELD_NAME, description="The stayflow field name (no dots).")
    source: str = Field(max_length=300, pattern=SOURCE_PATH, description="A dotted source path.")
    type: FieldTypeName
    currency_source: str | None = Field(
        default=None,
        max_length=300,
        pattern=SOURCE_PATH,
        description="money only: the path of the currency (default: the plan's currency).",
    )

    @model_validator(mode="after")
    def _currency_only_for_money(self) -> FieldMappingIn:
        if self.currency_source is not None and self.type != "money":
            raise ValueError("currency_source applies to type money only")
        return self


class FieldMappingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    field: str
    source: str
    type: str
    currency_source: str | None


class FieldMappingList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mappings: list[FieldMappingIn] = Field(max_length=200)

    @model_validator(mode="after")
    def _unique_fields(self) -> FieldMappingList:
        seen: set[str] = set()
        for mapping in self.mappings:
            if mapping.field in seen:
                raise ValueError(f"field {mapping.field!r} is mapped twice")
            seen.add(mapping.field)
        return self
