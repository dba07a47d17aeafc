"""What the admin pages show, gathered from the domains' services (never their tables)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stayflow.admin.i18n import Message
from stayflow.apps.models import App
from stayflow.billing import service as billing_service
from stayflow.billing.actions import service as actions_service
from stayflow.cancel_sessions import repository as sessions_repository
from stayflow.cancel_sessions.models import OUTCOMES, CancelSession
from stayflow.events import service as events_service
from stayflow.settings import Settings

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
    date_from: str = ""
    date_to: str = ""
    subscription_id: str = ""
    customer_id: str = ""
    errors: list[Message] = field(default_factory=list)


def _day(value: str, name: Message, errors: list[Message]) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors.append(Message("%(field)s: use a date like 2026-12-01.", field=name))
        return None


def parse_filters(
    outcome: str, date_from: str, date_to: str, subscription_id: str, customer_id: str
) -> tuple[Filters, datetime | None, datetime | None]:
    filters = Filters(
        outcome=outcome or None,
        date_from=date_from.strip(),
        date_to=date_to.strip(),
        subscription_id=subscription_id.strip()[:255],
        customer_id=customer_id.strip()[:255],
    )
    if filters.outcome is not None and filters.outcome not in OUTCOME_FILTERS:
        filters.errors.append(
            Message("Outcome: choose one of %(choices)s.", choices=", ".join(OUTCOME_FILTERS))
        )
        filters.outcome = None
    start = _day(filters.date_from, Message("From"), filters.errors)
    end = _day(filters.date_to, Message("To"), filters.errors)
    return filters, start, (end + timedelta(days=1) if end else None)


def search(
    db: Session, app: App, filters: Filters, start: datetime | None, end: datetime | None
) -> list[CancelSession]:
    return list(
        sessions_repository.search_sessions(
            db,
            app,
            outcome=filters.outcome,
            created_after=start,
            created_before=end,
            subscription_id=filters.subscription_id or None,
            customer_id=filters.customer_id or None,
            limit=PAGE_SIZE,
        )
    )


@dataclass
class Story:
    session: CancelSession
    reason_label: str | None
    offer: dict[str, Any] | None
    actions: list[Any]
    events: list[Any]


def _label(items: Any, wanted: str | None) -> dict[str, Any] | None:
    if wanted is None:
        return None
    for item in items or []:
        if isinstance(item, dict) and item.get("id") == wanted:
            return item
    return None


def story(db: Session, app: App, session_id: str) -> Story | None:
    cs = sessions_repository.get(db, app, session_id)
    if cs is None:
        return None
    reason = _label(cs.flow.get("reasons"), cs.reason_id)
    return Story(
        session=cs,
        reason_label=str(reason.get("label", cs.reason_id)) if reason else cs.reason_id,
        offer=_label(cs.flow.get("offers"), cs.offer_accepted_id),
        actions=list(actions_service.actions_of_session(db, app.id, cs.session_id)),
        events=list(events_service.events_of_session(db, app.id, cs.session_id)),
    )


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
