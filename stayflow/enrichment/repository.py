"""Every query on field mappings; always by app."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from stayflow.enrichment.models import FieldMapping


def list_mappings(db: Session, app_pk: int) -> Sequence[FieldMapping]:
    return db.scalars(
        select(FieldMapping)
        .where(FieldMapping.app_pk == app_pk)
        .order_by(FieldMapping.position, FieldMapping.id)
    ).all()


def get_mapping(db: Session, app_pk: int, field: str) -> FieldMapping | None:
    return db.scalar(
        select(FieldMapping).where(FieldMapping.app_pk == app_pk, FieldMapping.field == field)
    )


def delete_all(db: Session, app_pk: int) -> None:
    db.execute(delete(FieldMapping).where(FieldMapping.app_pk == app_pk))
