"""Every query on billing connections; always by app."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.billing.models import BillingConnection


def get_connection(db: Session, app: App) -> BillingConnection | None:
    return db.scalar(select(BillingConnection).where(BillingConnection.app_pk == app.id))


def get_connection_by_app_pk(db: Session, app_pk: int) -> BillingConnection | None:
    return db.scalar(select(BillingConnection).where(BillingConnection.app_pk == app_pk))


def get_or_create_connection(db: Session, app: App) -> BillingConnection:
    found = get_connection(db, app)
    if found is None:
        found = BillingConnection(app_pk=app.id, provider="stripe", permissions={}, setup={})
        db.add(found)
        db.flush()
    return found
