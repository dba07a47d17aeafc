"""Writing and reading the event log. Never commits: the caller's transaction does.

An event and its webhook deliveries (and the delivery job) are written together, so a
committed change always has its event and every event its deliveries: the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stayflow.db import utcnow
from stayflow.events.models import Event
from stayflow.events.schemas import EventData


def emit_event(
    db: Session,
    app_pk: int,
    type_: str,
    data: dict[str, Any],
    *,
    at: datetime | None = None,
    fan_out: bool = True,
) -> Event:
    """Append an event to the app's log in the caller's transaction, and queue its delivery."""
    event = Event(app_pk=app_pk, type=type_, data=data, created_at=at or utcnow())
    db.add(event)
    db.flush()
    session_id = data.get("session_id")
    if isinstance(session_id, str):
        # Every change to a session's figures writes an event: the reports recount it.
        from stayflow.reports.service import mark_dirty

        mark_dirty(db, app_pk, [session_id])
    if fan_out:
        from stayflow.webhooks import fanout

        fanout.fan_out(db, event)
    return event


def emit(db: Session, app_pk: int, data: EventData, *, fan_out: bool = True) -> Event:
    """``emit_event`` for a typed payload (its type is the model's ``event_type``)."""
    return emit_event(db, app_pk, data.event_type, data.model_dump(mode="json"), fan_out=fan_out)


def list_events(
    db: Session,
    app_pk: int,
    *,
    after_id: int | None = None,
    types: Sequence[str] | None = None,
    limit: int = 100,
) -> Sequence[Event]:
    query = select(Event).where(Event.app_pk == app_pk)
    if after_id is not None:
        query = query.where(Event.id > after_id)
    if types:
        query = query.where(Event.type.in_(list(types)))
    return db.scalars(query.order_by(Event.id).limit(limit)).all()


def get_event(db: Session, app_pk: int, event_id: int) -> Event | None:
    return db.scalar(select(Event).where(Event.app_pk == app_pk, Event.id == event_id))


def events_of_session(
    db: Session, app_pk: int, session_id: str, limit: int = 200
) -> Sequence[Event]:
    """The app's events about one cancel session, oldest first (the admin's timeline)."""
    return db.scalars(
        select(Event)
        .where(Event.app_pk == app_pk, Event.data["session_id"].as_string() == session_id)
        .order_by(Event.id)
        .limit(limit)
    ).all()
