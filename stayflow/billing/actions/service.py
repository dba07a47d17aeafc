"""Applying an accepted offer or a cancel in the billing provider, exactly once.

How "exactly once" holds:

- the outcome and its job are one transaction (``cancel_sessions.service``), so a job
  exists exactly when an outcome does;
- the first attempt freezes a *plan* (the parameters to send) on the action row in its own
  small transaction, so every retry, on any worker, sends the same parameters;
- every write carries the Idempotency-Key ``stayflow:<session>:<action>:<subscription>``;
- before writing, the subscription is read: a plan already visible in Stripe is not sent
  again (this also makes the cancel ``DELETE``, on which Stripe ignores the key, safe);
- the action's success is recorded in the job's own transaction, so "applied" and "job
  done" commit together; a failure is recorded in its own transaction before the job dies.

Services never commit the caller's session; the helpers that open their own session say so.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stayflow.billing import repository as billing_repository
from stayflow.billing import service as billing_service
from stayflow.billing.actions import plans
from stayflow.billing.actions.config import action_settings
from stayflow.billing.actions.models import (
    APPLIED,
    APPLY_OFFER,
    CANCEL,
    FAILED,
    PENDING,
    SKIPPED,
    BillingAction,
    BillingEvent,
)
from stayflow.billing.actions.plans import OfferNotApplicable
from stayflow.billing.models import BillingConnection
from stayflow.billing.provider import (
    BillingBusy,
    BillingIdempotencyConflict,
    BillingInvalidRequest,
    BillingObjectMissing,
    BillingOfferRefused,
    BillingUnavailable,
    BillingWriter,
    FetchedSubscription,
    SubscriptionChange,
)
from stayflow.billing.schemas import CancelOptions, StripeSetup
from stayflow.billing.stripe.convert import subscription_from
from stayflow.crypto import Encryptor
from stayflow.db import utcnow
from stayflow.events import service as events_service
from stayflow.settings import Settings

log = logging.getLogger("stayflow.billing.actions")
T = TypeVar("T")

EVENT_APPLIED = "billing.action.succeeded"
EVENT_FAILED = "billing.action.failed"
EVENT_OFFER_REFUSED = "billing.offer.refused"


class TransientFailure(Exception):
    """The provider could not be reached or asked us to wait: try the action again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ActionFailed(Exception):
    """Retrying cannot help (Stripe refused, or the offer does not fit): the action failed."""


class OfferRefused(ActionFailed):
    """The offer itself cannot be applied: the subscriber should choose again.

    ``scope`` is ``"offer"`` when Stripe refused what the offer names (its coupon deleted,
    its price archived since the flow was saved: every subscriber would be refused), or
    ``"subscription"`` when only this subscription cannot take it (a pause over a renewal).
    """

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


# --- keys and writers ----------------------------------------------------------------


def idempotency_key(session_id: str, action: str, subscription_id: str) -> str:
    """Stable across retries and workers: the same (session, action, target) is one write."""
    return f"stayflow:{session_id}:{action}:{subscription_id}"[:255]


def make_writer(settings: Settings, api_key: str, *, timeout: float) -> BillingWriter:
    from stayflow.billing.stripe.actions import StripeBillingWriter

    return StripeBillingWriter(api_key, api_base=settings.stripe_api_base, timeout=timeout)


# Tests may put a working alternative here (Netflix/dispatch style), e.g. to count calls.
WRITER_FACTORIES: dict[str, Callable[[Settings, str, float], BillingWriter]] = {
    "stripe": lambda settings, key, timeout: make_writer(settings, key, timeout=timeout)
}


class Caller:
    """Runs one provider call, retrying transient errors a few times within the attempt."""

    def __init__(self, tries: int, max_wait: float) -> None:
        self.tries = max(1, tries)
        self.max_wait = max_wait

    def __call__(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.tries + 1):
            try:
                return fn()
            except BillingBusy as exc:
                wait = exc.retry_after
                if attempt >= self.tries or (wait is not None and wait > self.max_wait):
                    raise TransientFailure(exc.message, exc.retry_after) from None
                time.sleep(wait if wait is not None else random.uniform(0.05, 0.25) * attempt)
            except BillingUnavailable as exc:
                if attempt >= self.tries:
                    raise TransientFailure(exc.message) from None
                time.sleep(random.uniform(0.05, 0.25) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover


# --- the action row ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRow:
    id: int
    status: str
    plan: dict[str, Any]
    created_at: datetime


def ensure_action(
    factory: sessionmaker[Session],
    *,
    app_pk: int,
    session_id: str,
    kind: str,
    subscription_id: str,
    offer: dict[str, Any] | None = None,
) -> ActionRow:
    """The action's row, created on the first attempt, its attempts counted (one statement in
    its own transaction, committed)."""
    from sqlalchemy.dialects import postgresql, sqlite

    with factory() as db:
        now = utcnow()
        dialect = db.get_bind().dialect.name
        insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert_fn(BillingAction).values(
            app_pk=app_pk,
            session_id=session_id,
            kind=kind,
            subscription_id=subscription_id,
            offer_id=(offer or {}).get("id"),
            offer_type=(offer or {}).get("type"),
            status=PENDING,
            plan={},
            result={},
            attempts=1,
            created_at=now,
            updated_at=now,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["session_id", "kind"],
            set_={"attempts": BillingAction.attempts + 1, "updated_at": now},
        ).returning(
            BillingAction.id, BillingAction.status, BillingAction.plan, BillingAction.created_at
        )
        row = db.execute(upsert).one()
        db.commit()
        created_at = row[3] if row[3].tzinfo else row[3].replace(tzinfo=UTC)
        return ActionRow(row[0], row[1], dict(row[2] or {}), created_at)


def freeze_plan(
    factory: sessionmaker[Session], action_id: int, plan: dict[str, Any]
) -> dict[str, Any]:
    """Store the plan unless one is stored already (then that one wins); own transaction."""
    with factory() as db:
        row = db.scalar(
            select(BillingAction).where(BillingAction.id == action_id).with_for_update()
        )
        assert row is not None
        if not row.plan:
            row.plan = plan
        stored = dict(row.plan)
        db.commit()
        return stored


def emit_event(db: Session, app_pk: int, type_: str, data: dict[str, Any]) -> BillingEvent:
    """Record an event in the app's event log (kept for callers; see ``stayflow.events``)."""
    return events_service.emit_event(db, app_pk, type_, data)


def _event_data(row: BillingAction) -> dict[str, Any]:
    return {
        "session_id": row.session_id,
        "action": row.kind,
        "subscription_id": row.subscription_id,
        "offer_id": row.offer_id,
        "offer_type": row.offer_type,
        "status": row.status,
        "error": row.error,
        "result": row.result,
    }


def _session_completed(db: Session, row: BillingAction) -> None:
    """The session's whole story (``session.completed``), now that its billing is settled."""
    from stayflow.cancel_sessions import events as session_events

    assert row.finished_at is not None
    session_events.billing_settled(
        db, row.session_id, row.kind, row.status, row.error, row.finished_at
    )


def mark_applied(db: Session, action_id: int, result: dict[str, Any]) -> None:
    row = db.get(BillingAction, action_id)
    assert row is not None
    row.status = APPLIED
    row.result = result
    row.error = None
    row.finished_at = utcnow()
    emit_event(db, row.app_pk, EVENT_APPLIED, _event_data(row))
    _session_completed(db, row)


def mark_skipped(db: Session, action_id: int, why: str) -> None:
    row = db.get(BillingAction, action_id)
    assert row is not None
    row.status = SKIPPED
    row.error = why
    row.finished_at = utcnow()
    _session_completed(db, row)


def mark_failed(factory: sessionmaker[Session], action_id: int, message: str) -> None:
    """Failed for good: visible in the admin API, and an event (own transaction)."""
    with factory() as db:
        row = db.get(BillingAction, action_id)
        assert row is not None
        if row.status == APPLIED:
            return
        row.status = FAILED
        row.error = message[:4000]
        row.finished_at = utcnow()
        emit_event(db, row.app_pk, EVENT_FAILED, _event_data(row))
        _session_completed(db, row)
        db.commit()
    log.warning("billing.action.failed", extra={"action_id": action_id, "error": message[:500]})


def mark_failed_if_pending(factory: sessionmaker[Session], action_id: int, message: str) -> None:
    """Mark failed only an action nothing has settled yet (applied, skipped or failed)."""
    with factory() as db:
        status = db.scalar(select(BillingAction.status).where(BillingAction.id == action_id))
    if status == PENDING:
        mark_failed(factory, action_id, message)


def mark_refused(
    factory: sessionmaker[Session],
    action_id: int,
    message: str,
    scope: str,
    *,
    session_goes_on: bool,
) -> None:
    """The offer was refused (own transaction): the action failed (``billing.action.failed``)
    and ``billing.offer.refused`` says which offer and why, with the flows version it was
    refused under (the business fixes an offer by saving the flows, which checks it)."""
    from stayflow.flows import repository as flows_repository

    with factory() as db:
        row = db.get(BillingAction, action_id)
        assert row is not None
        if row.status == APPLIED:
            return
        config = flows_repository.get_config_by_app_pk(db, row.app_pk)
        row.status = FAILED
        row.error = message[:4000]
        row.result = {"refused": {"scope": scope, "message": message[:1000]}}
        row.finished_at = utcnow()
        emit_event(db, row.app_pk, EVENT_FAILED, _event_data(row))
        data = _event_data(row)
        data["scope"] = scope
        data["flows_version"] = config.version if config is not None else 0
        emit_event(db, row.app_pk, EVENT_OFFER_REFUSED, data)
        if not session_goes_on:
            # Found by a worker: the subscriber has left, the session's story is complete.
            # (Within their request they go back to the offers: the session goes on.)
            _session_completed(db, row)
        db.commit()
    log.warning("billing.offer.refused", extra={"action_id": action_id, "error": message[:500]})


def note_error(factory: sessionmaker[Session], action_id: int, message: str) -> None:
    with factory() as db:
        row = db.get(BillingAction, action_id)
        if row is not None and row.status == PENDING:
            row.error = message[:4000]
            db.commit()


# --- running one action ------------------------------------------------------------------


@dataclass
class Context:
    """What one attempt needs: sessions, the app's writer (None: send nothing), the caller."""

    db: Session
    factory: sessionmaker[Session]
    app_pk: int
    setup: StripeSetup
    writer: BillingWriter | None
    call: Caller
    # The app's connection as read once for this attempt (the mirror's freshness needs it).
    connection: BillingConnection | None = None


def load_context(
    db: Session,
    factory: sessionmaker[Session],
    app_pk: int,
    settings: Settings,
    encryptor: Encryptor,
    *,
    inline: bool,
) -> Context:
    # Read in a short session of its own: the job's session must hold no lock (SQLite's
    # BEGIN IMMEDIATE) while the action's own rows are written and Stripe is called.
    with factory() as own:
        conn = billing_repository.get_connection_by_app_pk(own, app_pk)
        setup = StripeSetup.model_validate(conn.setup if conn else {})
        key = billing_service.connected_key(encryptor, conn)
        provider = conn.provider if conn else "stripe"
        if conn is not None:
            own.expunge(conn)
    cfg = action_settings()
    timeout = cfg.inline_timeout if inline else cfg.worker_timeout
    writer = None
    if key is not None:
        writer = WRITER_FACTORIES[provider](settings, key, timeout)
    tries = 1 if inline else cfg.worker_call_tries
    return Context(
        db, factory, app_pk, setup, writer, Caller(tries, cfg.max_inline_wait), connection=conn
    )


def _permanent(exc: Exception) -> ActionFailed:
    message = getattr(exc, "message", None) or str(exc)
    return ActionFailed(message)


def apply_offer(ctx: Context, payload: dict[str, Any]) -> str:
    """Run the ``billing.apply_offer`` job's work; returns the action's status."""
    offer = dict(payload.get("offer") or {})
    row = ensure_action(
        ctx.factory,
        app_pk=ctx.app_pk,
        session_id=str(payload["session_id"]),
        kind=APPLY_OFFER,
        subscription_id=str(payload["subscription_id"]),
        offer=offer,
    )
    if row.status in (APPLIED, SKIPPED, FAILED):
        return row.status
    if ctx.writer is None or not ctx.setup.offers:
        why = "the app has no Stripe connection" if ctx.writer is None else "offers are off"
        mark_skipped(ctx.db, row.id, why)
        return SKIPPED
    writer, call = ctx.writer, ctx.call
    sub_id = str(payload["subscription_id"])
    key = idempotency_key(str(payload["session_id"]), APPLY_OFFER, sub_id)
    try:
        # The first attempt may plan from a fresh mirror row; a retry (plan frozen, a write
        # perhaps sent) reads Stripe itself, to send nothing already applied.
        fetched = current_subscription(ctx, sub_id, trust_mirror=not row.plan)
        try:
            plan = row.plan or freeze_plan(
                ctx.factory, row.id, _plan_offer(ctx, offer, fetched, row)
            )
        except OfferNotApplicable as exc:
            raise OfferRefused(exc.message, "subscription") from None
        after = fetched
        if not plans.offer_applied(plan, fetched.raw):
            change = plans.offer_change(plan)
            try:
                # The write's answer is the state after it (discounts expanded): no read back.
                after = call(
                    lambda: writer.update_subscription(sub_id, change, idempotency_key=key)
                )
            except BillingOfferRefused as exc:
                raise OfferRefused(
                    f"Stripe refused {_named(plan)}: {exc.message}", "offer"
                ) from None
            except BillingIdempotencyConflict:
                # Sent before with other parameters (cannot happen with a frozen plan, but a
                # key outlives a plan wiped by hand): trust only what Stripe shows.
                after = call(lambda: writer.retrieve_subscription(sub_id))
                if not plans.offer_applied(plan, after.raw):
                    raise
    except ActionFailed:
        raise
    except (OfferNotApplicable, BillingInvalidRequest, BillingObjectMissing) as exc:
        raise _permanent(exc) from None
    except TransientFailure:
        raise
    except BillingUnavailable as exc:  # pragma: no cover - Caller turns these into transient
        raise TransientFailure(exc.message) from None
    except Exception as exc:
        from stayflow.billing.provider import BillingError

        if isinstance(exc, BillingError):  # authentication, permissions: no retry helps
            raise _permanent(exc) from None
        raise
    mark_applied(
        ctx.db,
        row.id,
        {
            "subscriptions": {sub_id: plans.state_of(after.raw)},
            "summary": plans.offer_summary(plan, after.raw),
        },
    )
    return APPLIED


def _named(plan: dict[str, Any]) -> str:
    """What an offer's plan names in Stripe, for the refusal's message."""
    if plan.get("promotion_code"):
        return f"the promotion code {plan['promotion_code']!r}"
    if plan.get("coupon"):
        return f"the coupon {plan['coupon']!r}"
    if plan.get("price"):
        return f"the price {plan['price']!r}"
    return f"the {plan['type']} offer"


def current_subscription(
    ctx: Context, subscription_id: str, *, trust_mirror: bool
) -> FetchedSubscription:
    """The subscription as it is now: the mirror's row when it is fresh, else Stripe's."""
    assert ctx.writer is not None
    conn = ctx.connection
    if trust_mirror and conn is not None and conn.webhook_configured_at is not None:
        from stayflow.mirror import repository as mirror_repository
        from stayflow.mirror.service import is_fresh

        with ctx.factory() as own:
            found = mirror_repository.get_subscription(own, ctx.app_pk, subscription_id)
            if found is not None and found.raw and is_fresh(found, conn):
                raw = dict(found.raw)
                try:
                    return FetchedSubscription(subscription=subscription_from(raw), raw=raw)
                except (KeyError, TypeError, ValueError):
                    pass  # a row we cannot read: ask Stripe
    writer = ctx.writer
    return ctx.call(lambda: writer.retrieve_subscription(subscription_id))


def _plan_offer(
    ctx: Context, offer: dict[str, Any], fetched: FetchedSubscription, row: ActionRow
) -> dict[str, Any]:
    """Decide the change (first attempt only).

    The coupon, promotion code or price was checked with Stripe when the flow was saved;
    should it have gone since, Stripe refuses the write itself (an ``OfferRefused``), so
    nothing is read here but, for a plan change on a subscription with several items, the
    new price's product (to swap the right item).
    """
    assert ctx.writer is not None
    writer, sub = ctx.writer, fetched.subscription
    plan = plans.plan_offer(offer, sub, fetched.raw, row.created_at)
    if plan["type"] == "plan_change":
        product = None
        if len(sub.items) > 1:
            try:
                price = ctx.call(lambda: writer.retrieve_price(plan["price"]))
            except BillingObjectMissing:
                raise OfferRefused(
                    f"the price {plan['price']!r} no longer exists", "offer"
                ) from None
            product = price.product_id
        plan["item_id"] = plans.choose_item(sub, product)
    return plan


def cancel_subscription(ctx: Context, payload: dict[str, Any]) -> str:
    """Run the ``billing.cancel_subscription`` job's work; returns the action's status."""
    session_id = str(payload["session_id"])
    sub_id = str(payload["subscription_id"])
    row = ensure_action(
        ctx.factory,
        app_pk=ctx.app_pk,
        session_id=session_id,
        kind=CANCEL,
        subscription_id=sub_id,
    )
    if row.status in (APPLIED, SKIPPED, FAILED):
        return row.status
    if ctx.writer is None or not ctx.setup.cancels:
        why = "the app has no Stripe connection" if ctx.writer is None else "cancels are off"
        mark_skipped(ctx.db, row.id, why)
        return SKIPPED
    try:
        # As for offers: nothing was sent before a plan is frozen, so the first attempt may
        # start from a fresh mirror row; a retry reads Stripe (a DELETE ignores the key).
        fetched = current_subscription(ctx, sub_id, trust_mirror=not row.plan)
        plan = row.plan or freeze_plan(
            ctx.factory, row.id, _plan_cancel(ctx, ctx.setup.cancel, fetched, payload)
        )
        results: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        for target in plan["targets"]:
            current = fetched if target == sub_id else None
            after = _cancel_one(ctx, plan, session_id, target, current)
            results[target] = plans.state_of(after.raw)
            if target == sub_id:
                summary = plans.cancel_summary(plan, after.raw)
    except (OfferNotApplicable, BillingInvalidRequest) as exc:
        raise _permanent(exc) from None
    except BillingObjectMissing as exc:
        raise _permanent(exc) from None
    except TransientFailure:
        raise
    except Exception as exc:
        from stayflow.billing.provider import BillingError

        if isinstance(exc, BillingError):
            raise _permanent(exc) from None
        raise
    mark_applied(ctx.db, row.id, {"subscriptions": results, "summary": summary})
    return APPLIED


def _plan_cancel(
    ctx: Context, options: CancelOptions, fetched: FetchedSubscription, payload: dict[str, Any]
) -> dict[str, Any]:
    assert ctx.writer is not None
    writer, sub = ctx.writer, fetched.subscription
    targets = [sub.id]
    if options.all_subscriptions:
        others = ctx.call(lambda: writer.customer_subscriptions(sub.customer_id))
        targets += sorted(
            s.id for s in others if s.id != sub.id and s.status in plans.ACTIVE_STATUSES
        )
    return {
        "targets": targets,
        "at_period_end": options.at_period_end,
        "invoice_now": options.invoice_now,
        "prorate": options.prorate,
        "details": plans.cancellation_details(payload.get("feedback"), payload.get("comment")),
    }


def _cancel_one(
    ctx: Context,
    plan: dict[str, Any],
    session_id: str,
    target: str,
    current: FetchedSubscription | None,
) -> FetchedSubscription:
    """Cancel one subscription as planned; a subscription already canceled is a success."""
    assert ctx.writer is not None
    writer, call = ctx.writer, ctx.call
    key = idempotency_key(session_id, CANCEL, target)
    now = current or call(lambda: writer.retrieve_subscription(target))
    status = now.subscription.status
    done = status in ("canceled", "incomplete_expired") or (
        plan["at_period_end"] and now.subscription.cancel_at_period_end
    )
    if done:
        return now
    # The write's answer is the state after it: nothing is read back.
    if plan["at_period_end"]:
        change = SubscriptionChange(cancel_at_period_end=True, cancellation_details=plan["details"])
        return call(lambda: writer.update_subscription(target, change, idempotency_key=key))
    try:
        return call(
            lambda: writer.cancel_subscription_now(
                target,
                invoice_now=plan["invoice_now"],
                prorate=plan["prorate"],
                cancellation_details=plan["details"],
                idempotency_key=key,
            )
        )
    except (BillingInvalidRequest, BillingObjectMissing):
        # A DELETE whose answer was lost and then repeated: canceled is what we wanted.
        again = call(lambda: writer.retrieve_subscription(target))
        if again.subscription.status != "canceled":
            raise
        return again


# --- refusals --------------------------------------------------------------------------------


def release_refused_offer(db: Session, session_id: str) -> str | None:
    """After an offer was refused within the subscriber's request: nothing stays recorded as
    applying for the session (the events ``billing.action.failed`` and
    ``billing.offer.refused`` keep the story), so another offer can be accepted. Returns
    the refused offer's id, or None when the action was not a refusal (caller's transaction).
    """
    from stayflow.jobs.service import retire_unique_key

    row = db.scalar(
        select(BillingAction).where(
            BillingAction.session_id == session_id, BillingAction.kind == APPLY_OFFER
        )
    )
    if row is None or row.status != FAILED or not (row.result or {}).get("refused"):
        return None
    offer_id = row.offer_id
    db.delete(row)
    retire_unique_key(db, f"billing.apply_offer:{session_id}")
    db.flush()
    return offer_id


def refusals(db: Session, app_pk: int, *, limit: int = 500) -> list[dict[str, Any]]:
    """The app's recent offer refusals (newest first), as their events recorded them."""
    rows = db.scalars(
        select(BillingEvent)
        .where(BillingEvent.app_pk == app_pk, BillingEvent.type == EVENT_OFFER_REFUSED)
        .order_by(BillingEvent.id.desc())
        .limit(limit)
    ).all()
    return [{**dict(r.data or {}), "event_id": r.id, "refused_at": r.created_at} for r in rows]


def flows_version(db: Session, app_pk: int) -> int:
    from stayflow.flows import repository as flows_repository

    config = flows_repository.get_config_by_app_pk(db, app_pk)
    return config.version if config is not None else 0


def refused_offers(
    db: Session, app_pk: int, session_id: str | None = None
) -> dict[str, dict[str, Any]]:
    """Offer id -> its latest refusal, for offers not to show: those Stripe refused under
    the current flows (every subscriber would be refused; saving the flows checks them
    again), and those refused to this session (they do not fit its subscription)."""
    version = flows_version(db, app_pk)
    found: dict[str, dict[str, Any]] = {}
    for refusal in refusals(db, app_pk):
        offer_id = refusal.get("offer_id")
        if not isinstance(offer_id, str) or offer_id in found:
            continue
        everyone = refusal.get("scope") == "offer" and refusal.get("flows_version") == version
        if everyone or (session_id is not None and refusal.get("session_id") == session_id):
            found[offer_id] = refusal
    return found


# --- reading, for the admin API and the page ----------------------------------------------


def actions_of_session(db: Session, app_pk: int, session_id: str) -> Sequence[BillingAction]:
    return db.scalars(
        select(BillingAction)
        .where(BillingAction.app_pk == app_pk, BillingAction.session_id == session_id)
        .order_by(BillingAction.id)
    ).all()


def list_actions(
    db: Session, app_pk: int, *, status: str | None, before_id: int | None, limit: int
) -> Sequence[BillingAction]:
    query = select(BillingAction).where(BillingAction.app_pk == app_pk)
    if status is not None:
        query = query.where(BillingAction.status == status)
    if before_id is not None:
        query = query.where(BillingAction.id < before_id)
    return db.scalars(query.order_by(BillingAction.id.desc()).limit(limit)).all()


def list_events(
    db: Session, app_pk: int, *, after_id: int | None, limit: int
) -> Sequence[BillingEvent]:
    """The billing part of the app's event log (GET /api/v1/events has all of it)."""
    return events_service.list_events(
        db,
        app_pk,
        after_id=after_id,
        types=(EVENT_APPLIED, EVENT_FAILED, EVENT_OFFER_REFUSED),
        limit=limit,
    )
