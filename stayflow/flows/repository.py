from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.flows.models import FlowConfig


def get_config(db: Session, app: App, *, for_update: bool = False) -> FlowConfig | None:
    query = select(FlowConfig).where(FlowConfig.app_pk == app.id)
    if for_update:
        query = query.with_for_update()
    return db.scalar(query)


def get_config_by_app_pk(db: Session, app_pk: int) -> FlowConfig | None:
    return db.scalar(select(FlowConfig).where(FlowConfig.app_pk == app_pk))
