"""Slack incoming-webhook messages for events: one readable line and its Block Kit form.

    Ada (Pro, $49/mo) accepted 20% off — reason: too expensive

A Slack endpoint is a webhook endpoint of kind ``slack``: the same queue, retries and
delivery log, with this message as the body and no signature headers (Slack ignores them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
ZERO_DECIMAL = frozenset({"jpy", "krw", "vnd", "clp", "isk", "ugx", "xof", "xaf"})


def money(amount: int, currency: str) -> str:
    """Minor units as a short price: ``$49``, ``$49.50``, ``¥4900``, ``49 CHF``."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        number = f"{amount}"
    elif amount % 100 == 0:
        number = f"{amount // 100}"
    else:
        number = f"{amount / 100:.2f}"
    symbol = SYMBOLS.get(code)
    return f"{symbol}{number}" if symbol else f"{number} {code.upper()}"


def _who(data: Mapping[str, Any]) -> str:
    name = data.get("customer_name") or data.get("customer_email") or data.get("customer_id")
    name = name or data.get("subscription_id") or "A subscriber"
    details = []
    if data.get("plan_name"):
        details.append(str(data["plan_name"]))
    mrr = data.get("mrr")
    if isinstance(mrr, Mapping) and isinstance(mrr.get("amount"), int) and mrr.get("currency"):
        details.append(f"{money(mrr['amount'], str(mrr['currency']))}/mo")
    return f"{name} ({', '.join(details)})" if details else str(name)


def _offer_label(offer: Mapping[str, Any]) -> str:
    details = offer.get("details") or {}
    for key in ("headline", "button"):
        if isinstance(details, Mapping) and details.get(key):
            return str(details[key])
    return f"the {offer.get('type') or 'offer'} offer ({offer.get('id')})"


def _reason(data: Mapping[str, Any]) -> str:
    reason = data.get("reason_label") or data.get("reason_id")
    text = f" — reason: {str(reason).lower()}" if reason else ""
    if data.get("comment"):
        text += f" (“{data['comment']}”)"
    return text


def line(event_type: str, data: Mapping[str, Any]) -> str:
    who = _who(data)
    outcome = data.get("outcome")
    if event_type == "session.completed":
        offer = data.get("offer_accepted")
        if outcome in ("saved", "redirected") and isinstance(offer, Mapping):
            text = f"{who} accepted {_offer_label(offer)}{_reason(data)}"
        elif outcome == "canceled":
            text = f"{who} canceled{_reason(data)}"
        elif outcome == "deflected":
            text = f"{who} changed their mind and stayed"
        else:
            text = f"{who}: {outcome}"
        billing = data.get("billing")
        if isinstance(billing, Mapping) and billing.get("status") == "failed":
            text += f" — billing failed: {billing.get('error') or 'unknown error'}"
        return text
    if event_type == "webhook.endpoint.disabled":
        return f"Webhook endpoint {data.get('url')} was disabled ({data.get('reason')})"
    if event_type == "billing.action.failed":
        return f"Billing action {data.get('action')} failed for {data.get('subscription_id')}"
    return f"{event_type} for {data.get('session_id') or data.get('subscription_id') or '-'}"


def message(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The incoming-webhook body: ``text`` (notifications) and the same as blocks."""
    text = line(event_type, data)
    context = [f"`{event_type}`"]
    if data.get("session_id"):
        context.append(f"session `{data['session_id']}`")
    if data.get("subscription_id"):
        context.append(f"subscription `{data['subscription_id']}`")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(text)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


def _escape(text: str) -> str:
    # Slack's mrkdwn needs only these three escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body(event_type: str, data: Mapping[str, Any]) -> bytes:
    return json.dumps(message(event_type, data), ensure_ascii=False).encode()
