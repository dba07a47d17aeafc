"""``/_sandbox/...``: the routes tests use to steer the sandbox (JSON in, JSON out).

- ``GET /_sandbox/health``, ``GET /_sandbox/clock``: ``{"now": ts}``
- ``POST /_sandbox/clock`` ``{"advance": seconds}`` or ``{"to": ts}``: moves the clock and runs
  what falls due (renewals, trial ends, resumes, period-end cancels)
- ``POST /_sandbox/reset``: forgets every object, key, event and fault
- ``POST /_sandbox/restricted_keys`` ``{"permissions": {"subscriptions": "read", ...}}``:
  ``{"key": "rk_test_..."}``
- ``POST /_sandbox/webhooks`` ``{"url", "events"?, "secret"?}``: ``{"id", "secret"}``
- ``GET /_sandbox/webhook_deliveries``: delivery attempts, newest last
- ``POST /_sandbox/faults`` a rule (see ``faults.py``): ``{"id": n}``;
  ``GET`` / ``DELETE /_sandbox/faults`` lists / clears rules, latency and rate limit
- ``POST /_sandbox/latency`` ``{"ms": n}``; ``POST /_sandbox/rate_limit`` ``{"per_second": n}``
- ``POST /_sandbox/config`` ``{"secret_keys"?, "webhook_retry_delays"?, "seed"?}``
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stayflow.sandbox.errors import StripeError, invalid
from stayflow.sandbox.events import add_webhook_endpoint

if TYPE_CHECKING:
    from stayflow.sandbox.api import App


def handle(app: App, method: str, path: str, query: str, body: bytes) -> dict[str, Any]:
    em = app.em
    data: dict[str, Any] = json.loads(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    route = (method, path.rstrip("/"))
    if route == ("GET", "/_sandbox/health"):
        return {"ok": True, "now": em.now()}
    if route == ("GET", "/_sandbox/clock"):
        return {"now": em.now()}
    if route == ("POST", "/_sandbox/clock"):
        if "to" in data:
            target = int(data["to"])
            seconds = target - em.now()
            if seconds < 0:
                raise invalid("The sandbox clock only moves forward.", param="to")
        else:
            seconds = int(data.get("advance", 0))
        now = em.advance_clock(seconds)
        return {"now": now}
    if route == ("POST", "/_sandbox/reset"):
        em.reset()
        app.faults.clear()
        return {"ok": True}
    if route == ("POST", "/_sandbox/restricted_keys"):
        permissions = data.get("permissions")
        if not isinstance(permissions, dict):
            raise invalid("permissions must be an object", param="permissions")
        return {"key": em.create_restricted_key(permissions)}
    if route == ("POST", "/_sandbox/webhooks"):
        events = data.get("events") or ["*"]
        with em.lock:
            endpoint = add_webhook_endpoint(
                em, str(data.get("url", "")), list(events), secret=data.get("secret")
            )
        return {"id": endpoint["id"], "secret": endpoint["_secret"]}
    if route == ("GET", "/_sandbox/webhook_deliveries"):
        with em.lock:
            return {"data": [d.as_dict() for d in em.state.deliveries]}
    if route == ("POST", "/_sandbox/faults"):
        try:
            rule = app.faults.add(**data)
        except (TypeError, ValueError) as exc:
            raise invalid(str(exc)) from None
        return {"id": rule.id}
    if route == ("GET", "/_sandbox/faults"):
        return app.faults.describe()
    if route == ("DELETE", "/_sandbox/faults"):
        app.faults.clear()
        return {"ok": True}
    if route == ("POST", "/_sandbox/latency"):
        ms = float(data.get("ms", 0))
        if not 0 <= ms <= 60_000:
            raise invalid("ms must be between 0 and 60000", param="ms")
        app.faults.latency = ms / 1000
        return {"latency_ms": ms}
    if route == ("POST", "/_sandbox/rate_limit"):
        per_second = data.get("per_second")
        if per_second is not None and float(per_second) <= 0:
            raise invalid("per_second must be positive or null", param="per_second")
        app.faults.set_rate_limit(None if per_second is None else float(per_second))
        return {"rate_limit": app.faults.rate_limit}
    if route == ("POST", "/_sandbox/config"):
        with em.lock:
            if "secret_keys" in data:
                keys = data["secret_keys"]
                em.settings.secret_keys = None if keys is None else set(keys)
            if "webhook_retry_delays" in data:
                em.settings.webhook_retry_delays = tuple(
                    float(x) for x in data["webhook_retry_delays"]
                )
            if "seed" in data:
                app.faults.seed(int(data["seed"]))
        return {"ok": True}
    raise StripeError(404, f"Unrecognized sandbox route ({method}: {path}).")
