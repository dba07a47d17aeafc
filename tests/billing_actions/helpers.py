"""Driving billing actions the way production does: a cancel session's outcome through the
cancel-flow service (outcome + outbox job in one transaction), then the worker."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps.models import App
from stayflow.apps.repository import get_app_by_public_id
from stayflow.billing import repository as billing_repository
from stayflow.billing.actions.models import BillingAction
from stayflow.cancel_sessions import service as sessions
from stayflow.cancel_sessions.enrichment import NoEnrichment
from stayflow.cancel_sessions.models import CancelSession
from stayflow.cancel_sessions.settings import CancelFlowSettings
from stayflow.db import transaction, utcnow
from stayflow.flows import service as flows_service
from stayflow.jobs.worker import Worker
from stayflow.settings import Settings
from tests.billing.helpers import ENCRYPTOR

REASONS = [
    {"id": "too_expensive", "label": "Too expensive", "feedback": "too_expensive"},
    {"id": "not_using", "label": "Not using it", "feedback": "unused", "comment": True},
]


def flows_doc(offers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "reasons": REASONS,
        "offers": offers,
        "experiences": [
            {
                "id": "default",
                "reasons": [r["id"] for r in REASONS],
                "offers": [o["id"] for o in offers],
            }
        ],
    }


@dataclass
class Env:
    factory: sessionmaker[Session]
    settings: Settings
    app_pk: int
    app_id: str

    def services(self) -> dict[str, Any]:
        return {"settings": self.settings, "encryptor": ENCRYPTOR}

    def worker(self, **options: Any) -> Worker:
        return Worker(self.factory, services=self.services(), **options)

    def run_jobs(self, timeout: float = 120) -> int:
        worker = self.worker()
        try:
            return worker.run_until_idle(timeout=timeout)
        finally:
            worker.stop(timeout=1)

    def connect(self, api_key: str | None, **setup: Any) -> None:
        """Connect the app by hand (the connect API is issue 5's, tested there)."""
        with transaction(self.factory) as db:
            app = db.get(App, self.app_pk)
            assert app is not None
            conn = billing_repository.get_or_create_connection(db, app)
            conn.api_key_encrypted = ENCRYPTOR.encrypt(api_key) if api_key else None
            conn.connected_at = utcnow() if api_key else None
            conn.setup = {"offers": True, "cancels": True, **setup}

    def set_flows(self, offers: list[dict[str, Any]]) -> None:
        with transaction(self.factory) as db:
            app = db.get(App, self.app_pk)
            assert app is not None
            flows_service.apply(db, app, flows_doc(offers))

    def _session(self, db: Session, subscription_id: str) -> CancelSession:
        app = db.get(App, self.app_pk)
        assert app is not None
        now = utcnow()
        cs = CancelSession(
            session_id="cs_" + secrets.token_hex(12),
            app_pk=self.app_pk,
            token_hash=secrets.token_hex(32),
            subscription_id=subscription_id,
            signed=True,
            request_fields={},
            enriched_fields={},
            save_return_url="https://app.example.com/account",
            cancel_confirmation_url="https://app.example.com/bye",
            flow={},
            offers_shown=[],
            created_at=now,
            expires_at=now + timedelta(hours=1),
            abandon_at=now + timedelta(hours=1),
        )
        db.add(cs)
        db.flush()
        sessions.ensure_assigned(db, cs, app, NoEnrichment(), now)
        return cs

    def accept(self, subscription_id: str, offer_id: str, db: Session | None = None) -> str:
        """A subscriber accepts an offer; returns the session id (job enqueued, committed,
        or written in ``db`` when given)."""
        if db is None:
            with transaction(self.factory) as own:
                return self.accept(subscription_id, offer_id, own)
        cs = self._session(db, subscription_id)
        sessions.accept_offer(db, cs, sessions.snapshot(cs), offer_id, utcnow())
        return cs.session_id

    def cancel(
        self,
        subscription_id: str,
        reason_id: str = "too_expensive",
        comment: str | None = None,
        db: Session | None = None,
    ) -> str:
        if db is None:
            with transaction(self.factory) as own:
                return self.cancel(subscription_id, reason_id, comment, own)
        cs = self._session(db, subscription_id)
        sessions.cancel(
            db, cs, sessions.snapshot(cs), CancelFlowSettings(), reason_id, comment, utcnow()
        )
        return cs.session_id

    def job_errors(self) -> list[str]:
        from stayflow.jobs.models import Job

        with self.factory() as db:
            return [e for e in db.scalars(select(Job.last_error)).all() if e]

    def action(self, session_id: str) -> BillingAction:
        with self.factory() as db:
            found = db.scalar(select(BillingAction).where(BillingAction.session_id == session_id))
            assert found is not None
            db.expunge(found)
            return found


def make_env(factory: sessionmaker[Session], settings: Settings, app_id: str) -> Env:
    with factory() as db:
        app = get_app_by_public_id(db, app_id)
        assert app is not None
        return Env(factory, settings, app.id, app_id)


def retrieve(client: stripe.StripeClient, sub_id: str) -> dict[str, Any]:
    """Stripe's state of a subscription, through the SDK, as a plain dict."""
    sub = client.v1.subscriptions.retrieve(sub_id, {"expand": ["discounts"]})
    data: dict[str, Any] = sub.to_dict()
    return data
