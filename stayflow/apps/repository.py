"""Every query on apps and API keys. Tenancy: reads are by the caller's app."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.apps.models import ApiKey, App


def get_app_by_public_id(db: Session, app_id: str) -> App | None:
    return db.scalar(select(App).where(App.app_id == app_id))


def get_active_key_by_hash(db: Session, key_hash: str) -> tuple[ApiKey, App] | None:
    row = db.execute(
        select(ApiKey, App)
        .join(App, App.id == ApiKey.app_pk)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    ).first()
    return (row[0], row[1]) if row else None


def list_keys(db: Session, app: App) -> Sequence[ApiKey]:
    return db.scalars(select(ApiKey).where(ApiKey.app_pk == app.id).order_by(ApiKey.id)).all()


def get_key(db: Session, app: App, key_id: str) -> ApiKey | None:
    return db.scalar(select(ApiKey).where(ApiKey.app_pk == app.id, ApiKey.key_id == key_id))


def list_apps(db: Session) -> Sequence[App]:
    return db.scalars(select(App).order_by(App.id)).all()
