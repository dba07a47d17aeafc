"""Cancel sessions: creating one (precancel), assigning its flow, and recording what happened.

Never commits: the request dependency, precancel's writer (``writer.py``) or the job
runner does. An outcome and the billing job it causes are written in the same
transaction (the outbox), so a billing job exists exactly when its outcome does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.cancel_sessions import events as session_events
from stayflow.cancel_sessions import repository, trust
from stayflow.cancel_sessions.appcache import AppInfo
from stayflow.cancel_sessions.enrichment import Enricher, safe_enrich
from stayflow.cancel_sessions.models import (
    ABANDONED,
    CANCELED,
    DEFLECTED,
    REDIRECTED,
    SAVED,
    CancelSession,
)
from stayflow.cancel_sessions.randomness import random_bytes
from stayflow.cancel_sessions.schemas import PrecancelRequest
from stayflow.cancel_sessions.settings import CancelFlowSettings
from stayflow.cancel_sessions.settings import read as read_settings
from stayflow.errors import BadRequest, Conflict, NotFound, StayflowError
from stayflow.flows import service as flows_service
from stayflow.flows.assignment import FlowSnapshot, choose, offers_for_reason
from stayflow.jobs import service as jobs_service
from stayflow.offers.schemas import BILLING_OFFER_TYPES

APPLY_OFFER_JOB = "billing.apply_offer"
CANCEL_SUBSCRIPTION_JOB = "billing.cancel_subscription"
TOKEN_BYTES = 24  # 192 bits
_OFFER_URL = re.compile(r"^offer_([1-9][0-9]?)_url$")
MAX_COMMENT = 2000


# --- errors -------------------------------------------------------------------


class PrecancelRejected(StayflowError):
    """Precancel answers ``{"valid": false, "message", "error": {...}}`` so the snippet can
    fall back; 400 for every refusal but an unknown app (404), as Brightback's clients expect."""

    status_code = 400
    error_type = "invalid_request"

    def to_body(self) -> dict[str, Any]:
        return {"valid": False, "message": self.message, **super().to_body()}


class UnknownApp(PrecancelRejected):
    status_code = 404
    error_type = "unknown_app"


class BadSignature(PrecancelRejected):
    error_type = "invalid_signature"


class OriginNotAllowed(PrecancelRejected):
    error_type = "origin_not_allowed"


class RedirectNotAllowed(PrecancelRejected):
    status_code = 400
    error_type = "redirect_not_allowed"


class SessionNotFound(NotFound):
    pass


class SessionExpired(StayflowError):
    status_code = 410
    error_type = "session_expired"


class SessionFinished(Conflict):
    error_type = "session_finished"


class ReasonRequired(StayflowError):
    status_code = 422
    error_type = "reason_required"


class UnknownChoice(BadRequest):
    pass


# --- tokens and signatures ----------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


expected_auth_hash = trust.expected_auth_hash
signature_valid = trust.auth_hash_valid


def csrf_token(secret_key: str, cs: CancelSession) -> str:
    """Bound to the session and the server secret, so it needs no storage."""
    message = f"csrf\x1f{cs.token_hash}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def embed_nonce(secret_key: str, cs_token_hash: str) -> str:
    """The per-session secret of a modal's messages (postMessage), derived like the CSRF token:
    the calling page gets it from precancel's answer, the framed page from the server."""
    message = f"embed\x1f{cs_token_hash}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]


def embed_origin(cs: CancelSession, settings: CancelFlowSettings) -> str | None:
    """The origin that may frame this session's page: the one that opened it in a modal,
    while it is still among the app's allowed origins; None: the page is never framed."""
    origin = cs.embed_origin
    if origin and origin in settings.allowed_origins:
        return origin
    return None


def csrf_valid(secret_key: str, cs: CancelSession, given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(csrf_token(secret_key, cs).encode(), given.encode())


# --- precancel ----------------------------------------------------------------


def check_origin(settings: CancelFlowSettings, origin: str | None) -> bool:
    """True when a browser origin may call precancel (no Origin: a server call, allowed)."""
    return origin is None or origin.rstrip("/").lower() in settings.allowed_origins


def prepare_session(
    app: AppInfo | None, request: PrecancelRequest, origin: str | None, now: datetime
) -> tuple[dict[str, Any], str]:
    """Check a precancel request; return the cancel session's row and its page token.

    Pure (no I/O), so the hot path can run it on the event loop and only the insert
    goes to a thread.
    """
    if app is None:
        raise UnknownApp("unknown app_id")
    settings = app.settings
    if not check_origin(settings, origin):
        raise OriginNotAllowed("this origin is not in the app's allowed origins")
    signed_fields: dict[str, Any] = {}
    if request.signed_fields:
        try:
            signed_fields = trust.verify_signed_fields(
                app.secret,
                request.signed_fields,
                request.subscription_id,
                int(now.timestamp()),
                settings.signed_fields_max_age_seconds,
            )
        except trust.SignedFieldsInvalid as exc:
            raise BadSignature(str(exc)) from exc
    if request.auth_hash:
        if not signature_valid(app.secret, request.subscription_id, request.auth_hash):
            raise BadSignature("auth_hash does not match subscription_id")
        signed = True
    elif request.signed_fields:
        signed = True  # the token names the subscription id too
    elif settings.allow_unsigned_precancel:
        signed = False
    else:
        raise BadSignature("auth_hash is required: HMAC-SHA256 of subscription_id, hex")
    urls: dict[str, str | None] = {}
    for name in ("save_return_url", "cancel_confirmation_url"):
        given = getattr(request, name)
        if given is not None and not app.redirect_allowed(given):
            raise RedirectNotAllowed(f"{name} is not on the app's allowed redirect domains")
        # The request's URL, else the app's default, else None: stayflow's result page.
        urls[name] = given or getattr(settings, name)
    for name, url in offer_return_urls(request.model_extra or {}, request.custom).items():
        if not isinstance(url, str) or not app.redirect_allowed(url):
            raise RedirectNotAllowed(f"{name} is not on the app's allowed redirect domains")
    # The body's size is capped before parsing, which bounds the stored fields too.
    fields = request.model_dump(exclude={"auth_hash", "signed_fields", "mode"}, exclude_none=True)
    # A modal needs the calling page's origin (a browser always sends it on this
    # cross-origin POST); already checked against the allowed origins above.
    embed = origin.rstrip("/").lower() if request.mode == "modal" and origin else None
    # One read of the OS's randomness for both: the page token and the public id.
    random = random_bytes(TOKEN_BYTES + 12)
    token = base64.urlsafe_b64encode(random[:TOKEN_BYTES]).rstrip(b"=").decode()
    row: dict[str, Any] = {
        "session_id": "cs_" + random[TOKEN_BYTES:].hex(),
        "app_pk": app.pk,
        "token_hash": hash_token(token),
        "subscription_id": request.subscription_id,
        "signed": signed,
        "request_fields": fields,
        "signed_fields": signed_fields,
        "enriched_fields": {},
        "locale": request.locale,
        "save_return_url": urls["save_return_url"],
        "cancel_confirmation_url": urls["cancel_confirmation_url"],
        "embed_origin": embed,
        "flow": {},
        "offers_shown": [],
        "created_at": now,
        "expires_at": now + app.session_lifetime,
        "abandon_at": now + app.abandon_after,
    }
    return row, token


def offer_return_urls(top: Mapping[str, Any], custom: Mapping[str, Any]) -> dict[str, Any]:
    """Brightback's per-offer return URLs: ``offer_accept_url`` and ``offer_<n>_url``, at the
    top level or under ``custom`` (the top level wins)."""
    found: dict[str, Any] = {}
    for source in (custom, top):
        for key, value in source.items():
            if key == "offer_accept_url" or _OFFER_URL.match(key):
                found[key] = value
    return found


ALL_SUBSCRIPTIONS_FLAGS = {
    "pause": "pause_all_subscriptions",
    "extension": "extend_all_subscriptions",
}


def all_subscriptions_asked(cs: CancelSession, offer_type: str, allow_unsigned: bool) -> bool:
    """Brightback's pause_all_subscriptions / extend_all_subscriptions for this offer's type.

    They widen what an offer gives, so they count only when the business signed them
    (``signed_fields``), or, from the unsigned request, when the app lets unsigned fields
    steer offers (``allow_unsigned_targeting``).
    """
    flag = ALL_SUBSCRIPTIONS_FLAGS.get(offer_type)
    if flag is None:
        return False
    sources: list[Any] = [cs.signed_fields or {}]
    if allow_unsigned:
        sources += [cs.request_fields, cs.request_fields.get("custom")]
    return any(isinstance(src, Mapping) and _truthy(src.get(flag)) for src in sources)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def offers_eligible(request_fields: Mapping[str, Any]) -> bool:
    """False when the request says ``offer_eligible: false`` (top level or under custom)."""
    custom = request_fields.get("custom")
    for source in (request_fields, custom if isinstance(custom, Mapping) else {}):
        value = source.get("offer_eligible")
        if value is False or (isinstance(value, str) and value.strip().lower() == "false"):
            return False
    return True


# --- the page's state ---------------------------------------------------------


def find_by_token(db: Session, token: str) -> CancelSession:
    if not token or len(token) > 100:
        raise SessionNotFound("no such cancel session")
    cs = repository.get_by_token_hash(db, hash_token(token))
    if cs is None:
        raise SessionNotFound("no such cancel session")
    return cs


def app_of(db: Session, cs: CancelSession) -> App:
    app = db.get(App, cs.app_pk)
    assert app is not None  # the foreign key cascades
    return app


def session_fields(cs: CancelSession, *, allow_unsigned: bool = False) -> dict[str, Any]:
    """What audience rules see: Stripe's fields, ``signed.*``, and (opt-in) request fields.

    Request fields never shadow or extend Stripe's (see ``trust``).
    """
    return trust.rule_fields(
        cs.request_fields,
        cs.enriched_fields,
        cs.signed_fields or {},
        allow_unsigned=allow_unsigned,
    )


def snapshot(cs: CancelSession) -> FlowSnapshot:
    return FlowSnapshot.model_validate(cs.flow)


def ensure_assigned(
    db: Session, cs: CancelSession, app: App, enricher: Enricher, now: datetime
) -> FlowSnapshot:
    """On first use: enrich, pick the experience (audiences, A/B) and keep a snapshot of it."""
    if cs.experience_id is not None and cs.flow:
        return snapshot(cs)
    cs.enriched_fields = safe_enrich(enricher, db, cs)
    doc, flow_version = flows_service.live_for_app_pk(db, cs.app_pk)
    allow_unsigned = read_settings(app).allow_unsigned_targeting
    snap = choose(
        doc,
        session_fields(cs, allow_unsigned=allow_unsigned),
        app_id=app.app_id,
        subscription_id=cs.subscription_id,
        now=now,
    )
    if not offers_eligible(cs.request_fields):
        # The business says this subscriber gets no offers (Brightback's offer_eligible).
        snap = snap.model_copy(update={"offers": []})
    cs.flow = snap.model_dump(mode="json", exclude_none=True)
    cs.flow_version = flow_version or None
    cs.experience_id = snap.experience.id
    cs.experiment_id = snap.experiment_id
    cs.variant_id = snap.variant_id
    was_viewed = cs.viewed_at is not None
    if cs.viewed_at is None:
        cs.viewed_at = now
    # --- event log (webhooks): session.created at the first view -------------------------
    session_events.first_view(db, cs, was_viewed)
    return snap


def check_open(cs: CancelSession, now: datetime) -> None:
    if cs.finished:
        raise SessionFinished("this cancel request is already complete")
    if now >= cs.expires_at:
        raise SessionExpired("this cancel link has expired")


def note_offers_shown(cs: CancelSession, offer_ids: list[str]) -> None:
    new = [oid for oid in offer_ids if oid not in cs.offers_shown]
    if new:
        cs.offers_shown = [*cs.offers_shown, *new]


def _clean_comment(comment: str | None) -> str | None:
    if comment is None:
        return None
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise BadRequest(f"a comment is at most {MAX_COMMENT} characters")
    return comment or None


def record_reason(
    db: Session,
    cs: CancelSession,
    snap: FlowSnapshot,
    reason_id: str | None,
    comment: str | None,
    now: datetime,
) -> None:
    check_open(cs, now)
    reason = next((r for r in snap.reasons if r.id == reason_id), None)
    if reason is None:
        raise UnknownChoice("choose one of the listed reasons")
    cs.reason_id = reason.id
    cs.reason_feedback = reason.feedback
    cs.reason_comment = _clean_comment(comment)
    cs.reason_at = now
    note_offers_shown(cs, [o.id for o in offers_for_reason(snap, reason.id)])


# --- outcomes -----------------------------------------------------------------


@dataclass(frozen=True)
class ActionResult:
    outcome: str
    # None: no URL from the request or the app; the flow ends on stayflow's result page.
    redirect_url: str | None
    replayed: bool = False


def destination(cs: CancelSession, snap: FlowSnapshot) -> str | None:
    """Where the subscriber goes after the outcome; None: stayflow's own result page."""
    if cs.outcome == CANCELED:
        return cs.cancel_confirmation_url
    if cs.outcome == REDIRECTED:
        offer = next((o for o in snap.offers if o.id == cs.offer_accepted_id), None)
        if offer is not None and offer.type == "redirect":
            return offer.url
    if cs.outcome == SAVED and cs.offer_accepted_id is not None:
        custom = cs.request_fields.get("custom")
        urls = offer_return_urls(cs.request_fields, custom if isinstance(custom, Mapping) else {})
        if urls:
            order = snap.experience.offers
            number = order.index(cs.offer_accepted_id) + 1 if cs.offer_accepted_id in order else 0
            chosen = urls.get(f"offer_{number}_url") or urls.get("offer_accept_url")
            if isinstance(chosen, str) and chosen:
                return chosen
    return cs.save_return_url


def _finish(db: Session, cs: CancelSession, outcome: str, now: datetime, **values: Any) -> bool:
    """Set the outcome if none is set yet; False when another request got there first."""
    result = db.execute(
        update(CancelSession)
        .where(
            CancelSession.id == cs.id,
            or_(CancelSession.outcome.is_(None), CancelSession.outcome == ABANDONED),
        )
        .values(outcome=outcome, outcome_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    won = int(getattr(result, "rowcount", 0) or 0) == 1
    db.refresh(cs)
    return won


def _replay_or_refuse(
    cs: CancelSession, snap: FlowSnapshot, outcomes: tuple[str, ...], offer_id: str | None = None
) -> ActionResult:
    """A repeated POST (double click, replay) gets the first answer; anything else is refused."""
    if cs.outcome in outcomes and (offer_id is None or cs.offer_accepted_id == offer_id):
        return ActionResult(cs.outcome or "", destination(cs, snap), replayed=True)
    raise SessionFinished("this cancel request is already complete")


def accept_offer(
    db: Session, cs: CancelSession, snap: FlowSnapshot, offer_id: str | None, now: datetime
) -> ActionResult:
    offer = next((o for o in snap.offers if o.id == offer_id), None)
    if cs.finished:
        return _replay_or_refuse(cs, snap, (SAVED, REDIRECTED), offer_id)
    check_open(cs, now)
    if offer is None:
        raise UnknownChoice("that offer is not available in this session")
    outcome = REDIRECTED if offer.type == "redirect" else SAVED
    shown = cs.offers_shown if offer.id in cs.offers_shown else [*cs.offers_shown, offer.id]
    if not _finish(db, cs, outcome, now, offer_accepted_id=offer.id, offers_shown=shown):
        return _replay_or_refuse(cs, snap, (SAVED, REDIRECTED), offer_id)
    if offer.type in BILLING_OFFER_TYPES:
        jobs_service.enqueue(
            db,
            APPLY_OFFER_JOB,
            {
                "session_id": cs.session_id,
                "subscription_id": cs.subscription_id,
                "offer_id": offer.id,
                "offer": offer.model_dump(mode="json", exclude={"translations"}),
                "all_subscriptions": all_subscriptions_asked(
                    cs, offer.type, read_settings(app_of(db, cs)).allow_unsigned_targeting
                ),
            },
            app_pk=cs.app_pk,
            unique_key=f"{APPLY_OFFER_JOB}:{cs.session_id}",
        )
    # --- event log (webhooks) -------------------------------------------------------------
    session_events.session_saved(db, cs, now)
    return ActionResult(outcome, destination(cs, snap))


def reopen_after_refusal(db: Session, cs: CancelSession, offer_id: str) -> bool:
    """Stripe refused the accepted offer at once: nothing is saved, the session is open again
    (the subscriber chooses another offer or cancels). False if the outcome moved on."""
    result = db.execute(
        update(CancelSession)
        .where(
            CancelSession.id == cs.id,
            CancelSession.outcome == SAVED,
            CancelSession.offer_accepted_id == offer_id,
        )
        .values(outcome=None, outcome_at=None, offer_accepted_id=None)
        .execution_options(synchronize_session=False)
    )
    db.refresh(cs)
    return int(getattr(result, "rowcount", 0) or 0) == 1


def deflect(db: Session, cs: CancelSession, snap: FlowSnapshot, now: datetime) -> ActionResult:
    if cs.finished:
        return _replay_or_refuse(cs, snap, (DEFLECTED,))
    check_open(cs, now)
    if not _finish(db, cs, DEFLECTED, now):
        return _replay_or_refuse(cs, snap, (DEFLECTED,))
    # --- event log (webhooks) -------------------------------------------------------------
    session_events.session_deflected(db, cs, now)
    return ActionResult(DEFLECTED, destination(cs, snap))


def cancel(
    db: Session,
    cs: CancelSession,
    snap: FlowSnapshot,
    settings: CancelFlowSettings,
    reason_id: str | None,
    comment: str | None,
    now: datetime,
) -> ActionResult:
    """Cancel: needs nothing but (if the app requires it) a reason, given now or before."""
    if cs.finished:
        return _replay_or_refuse(cs, snap, (CANCELED,))
    check_open(cs, now)
    if reason_id:
        record_reason(db, cs, snap, reason_id, comment, now)
    elif comment is not None and cs.reason_id is not None:
        cs.reason_comment = _clean_comment(comment) or cs.reason_comment
    if settings.reason_required and snap.reasons and cs.reason_id is None:
        raise ReasonRequired("please choose a reason before cancelling")
    db.flush()
    if not _finish(db, cs, CANCELED, now):
        return _replay_or_refuse(cs, snap, (CANCELED,))
    jobs_service.enqueue(
        db,
        CANCEL_SUBSCRIPTION_JOB,
        {
            "session_id": cs.session_id,
            "subscription_id": cs.subscription_id,
            "reason_id": cs.reason_id,
            "feedback": cs.reason_feedback,
            "comment": cs.reason_comment,
        },
        app_pk=cs.app_pk,
        unique_key=f"{CANCEL_SUBSCRIPTION_JOB}:{cs.session_id}",
    )
    # --- event log (webhooks) -------------------------------------------------------------
    session_events.session_canceled(db, cs, now)
    return ActionResult(CANCELED, destination(cs, snap))


def mark_abandoned(db: Session, now: datetime, batch: int = 1000) -> int:
    # Row by row, so each session gets its session.abandoned event (event log, webhooks).
    return session_events.mark_abandoned(db, now, batch)


def merge_context(cs: CancelSession) -> dict[str, Any]:
    """Merge-field values for copy: request fields (unsigned is fine for copy), signed fields
    over them, and Stripe's fields, which the request can never set, shadow or extend."""
    return trust.copy_context(cs.request_fields, cs.enriched_fields, cs.signed_fields or {})
