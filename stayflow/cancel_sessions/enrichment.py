"""The one place enrichment plugs in.

An ``Enricher`` turns a cancel session into extra fields (dotted keys such as
``subscription.plan.interval`` or ``customer.name``) that audience rules and
merge fields can use. It runs when the page is first opened (GET /c/<token>,
HTML or JSON), not during precancel, so precancel never waits on it.

Register one on the app: ``app.state.services["enricher"] = MyEnricher(...)``.
It must return quickly (read a local mirror; any live lookup must carry its own
short timeout). An exception is logged and treated as "no fields": the
subscriber still gets the default experience with fallback copy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from stayflow.cancel_sessions.models import CancelSession

log = logging.getLogger("stayflow.cancel_sessions.enrichment")

SERVICE_NAME = "enricher"


@runtime_checkable
class Enricher(Protocol):
    def enrich(self, db: Session, cancel_session: CancelSession) -> Mapping[str, Any]:
        """Fields about this session's subscriber; ``{}`` when nothing is known."""
        ...


class NoEnrichment:
    """The default: adds nothing."""

    def enrich(self, db: Session, cancel_session: CancelSession) -> Mapping[str, Any]:
        return {}


def enricher_from(services: Mapping[str, Any]) -> Enricher:
    found = services.get(SERVICE_NAME)
    return found if found is not None else NoEnrichment()


def safe_enrich(enricher: Enricher, db: Session, cancel_session: CancelSession) -> dict[str, Any]:
    try:
        fields = enricher.enrich(db, cancel_session)
    except Exception:
        log.exception(
            "cancel_sessions.enrich_failed", extra={"session_id": cancel_session.session_id}
        )
        return {}
    return dict(fields) if isinstance(fields, Mapping) else {}
