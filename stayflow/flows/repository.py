from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.flows.models import FlowConfig, FlowVersion


def get_config(db: Session, app: App, *, for_update: bool = False) -> FlowConfig | None:
    query = select(FlowConfig).where(FlowConfig.app_pk == app.id)
    if for_update:
        # populate_existing: a row this session read before the lock is refreshed with what
        # the lock waited for, not left as it was (a stale document would be written back).
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.scalar(query)


def get_config_by_app_pk(db: Session, app_pk: int) -> FlowConfig | None:
    return db.scalar(select(FlowConfig).where(FlowConfig.app_pk == app_pk))


def list_versions(
    db: Session, app: App, *, limit: int, before: int | None = None
) -> Sequence[FlowVersion]:
    """The app's versions, newest first (``before``: only numbers below it)."""
    query = select(FlowVersion).where(FlowVersion.app_pk == app.id)
    if before is not None:
        query = query.where(FlowVersion.number < before)
    return db.scalars(query.order_by(FlowVersion.number.desc()).limit(limit)).all()


def get_version(db: Session, app: App, number: int) -> FlowVersion | None:
    return db.scalar(
        select(FlowVersion).where(FlowVersion.app_pk == app.id, FlowVersion.number == number)
    )
