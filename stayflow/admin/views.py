"""What the admin pages show, gathered from the domains' services (never their tables)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from stayflow.admin.i18n import N_, Message
from stayflow.apps.models import App
from stayflow.attribution import repository as attribution_repository
from stayflow.billing import service as billing_service
from stayflow.billing.actions import service as actions_service
from stayflow.cancel_sessions import repository as sessions_repository
from stayflow.cancel_sessions.models import OUTCOMES, CancelSession
from stayflow.enrichment import service as enrichment_service
from stayflow.events import service as events_service
from stayflow.settings import Settings
from stayflow.webhooks import service as webhooks_service

OUTCOME_FILTERS = ("open", *OUTCOMES)
PAGE_SIZE = 50


@dataclass
class StripeSummary:
    connected: bool
    account_id: str | None
    livemode: bool | None
    missing: list[Message] = field(default_factory=list)


def stripe_summary(db: Session, app: App, settings: Settings) -> StripeSummary:
    """Connected or not, and each thing still missing, in a sentence each."""
    status = billing_service.status(db, app, settings)
    summary = StripeSummary(status.connected, status.account_id, status.livemode)
    if not status.connected:
        summary.missing.append(
            Message("No Stripe key is connected: connect a restricted key in Settings, Stripe.")
        )
        return summary
    for name, use in status.use_cases.items():
        if not use.enabled:
            continue
        label = name.replace("_", " ")
        if use.missing:
            summary.missing.append(
                Message(
                    "%(use_case)s: the key lacks %(permissions)s.",
                    use_case=label,
                    permissions=", ".join(use.missing),
                )
            )
        elif use.unknown:
            summary.missing.append(
                Message(
                    "%(use_case)s: not yet checked: %(permissions)s.",
                    use_case=label,
                    permissions=", ".join(use.unknown),
                )
            )
    if status.webhooks.note:
        summary.missing.append(Message("Webhooks: %(note)s.", note=status.webhooks.note))
    return summary


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of the current week."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def outcomes_this_week(db: Session, app: App, now: datetime) -> list[tuple[str, int]]:
    counts = sessions_repository.count_by_outcome(db, app, week_start(now))
    return [(o, counts.get(None if o == "open" else o, 0)) for o in OUTCOME_FILTERS]


def snippet(settings: Settings, app: App) -> str:
    base = settings.base_url.rstrip("/")
    app_id = json.dumps(app.app_id)
    return (
        '<a id="bb-cancel" href="/account/cancel">Cancel my subscription</a>\n'
        f'<script src="{base}/js/stayflow.js"></script>\n'
        "<script>\n"
        "  window.Stayflow.handleData({\n"
        f"    app_id: {app_id},\n"
        '    subscription_id: "<the subscriber\'s Stripe subscription id>",\n'
        '    auth_hash: "<HMAC-SHA256 of subscription_id with the app secret, made on '
        'your server>",\n'
        '    save_return_url: "https://your.app/account",\n'
        '    cancel_confirmation_url: "https://your.app/goodbye"\n'
        "  });\n"
        "</script>"
    )


@dataclass
class Filters:
    outcome: str | None = None
    reason: str = ""
    offer: str = ""
    experience: str = ""
    date_from: str = ""
    date_to: str = ""
    subscription_id: str = ""
    customer_id: str = ""
    email: str = ""
    errors: list[Message] = field(default_factory=list)

    def query(self, **extra: str) -> str:
        """These filters as a query string (for the next page's link)."""
        params = {
            "outcome": self.outcome or "",
            "reason": self.reason,
            "offer": self.offer,
            "experience": self.experience,
            "from": self.date_from,
            "to": self.date_to,
            "subscription": self.subscription_id,
            "customer": self.customer_id,
            "email": self.email,
            **extra,
        }
        return urlencode({k: v for k, v in params.items() if v})


def _day(value: str, name: Message, errors: list[Message]) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors.append(Message("%(field)s: use a date like 2026-12-01.", field=name))
        return None


def parse_filters(
    outcome: str,
    date_from: str,
    date_to: str,
    subscription_id: str,
    customer_id: str,
    *,
    reason: str = "",
    offer: str = "",
    experience: str = "",
    email: str = "",
) -> tuple[Filters, datetime | None, datetime | None]:
    filters = Filters(
        outcome=outcome or None,
        reason=reason.strip()[:100],
        offer=offer.strip()[:100],
        experience=experience.strip()[:100],
        date_from=date_from.strip(),
        date_to=date_to.strip(),
        subscription_id=subscription_id.strip()[:255],
        customer_id=customer_id.strip()[:255],
        email=email.strip()[:320],
    )
    if filters.outcome is not None and filters.outcome not in OUTCOME_FILTERS:
        filters.errors.append(
            Message("Outcome: choose one of %(choices)s.", choices=", ".join(OUTCOME_FILTERS))
        )
        filters.outcome = None
    start = _day(filters.date_from, Message("From"), filters.errors)
    end = _day(filters.date_to, Message("To"), filters.errors)
    return filters, start, (end + timedelta(days=1) if end else None)


@dataclass
class SessionPage:
    rows: list[CancelSession]
    next_cursor: str | None  # the session_id to continue after, when there are more


def search(
    db: Session,
    app: App,
    filters: Filters,
    start: datetime | None,
    end: datetime | None,
    *,
    after_session: str = "",
) -> SessionPage:
    """One page of matching sessions, newest first; ``after_session`` continues a list."""
    before_pk = None
    if after_session:
        cursor = sessions_repository.get(db, app, after_session[:40])
        before_pk = cursor.id if cursor is not None else None
    rows = list(
        sessions_repository.filter_sessions(
            db,
            app,
            outcome=filters.outcome,
            reason_id=filters.reason or None,
            offer_id=filters.offer or None,
            experience_id=filters.experience or None,
            created_after=start,
            created_before=end,
            subscription_id=filters.subscription_id or None,
            customer_id=filters.customer_id or None,
            email=filters.email or None,
            before_pk=before_pk,
            limit=PAGE_SIZE + 1,
        )
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return SessionPage(rows, rows[-1].session_id if more and rows else None)


@dataclass
class Entry:
    """One moment of a session's story."""

    at: datetime | None
    title: Message
    lines: list[Message] = field(default_factory=list)
    data: Any = None
    data_label: Message | None = None
    failed: bool = False


@dataclass
class Story:
    session: CancelSession
    reason_label: str | None
    offer: dict[str, Any] | None
    actions: list[Any]
    events: list[Any]
    timeline: list[Entry]
    mapped_fields: dict[str, Any]
    watches: list[Any]


def _label(items: Any, wanted: str | None) -> dict[str, Any] | None:
    if wanted is None:
        return None
    for item in items or []:
        if isinstance(item, dict) and item.get("id") == wanted:
            return item
    return None


EVENT_TITLES = {
    "session.created": N_("Session started"),
    "session.deflected": N_("Left without cancelling"),
    "session.saved": N_("Accepted an offer"),
    "session.canceled": N_("Confirmed the cancel"),
    "session.abandoned": N_("Marked abandoned"),
    "session.completed": N_("Session complete"),
    "billing.action.succeeded": N_("Stripe applied the billing action"),
    "billing.action.failed": N_("The billing action failed"),
    "billing.offer.refused": N_("Stripe refused the offer"),
    "save.validated": N_("Save validated: kept paying through the window"),
    "save.lapsed": N_("Save lapsed"),
    "cancel.reactivated": N_("Came back: a new paying subscription"),
}


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _timeline(
    cs: CancelSession,
    reason_label: str | None,
    offer: dict[str, Any] | None,
    actions: list[Any],
    events: list[Any],
    deliveries: list[tuple[Any, Any]],
    watches: list[Any],
) -> list[Entry]:
    entries: list[Entry] = [
        Entry(
            cs.created_at,
            Message(
                "The snippet opened a session for %(subscription)s", subscription=cs.subscription_id
            ),
            [Message("Signed by your server.") if cs.signed else Message("Unsigned request.")],
            cs.request_fields,
            Message("What the snippet sent"),
        )
    ]
    if cs.viewed_at or cs.experience_id:
        lines = [Message("Experience %(experience)s", experience=cs.experience_id or "-")]
        if cs.experiment_id:
            lines.append(
                Message(
                    "Experiment %(experiment)s, variant %(variant)s",
                    experiment=cs.experiment_id,
                    variant=cs.variant_id or "-",
                )
            )
        entries.append(
            Entry(
                cs.viewed_at,
                Message("The page was shown"),
                lines,
                cs.enriched_fields or None,
                Message("Fields read from Stripe"),
            )
        )
    if cs.reason_id:
        lines = [Message("Reason: %(reason)s", reason=reason_label or cs.reason_id)]
        if cs.reason_comment:
            lines.append(Message("Comment: %(comment)s", comment=cs.reason_comment))
        entries.append(Entry(cs.reason_at, Message("Chose a reason"), lines))
    if cs.offers_shown:
        entries.append(
            Entry(
                cs.reason_at or cs.viewed_at,
                Message("Offers shown"),
                [Message("%(offers)s", offers=", ".join(cs.offers_shown))],
            )
        )
    if offer is not None:
        entries.append(
            Entry(
                cs.outcome_at,
                Message(
                    "Accepted the offer %(offer)s (%(type)s)",
                    offer=str(offer.get("id")),
                    type=str(offer.get("type")),
                ),
                data=offer,
                data_label=Message("The offer as it was shown"),
            )
        )
    for action in actions:
        lines = [
            Message(
                "Status: %(status)s, %(attempts)s attempts",
                status=action.status,
                attempts=action.attempts,
            )
        ]
        if action.error:
            lines.append(Message("Error: %(error)s", error=action.error))
        entries.append(
            Entry(
                action.finished_at or action.created_at,
                Message("Billing action: %(kind)s", kind=action.kind),
                lines,
                action.result or None,
                Message("Stripe's resulting state"),
                failed=action.status == "failed",
            )
        )
    sent: dict[int, list[tuple[Any, Any]]] = {}
    for delivery, endpoint in deliveries:
        sent.setdefault(delivery.event_id, []).append((delivery, endpoint))
    for event in events:
        lines = []
        for delivery, endpoint in sent.get(event.id, []):
            lines.append(
                Message(
                    "Webhook to %(url)s: %(status)s after %(attempts)s attempts",
                    url=endpoint.url,
                    status=delivery.status,
                    attempts=delivery.attempts,
                )
            )
        title = EVENT_TITLES.get(event.type)
        entries.append(
            Entry(
                event.created_at,
                Message("Event %(type)s: %(title)s", type=event.type, title=Message(title))
                if title
                else Message("Event %(type)s", type=event.type),
                lines,
                event.data,
                Message("Event data"),
                failed=event.type
                in ("billing.action.failed", "billing.offer.refused", "save.lapsed"),
            )
        )
    for watch in watches:
        lines = [
            Message("Validation window ends %(day)s", day=watch.window_ends_at.strftime("%Y-%m-%d"))
        ]
        if watch.cause:
            lines.append(Message("Cause: %(cause)s", cause=watch.cause))
        entries.append(
            Entry(
                watch.status_at or watch.created_at,
                Message("Attribution: %(status)s", status=watch.status),
                lines,
                failed=watch.status == "lapsed",
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: _aware(e.at) or far)


def story(db: Session, app: App, session_id: str) -> Story | None:
    cs = sessions_repository.get(db, app, session_id)
    if cs is None:
        return None
    reason = _label(cs.flow.get("reasons"), cs.reason_id)
    reason_label = str(reason.get("label", cs.reason_id)) if reason else cs.reason_id
    offer = _label(cs.flow.get("offers"), cs.offer_accepted_id)
    actions = list(actions_service.actions_of_session(db, app.id, cs.session_id))
    events = list(events_service.events_of_session(db, app.id, cs.session_id))
    deliveries = webhooks_service.deliveries_of_events(db, app.id, [e.id for e in events])
    watches = list(attribution_repository.watches_of_session(db, app.id, cs.session_id))
    mappings = enrichment_service.list_mappings(db, app.id)
    mapped = enrichment_service.apply_mappings(mappings, cs.enriched_fields or {}).values
    return Story(
        session=cs,
        reason_label=reason_label,
        offer=offer,
        actions=actions,
        events=events,
        timeline=_timeline(cs, reason_label, offer, actions, events, deliveries, watches),
        mapped_fields=mapped,
        watches=watches,
    )


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@dataclass
class HomeAttention:
    pending_saves: int
    failing_webhooks: list[Any]


def attention(db: Session, app: App) -> HomeAttention:
    return HomeAttention(
        attribution_repository.pending_saves(db, app.id),
        webhooks_service.failing_endpoints(db, app.id),
    )


# The server-side half of the snippet: auth_hash in each language the docs show.
SIGNING_CODE = {
    "Python": (
        "import hashlib, hmac, os\n\n"
        "auth_hash = hmac.new(\n"
        '    os.environ["STAYFLOW_APP_SECRET"].encode(),\n'
        "    subscription_id.encode(),\n"
        "    hashlib.sha256,\n"
        ").hexdigest()"
    ),
    "Node": (
        'const crypto = require("node:crypto");\n\n'
        "const authHash = crypto\n"
        '  .createHmac("sha256", process.env.STAYFLOW_APP_SECRET)\n'
        "  .update(subscriptionId)\n"
        '  .digest("hex");'
    ),
    "Ruby": (
        'require "openssl"\n\n'
        'auth_hash = OpenSSL::HMAC.hexdigest("SHA256", ENV.fetch("STAYFLOW_APP_SECRET"), '
        "subscription_id)"
    ),
    "PHP": (
        "<?php\n$authHash = hash_hmac('sha256', $subscriptionId, getenv('STAYFLOW_APP_SECRET'));"
    ),
}
