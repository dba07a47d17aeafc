"""The flows file's ``fields:`` section: the app's field mappings, kept with its flows.

``stayflow flows export|apply`` and the flows admin API carry it through the hook in
``stayflow.flows.service`` (``SECTIONS``); the mappings live in their own table.

```yaml
fields:
  - {field: plan_interval, source: subscription.plan.interval, type: text}
  - {field: price, source: subscription.plan.amount, type: money}
```
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from stayflow.enrichment import service
from stayflow.enrichment.schemas import FieldMappingList
from stayflow.errors import BadRequest

KEY = "fields"


class InvalidFieldsSection(BadRequest):
    error_type = "invalid_flows"


_ADAPTER: TypeAdapter[FieldMappingList] = TypeAdapter(FieldMappingList)


def _normalized(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if v is not None} for item in items]


def validate(value: Any) -> list[dict[str, Any]]:
    """The section as it will be stored, or InvalidFieldsSection naming the bad entry."""
    if value is None:
        return []
    try:
        parsed = _ADAPTER.validate_python({"mappings": value})
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "mappings")
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise InvalidFieldsSection(f"fields.{loc}: {msg}" if loc else f"fields: {msg}") from exc
    return _normalized([m.model_dump() for m in parsed.mappings])


def current(db: Session, app_pk: int) -> list[dict[str, Any]]:
    return _normalized(
        [
            {
                "field": m.field,
                "source": m.source,
                "type": m.type,
                "currency_source": m.currency_source,
            }
            for m in service.list_mappings(db, app_pk)
        ]
    )


def replace(db: Session, app_pk: int, value: list[dict[str, Any]]) -> None:
    parsed = _ADAPTER.validate_python({"mappings": value})
    service.replace_mappings(db, app_pk, parsed.mappings)
