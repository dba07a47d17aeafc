"""The cancel flow's enrichment hook (``cancel_sessions.enrichment.Enricher``), for Stripe."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from stayflow.cancel_sessions.trust import mapping_sources
from stayflow.crypto import Encryptor
from stayflow.enrichment import service
from stayflow.settings import Settings

if TYPE_CHECKING:
    from stayflow.cancel_sessions.models import CancelSession

# A prefetched live result is used by the enrich() that follows it within this long.
PREFETCH_TTL_SECONDS = 30.0
_MAX_PREFETCHED = 2048


class StripeEnricher:
    """Registered as ``app.state.services["enricher"]``; reads the mirror, else Stripe once.

    ``prefetch_for_token`` lets a page make the live read (when one is needed) before it
    opens its own transaction, so no database lock is held while Stripe answers.
    """

    def __init__(
        self,
        settings: Settings,
        encryptor: Encryptor,
        session_factory: sessionmaker[Session] | None = None,
    ) -> None:
        self.settings = settings
        self.encryptor = encryptor
        self.session_factory = session_factory
        self._prefetched: OrderedDict[tuple[int, str], tuple[float, service.Lookup]] = OrderedDict()
        self._lock = threading.Lock()

    def enrich(self, db: Session, cancel_session: CancelSession) -> Mapping[str, Any]:
        return service.enrich(
            db,
            cancel_session.app_pk,
            cancel_session.subscription_id,
            self.settings,
            self.encryptor,
            # Never a request value under a Stripe path (cancel_sessions.trust).
            request_fields=mapping_sources(
                cancel_session.request_fields, cancel_session.signed_fields or {}
            ),
            prefetched=self._take(cancel_session.app_pk, cancel_session.subscription_id),
        )

    def prefetch_for_token(self, token: str) -> None:
        """Before a page's transaction: the live read its enrichment will need, if any."""
        if self.session_factory is None:
            return
        from stayflow.cancel_sessions import service as sessions

        with self.session_factory() as db:
            try:
                cs = sessions.find_by_token(db, token)
            except sessions.SessionNotFound:
                return
            if cs.experience_id is not None or cs.finished:
                return  # enriched already, or nothing more to show
            app_pk, subscription_id = cs.app_pk, cs.subscription_id
        found = service.prefetch(
            self.session_factory, app_pk, subscription_id, self.settings, self.encryptor
        )
        if found is not None:
            with self._lock:
                self._prefetched[(app_pk, subscription_id)] = (time.monotonic(), found)
                while len(self._prefetched) > _MAX_PREFETCHED:
                    self._prefetched.popitem(last=False)

    def _take(self, app_pk: int, subscription_id: str) -> service.Lookup | None:
        with self._lock:
            entry = self._prefetched.pop((app_pk, subscription_id), None)
        if entry is None or time.monotonic() - entry[0] > PREFETCH_TTL_SECONDS:
            return None
        return entry[1]
