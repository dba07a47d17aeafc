"""Driving attribution against the sandbox: sessions with outcomes at the sandbox's time,
syncs at the sandbox's time (stayflow's clock injected, never slept), requests counted at
the sandbox."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.attribution import sync
from stayflow.attribution.models import AttributionWatch
from stayflow.billing import service as billing_service
from stayflow.billing.actions.models import BillingEvent
from stayflow.cancel_sessions.models import CancelSession
from stayflow.db import transaction
from stayflow.enrichment.flatten import flatten_subscription
from stayflow.sandbox import Sandbox
from tests.billing_actions.helpers import Env

DAY = 86_400


@contextmanager
def counting(sandbox: Sandbox) -> Iterator[list[str]]:
    """Every Stripe API request the sandbox receives meanwhile (method and path)."""
    app = sandbox.app
    assert app is not None, "the sandbox runs in this process"
    seen: list[str] = []
    original = app.prepare

    def prepare(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        if target.startswith("/v1/"):
            seen.append(f"{method} {target.partition('?')[0]}")
        return original(method, target, headers, body)

    app.prepare = prepare  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del app.prepare


@dataclass
class Attribution:
    env: Env
    sandbox: Sandbox

    @property
    def factory(self) -> sessionmaker[Session]:
        return self.env.factory

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sandbox.now(), UTC)

    def session(
        self,
        subscription_id: str,
        outcome: str = "saved",
        offer: dict[str, Any] | None = None,
        at: datetime | None = None,
        enriched: bool = False,
    ) -> str:
        """A finished cancel session, as the cancel flow records it, at the sandbox's time."""
        when = at or self.now()
        offers = [offer] if offer else []
        fields: dict[str, Any] = {}
        if enriched:  # what the enricher stores at the page's first view
            provider = billing_service.make_provider(
                self.env.settings, self.sandbox.secret_key, timeout=10, retries=0
            )
            fields = flatten_subscription(
                provider.retrieve_subscription(subscription_id).subscription
            )
        with transaction(self.factory) as db:
            cs = CancelSession(
                session_id="cs_" + secrets.token_hex(12),
                app_pk=self.env.app_pk,
                token_hash=secrets.token_hex(32),
                subscription_id=subscription_id,
                signed=True,
                request_fields={},
                enriched_fields=fields,
                save_return_url="https://app.example.com/account",
                cancel_confirmation_url="https://app.example.com/bye",
                flow={"offers": offers},
                offers_shown=[o["id"] for o in offers],
                offer_accepted_id=offer["id"] if offer else None,
                outcome=outcome,
                created_at=when,
                outcome_at=when,
                expires_at=when + timedelta(hours=1),
                abandon_at=when + timedelta(hours=1),
            )
            db.add(cs)
            return cs.session_id

    def sync(self, days: float | None = None) -> sync.SyncResult:
        """Advance the sandbox's clock by ``days`` (if given), then sync at its time."""
        if days:
            self.sandbox.advance_clock(int(days * DAY))
        provider = billing_service.make_provider(
            self.env.settings, self.sandbox.secret_key, timeout=10, retries=0
        )
        with transaction(self.factory) as db:
            return sync.sync(db, self.env.app_pk, provider, self.now())

    def watch(self, session_id: str) -> AttributionWatch:
        with self.factory() as db:
            found = db.scalar(
                select(AttributionWatch).where(AttributionWatch.session_id == session_id)
            )
            assert found is not None
            db.expunge(found)
            return found

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.factory() as db:
            rows = db.scalars(
                select(BillingEvent)
                .where(BillingEvent.app_pk == self.env.app_pk)
                .order_by(BillingEvent.id)
            ).all()
            return [(r.type, r.data) for r in rows if r.type.split(".")[0] in ("save", "cancel")]
