"""The cancel page as a sample subscriber would see it, for the admin's live preview.

It renders the real page (``page.service.build`` and the page's templates) from any flows
document (live, draft or an old version) and sample fields: a mirrored subscription's fields
(read from the mirror, however old: never a Stripe call) and the fields a snippet would send.
Nothing is written: the cancel session is a transient object never added to the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stayflow.apps.models import App
from stayflow.billing import service as billing
from stayflow.cancel_sessions import trust
from stayflow.cancel_sessions.models import CancelSession
from stayflow.cancel_sessions.settings import read as read_settings
from stayflow.enrichment import service as enrichment
from stayflow.flows.assignment import choose
from stayflow.flows.schemas import FlowsDocument
from stayflow.page import i18n, rendering
from stayflow.page import service as page_service

PREVIEW_ID = "cs_preview"
# The preview's forms go nowhere (form-action 'none'), so its page carries no real token.
NO_TOKEN = ""


@dataclass(frozen=True)
class Preview:
    html: str
    nonce: str
    experience_id: str
    variant_id: str | None
    step: str
    # Where the sample's Stripe fields came from: "mirror", "entered" or "none".
    source: str


def render(
    db: Session,
    app: App,
    document: FlowsDocument,
    *,
    subscription_id: str,
    stripe_fields: Mapping[str, Any],
    request_fields: Mapping[str, Any],
    locale: str,
    reason_id: str | None,
    now: datetime,
) -> Preview:
    """The page's HTML for this sample; ``reason_id`` shows the step after that reason."""
    mirrored = (
        enrichment.mirrored_fields(
            db,
            app.id,
            subscription_id,
            request_fields=trust.mapping_sources(dict(request_fields), {}),
        )
        if subscription_id
        else None
    )
    # Fields typed in for the sample win over the mirror's (to try "what if it were annual").
    enriched = {**(mirrored or {}), **stripe_fields}
    source = "mirror" if mirrored is not None else "entered" if stripe_fields else "none"
    settings = read_settings(app)
    rule_fields = trust.rule_fields(
        dict(request_fields), enriched, {}, allow_unsigned=settings.allow_unsigned_targeting
    )
    snap = choose(
        document, rule_fields, app_id=app.app_id, subscription_id=subscription_id, now=now
    )
    locale = i18n.negotiate(locale, None)
    cs = CancelSession(
        session_id=PREVIEW_ID,
        app_pk=app.id,
        token_hash="",
        subscription_id=subscription_id or "sub_preview",
        signed=True,
        request_fields=dict(request_fields),
        signed_fields={},
        enriched_fields=enriched,
        locale=locale,
        flow=snap.model_dump(mode="json", exclude_none=True),
        experience_id=snap.experience.id,
        offers_shown=[],
        reason_id=reason_id if reason_id in {r.id for r in snap.reasons} else None,
        outcome=None,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        abandon_at=now + timedelta(hours=1),
    )
    state = page_service.PageState(cs, app, settings, snap, locale)
    state.cancel = billing.cancel_options(db, app)
    page = page_service.build(state, csrf_token=NO_TOKEN, base_path="#preview", now=now)
    nonce = secrets.token_urlsafe(16)
    html = rendering.render_page(page, state.gettext, state.ngettext, nonce=nonce, error=None)
    return Preview(html, nonce, snap.experience.id, snap.variant_id, page.step, source)


def security_headers(nonce: str) -> dict[str, str]:
    """The page's own policy, except that only the admin (same origin) may frame it, and its
    forms go nowhere: a preview cannot start, change or cancel anything."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; "
            "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
        ),
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
