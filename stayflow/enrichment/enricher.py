"""The cancel flow's enrichment hook (``cancel_sessions.enrichment.Enricher``), for Stripe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from stayflow.crypto import Encryptor
from stayflow.enrichment import service
from stayflow.settings import Settings

if TYPE_CHECKING:
    from stayflow.cancel_sessions.models import CancelSession


class StripeEnricher:
    """Registered as ``app.state.services["enricher"]``; reads the mirror, else Stripe once."""

    def __init__(self, settings: Settings, encryptor: Encryptor) -> None:
        self.settings = settings
        self.encryptor = encryptor

    def enrich(self, db: Session, cancel_session: CancelSession) -> Mapping[str, Any]:
        return service.enrich(
            db,
            cancel_session.app_pk,
            cancel_session.subscription_id,
            self.settings,
            self.encryptor,
            request_fields=cancel_session.request_fields,
        )
