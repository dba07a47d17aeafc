"""Pass-thru URLs: after the outcome, send the subscriber to the business's own URL with a
signed token saying what happened, so its server can trust it and act itself.

An offer's ``pass_thru_url`` applies when that offer is accepted; the app's
``cancel_pass_thru_url`` (cancel-flow settings) when the subscriber cancels. The token is
``stayflow.signed`` (HMAC-SHA256 with the app secret), in the query parameter
``stayflow_token``, and expires after ``pass_thru_expiry_minutes`` (default 15).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stayflow import signed
from stayflow.apps import service as apps_service
from stayflow.apps.models import App
from stayflow.cancel_sessions.models import CANCELED, DEFLECTED, CancelSession
from stayflow.cancel_sessions.settings import CancelFlowSettings
from stayflow.crypto import Encryptor

QUERY_PARAM = "stayflow_token"


def add_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != QUERY_PARAM]
    query.append((QUERY_PARAM, token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def pass_thru_target(
    outcome: str,
    offer_id: str | None,
    offers: list[Mapping[str, Any]],
    cancel_pass_thru_url: str | None,
) -> str | None:
    """The configured pass-thru URL for this outcome, if any."""
    if outcome == CANCELED:
        return cancel_pass_thru_url
    if outcome == DEFLECTED or offer_id is None:
        return None
    for offer in offers:
        if offer.get("id") == offer_id:
            found = offer.get("pass_thru_url")
            return str(found) if found else None
    return None


def signed_url(
    app_secret: str,
    base_url: str,
    *,
    session_id: str,
    outcome: str,
    subscription_id: str,
    offer_id: str | None,
    now: datetime,
    expiry_minutes: int,
) -> str:
    stamp = int(now.timestamp())
    token = signed.sign(
        app_secret,
        {
            "session_id": session_id,
            "outcome": outcome,
            "subscription_id": subscription_id,
            "offer_id": offer_id,
            "timestamp": stamp,
            "expires": stamp + expiry_minutes * 60,
        },
    )
    return add_token(base_url, token)


def destination_for(
    cs: CancelSession,
    app: App,
    flow_settings: CancelFlowSettings,
    encryptor: Encryptor,
    default_url: str,
    now: datetime,
) -> str:
    """Where the subscriber goes after the outcome: the pass-thru URL if one is set."""
    offers = cs.flow.get("offers") or []
    target = pass_thru_target(
        cs.outcome or "",
        cs.offer_accepted_id,
        [o for o in offers if isinstance(o, Mapping)],
        flow_settings.cancel_pass_thru_url,
    )
    if not target:
        return default_url
    return signed_url(
        apps_service.app_secret(encryptor, app),
        target,
        session_id=cs.session_id,
        outcome=cs.outcome or "",
        subscription_id=cs.subscription_id,
        offer_id=cs.offer_accepted_id if cs.outcome != CANCELED else None,
        now=now,
        expiry_minutes=flow_settings.pass_thru_expiry_minutes,
    )
