"""Webhook endpoints and the event log."""

from __future__ import annotations

from typing import Any

from stayflow.sandbox.common import (
    EXPAND,
    LIST,
    blank,
    deleted,
    list_page,
    merge_metadata,
    ts_match,
)
from stayflow.sandbox.emulator import Ctx, Emulator
from stayflow.sandbox.errors import invalid, missing_param
from stayflow.sandbox.params import (
    Emptyable,
    ListOf,
    Params,
    Required,
    parse_ts_list_filter,
)
from stayflow.sandbox.store import Obj

# -- webhook endpoints and events -----------------------------------------------------------

WE_CREATE: dict[str, Any] = {
    "url": Required("str"),
    "enabled_events": Required(ListOf("str")),
    "description": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    "api_version": "str",
    **EXPAND,
}
WE_UPDATE: dict[str, Any] = {
    "url": "str",
    "enabled_events": ListOf("str"),
    "description": Emptyable("str"),
    "metadata": Emptyable("metadata"),
    "disabled": "bool",
    **EXPAND,
}


def _check_url(url: str) -> None:
    if not (url.startswith("http://") or url.startswith("https://")):
        raise invalid("Invalid URL: URL must be publicly accessible and use http(s).", param="url")


def add_webhook_endpoint(
    em: Emulator,
    url: str,
    events: list[str],
    *,
    secret: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    _check_url(url)
    if not events:
        raise missing_param("enabled_events")
    endpoint: Obj = {
        "id": em.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": em.now(),
        "description": description,
        "enabled_events": events,
        "livemode": False,
        "metadata": metadata or {},
        "status": "enabled",
        "url": url,
        "_secret": secret or "whsec_" + em.state.ids.token(32),
    }
    em.insert("webhook_endpoints", endpoint)
    return endpoint


def webhook_endpoint_create(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    endpoint = add_webhook_endpoint(
        em,
        p["url"],
        p["enabled_events"],
        description=blank(p.get("description")),
        metadata=blank(p.get("metadata")) or {},
    )
    endpoint["api_version"] = p.get("api_version")
    # Stripe shows the signing secret only in the answer to the create call.
    return {**em.render("webhook_endpoints", endpoint), "secret": endpoint["_secret"]}


def webhook_endpoint_retrieve(em: Emulator, ctx: Ctx, p: Params, we_id: str) -> Obj:
    return em.render("webhook_endpoints", em.t["webhook_endpoints"].get(we_id))


def webhook_endpoint_update(em: Emulator, ctx: Ctx, p: Params, we_id: str) -> Obj:
    endpoint = em.t["webhook_endpoints"].get(we_id)
    if "url" in p:
        _check_url(p["url"])
        endpoint["url"] = p["url"]
    if "enabled_events" in p:
        endpoint["enabled_events"] = p["enabled_events"]
    if "description" in p:
        endpoint["description"] = blank(p["description"])
    if "metadata" in p:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], p["metadata"])
    if "disabled" in p:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    return em.render("webhook_endpoints", endpoint)


def webhook_endpoint_delete(em: Emulator, ctx: Ctx, p: Params, we_id: str) -> Obj:
    em.t["webhook_endpoints"].get(we_id)
    em.t["webhook_endpoints"].delete(we_id)
    return deleted(we_id, "webhook_endpoint")


def webhook_endpoint_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    return list_page(em, "webhook_endpoints", "/v1/webhook_endpoints", p)


EVENT_LIST = {
    **LIST,
    "type": "str",
    "types": ListOf("str", 20),
    "created": "any",
    "delivery_success": "bool",
}


def event_retrieve(em: Emulator, ctx: Ctx, p: Params, event_id: str) -> Obj:
    return em.render("events", em.t["events"].get(event_id))


def event_list(em: Emulator, ctx: Ctx, p: Params) -> Obj:
    if "type" in p and "types" in p:
        raise invalid("You may pass either `type` or `types`, but not both.", param="types")
    created = parse_ts_list_filter(p["created"], "created") if "created" in p else None
    index: str | None = None
    key: str | None = None
    exact: set[str] | None = None
    prefixes: tuple[str, ...] = ()
    patterns = [p["type"]] if "type" in p else p.get("types", [])
    for pattern in patterns:
        if "*" in pattern and not pattern.endswith(".*"):
            raise invalid(f"Invalid type: {pattern}", param="type")
    if len(patterns) == 1:
        pattern = patterns[0]
        index, key = ("prefix", pattern[:-2]) if pattern.endswith(".*") else ("type", pattern)
    elif patterns:
        exact = {t for t in patterns if not t.endswith(".*")}
        prefixes = tuple(t[:-1] for t in patterns if t.endswith(".*"))
    delivery = p.get("delivery_success")

    def pred(e: Obj) -> bool:
        if exact is not None and e["type"] not in exact and not e["type"].startswith(prefixes):
            return False
        if created is not None and not ts_match(e["created"], created):
            return False
        if delivery is not None and (e["pending_webhooks"] == 0) != delivery:
            return False
        return True

    return list_page(em, "events", "/v1/events", p, pred, index=index, key=key)
