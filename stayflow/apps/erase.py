"""Removing data a business must be able to remove: a whole app, or one subscriber's traces.

Deleting an app removes every row that carries its ``app_pk`` (every tenant-owned table has
one, so a new domain is covered without a change here), after taking down the Stripe
webhook endpoint stayflow created for it. Erasing a subscriber keeps what counts anonymously
(outcome, reason, offer, amounts, plan) and removes what points at the person: the request
fields, comments, emails, names, identifiers, and their rows in the Stripe mirror. What
Stripe itself holds is the business's to erase in Stripe. Services never commit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

import stayflow.models  # noqa: F401  (every domain's tables, for the app_pk sweep)
from stayflow.apps.models import App
from stayflow.attribution.models import AttributionWatch, MirrorInvoice
from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.actions.models import PENDING, BillingAction, BillingEvent
from stayflow.cancel_sessions.models import CancelSession
from stayflow.crypto import Encryptor
from stayflow.db import Base
from stayflow.errors import BadRequest, Conflict
from stayflow.jobs.models import DEAD, SUCCEEDED, Job
from stayflow.mirror.models import MirrorCustomer, MirrorSubscription, StripeEvent
from stayflow.reports import service as reports_service
from stayflow.settings import Settings
from stayflow.webhooks.models import WebhookAttempt

log = logging.getLogger("stayflow.apps")

ERASED = "[erased]"
# Enriched fields about the subscription that identify nobody; anything else is dropped.
_PERSONAL_ENRICHED = re.compile(
    r"^subscription\.(id|customer\..*|metadata\..*|discount\.id|items\.\d+\.id)$"
)
_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[A-Za-z]{2,}")


class ConfirmationMismatch(BadRequest):
    pass


class ErasurePending(Conflict):
    pass


def delete_app(
    db: Session, app: App, settings: Settings, encryptor: Encryptor, *, confirm: str | None
) -> dict[str, int]:
    """Delete the app and everything it owns; ``confirm`` must repeat its app id.

    Returns the rows removed per table. The managed Stripe webhook endpoint is deleted in
    Stripe first (best effort: a failure is logged and does not keep the app alive).
    """
    if confirm != app.app_id:
        raise ConfirmationMismatch(
            f"to delete this app and all its data, confirm with its app id ({app.app_id})"
        )
    conn = billing_repository.get_connection(db, app)
    if conn is not None and conn.connected:
        billing_service.disconnect(db, app, settings, encryptor)
    removed: dict[str, int] = {}
    for table in reversed(Base.metadata.sorted_tables):
        if table.name == App.__tablename__ or "app_pk" not in table.c:
            continue
        count = _deleted(db, delete(table).where(table.c.app_pk == app.id))
        if count:
            removed[table.name] = count
    db.execute(delete(App).where(App.id == app.id))
    removed[App.__tablename__] = 1
    db.expunge_all()
    log.info("apps.deleted", extra={"app_id": app.app_id, "rows": removed})
    return removed


@dataclass
class Erasure:
    subscription_ids: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _deleted(db: Session, statement: Any) -> int:
    count: int = db.execute(statement).rowcount  # type: ignore[attr-defined]
    return count


def _scrub(value: Any, needles: list[str]) -> Any:
    """``value`` with every string mentioning one of ``needles`` (or any email) erased."""
    if isinstance(value, dict):
        return {_scrub(k, needles): _scrub(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    if isinstance(value, str):
        if _EMAIL.search(value) or any(n in value for n in needles):
            return ERASED
    return value


def _customer_of(cs: CancelSession) -> str | None:
    found = (cs.enriched_fields or {}).get("subscription.customer.id")
    return found if isinstance(found, str) and found else None


def erase_subscriber(
    db: Session, app: App, *, subscription_id: str | None = None, customer_id: str | None = None
) -> Erasure:
    """Erase one subscriber's personal data, found by subscription id or by customer id."""
    if bool(subscription_id) == bool(customer_id):
        raise BadRequest("name exactly one of subscription_id or customer_id")
    subs: set[str] = set()
    customers: set[str] = set()
    if subscription_id:
        subs.add(subscription_id)
    if customer_id:
        customers.add(customer_id)
    mirrored = db.execute(
        select(MirrorSubscription.subscription_id, MirrorSubscription.customer_id).where(
            MirrorSubscription.app_pk == app.id,
            or_(
                MirrorSubscription.subscription_id.in_(subs),
                MirrorSubscription.customer_id.in_(customers),
            ),
        )
    ).all()
    for sub, cus in mirrored:
        subs.add(sub)
        customers.add(cus)
    sessions = list(
        db.scalars(
            select(CancelSession).where(
                CancelSession.app_pk == app.id,
                or_(
                    CancelSession.subscription_id.in_(subs),
                    CancelSession.enriched_fields["subscription.customer.id"]
                    .as_string()
                    .in_(customers),
                ),
            )
        )
    )
    for cs in sessions:
        subs.add(cs.subscription_id)
        if (owner := _customer_of(cs)) is not None:
            customers.add(owner)
    session_ids = [cs.session_id for cs in sessions]
    actions = list(
        db.scalars(
            select(BillingAction).where(
                BillingAction.app_pk == app.id,
                or_(
                    BillingAction.session_id.in_(session_ids),
                    BillingAction.subscription_id.in_(subs),
                ),
            )
        )
    )
    if any(a.status == PENDING for a in actions):
        raise ErasurePending(
            "a billing action for this subscriber is still being applied; erase once it "
            "has settled (GET /api/v1/billing/actions?status=pending)"
        )
    emails = {
        str(v)
        for cs in sessions
        for k, v in {**cs.request_fields, **cs.enriched_fields}.items()
        if isinstance(v, str) and _EMAIL.fullmatch(v)
    }
    emails |= {
        e
        for e in db.scalars(
            select(MirrorCustomer.email).where(
                MirrorCustomer.app_pk == app.id, MirrorCustomer.customer_id.in_(customers)
            )
        )
        if e
    }
    needles = sorted(subs | customers | emails)
    erasure = Erasure(sorted(subs), sorted(customers))

    for cs in sessions:
        cs.subscription_id = ERASED
        cs.request_fields = {}
        cs.reason_comment = None
        cs.save_return_url = ""
        cs.cancel_confirmation_url = ""
        cs.enriched_fields = {
            k: v
            for k, v in cs.enriched_fields.items()
            if k.startswith("subscription.") and not _PERSONAL_ENRICHED.match(k)
        }
    erasure.counts["cancel_sessions"] = len(sessions)
    # The reports' facts copied the subscription id: recount these sessions without it.
    db.flush()
    reports_service.forget_subscriber(db, app.id, [cs.id for cs in sessions])
    for action in actions:
        action.subscription_id = ERASED
        action.plan = _scrub(action.plan, needles)
        action.result = _scrub(action.result, needles)
        if action.error is not None:
            action.error = str(_scrub(action.error, needles))
        if isinstance(action.plan, dict):
            action.plan.pop("comment", None)
            action.plan.pop("cancellation_details", None)
    erasure.counts["billing_actions"] = len(actions)
    # The app's event log (delivered by webhooks): the events about this subscriber, and
    # what receivers answered to their deliveries.
    event_ids: list[int] = []
    for event in db.scalars(select(BillingEvent).where(BillingEvent.app_pk == app.id)):
        data = event.data or {}
        if data.get("session_id") in session_ids or data.get("subscription_id") in subs:
            event.data = {**_scrub(data, needles), "subscription_id": ERASED}
            event_ids.append(event.id)
    erasure.counts["billing_events"] = len(event_ids)
    attempts = db.scalars(
        select(WebhookAttempt).where(
            WebhookAttempt.app_pk == app.id, WebhookAttempt.event_id.in_(event_ids)
        )
    ).all()
    for attempt in attempts:
        attempt.response = str(_scrub(attempt.response, needles))
        if attempt.error is not None:
            attempt.error = str(_scrub(attempt.error, needles))
    erasure.counts["webhook_attempts"] = len(attempts)
    # Attribution keeps its counts (outcome, status, amounts) but no longer knows whose they
    # were; an open watch can no longer be matched in Stripe and is not followed further.
    watches = db.scalars(
        select(AttributionWatch).where(
            AttributionWatch.app_pk == app.id,
            or_(
                AttributionWatch.session_id.in_(session_ids),
                AttributionWatch.subscription_id.in_(subs),
            ),
        )
    ).all()
    for watch in watches:
        watch.subscription_id = ERASED
        watch.customer_id = None
        if watch.reactivated_subscription_id is not None:
            watch.reactivated_subscription_id = ERASED
        if watch.cause is not None:
            watch.cause = str(_scrub(watch.cause, needles))
    erasure.counts["attribution_watches"] = len(watches)
    erasure.counts["mirror_invoices"] = _deleted(
        db,
        delete(MirrorInvoice).where(
            MirrorInvoice.app_pk == app.id,
            or_(
                MirrorInvoice.subscription_id.in_(subs),
                MirrorInvoice.customer_id.in_(customers),
            ),
        ),
    )
    erasure.counts["mirror_subscriptions"] = _deleted(
        db,
        delete(MirrorSubscription).where(
            MirrorSubscription.app_pk == app.id, MirrorSubscription.subscription_id.in_(subs)
        ),
    )
    erasure.counts["mirror_customers"] = _deleted(
        db,
        delete(MirrorCustomer).where(
            MirrorCustomer.app_pk == app.id, MirrorCustomer.customer_id.in_(customers)
        ),
    )
    # Handled events are history; an unhandled one is still to be applied to the mirror.
    stripe_events = db.scalars(
        select(StripeEvent).where(
            StripeEvent.app_pk == app.id,
            StripeEvent.object_id.in_(subs | customers),
            StripeEvent.handled_at.is_not(None),
        )
    ).all()
    for stripe_event in stripe_events:
        stripe_event.payload = {}
        stripe_event.object_id = ERASED
    erasure.counts["stripe_events"] = len(stripe_events)
    # Finished jobs are history too (and pruned later); queued ones still need their payload.
    jobs = 0
    for job in db.scalars(
        select(Job).where(Job.app_pk == app.id, Job.status.in_((SUCCEEDED, DEAD)))
    ):
        scrubbed = _scrub(job.payload, needles)
        if scrubbed != job.payload:
            job.payload = scrubbed
            job.last_error = None
            jobs += 1
    erasure.counts["jobs"] = jobs
    log.info("apps.subscriber_erased", extra={"app_id": app.app_id, "counts": erasure.counts})
    return erasure
