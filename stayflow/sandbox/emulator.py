"""The sandbox's state and the machinery shared by every resource: ids, the clock, events,
rendering with ``expand``, the schedule of time-driven transitions, keys and idempotency."""

from __future__ import annotations

import base64
import heapq
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stayflow.sandbox.errors import StripeError, invalid
from stayflow.sandbox.store import Clock, Ids, Obj, Table

API_VERSION = "2026-10-28.endive"

# Field name -> table whose object an id in that field names (what ``expand`` can resolve).
EXPANDABLE: dict[str, str] = {
    "customer": "customers",
    "product": "products",
    "latest_invoice": "invoices",
    "invoice": "invoices",
    "subscription": "subscriptions",
    "discounts": "discounts",
    "default_payment_method": "payment_methods",
    "payment_method": "payment_methods",
    "promotion_code": "promotion_codes",
    "coupon": "coupons",
    "default_price": "prices",
}

MAX_EXPAND_DEPTH = 4

# Restricted-key resources and the Stripe permission names their errors mention.
RESOURCES: dict[str, str] = {
    "account": "account",
    "customers": "customer",
    "subscriptions": "subscription",
    "products": "product",
    "prices": "price",
    "plans": "plan",
    "coupons": "coupon",
    "promotion_codes": "promotion_code",
    "events": "event",
    "webhook_endpoints": "webhook",
    "invoices": "invoice",
    "payment_methods": "payment_method",
    "test_clocks": "test_clock",
}
LEVELS = ("none", "read", "write")


@dataclass
class Ctx:
    """One API request being executed; its events are kept only if it succeeds."""

    request_id: str
    idempotency_key: str | None = None
    automatic: bool = False
    api_version: str | None = None  # the request's Stripe-Version header, if any
    events: list[Obj] = field(default_factory=list)


@dataclass
class Delivery:
    event_id: str
    endpoint_id: str
    url: str
    attempts: int = 0
    status: str = "pending"  # pending | delivered | failed
    last_status_code: int | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event_id,
            "endpoint": self.endpoint_id,
            "url": self.url,
            "attempts": self.attempts,
            "status": self.status,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
        }


@dataclass
class Settings:
    """Sandbox behaviour a test may change (see ``POST /_sandbox/config``)."""

    secret_keys: set[str] | None = None  # None: any sk_test_ key is accepted
    webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    webhook_timeout: float = 10.0
    incomplete_expires_after: int = 23 * 3600


@dataclass
class IdempotentResult:
    fingerprint: str
    status: int
    body: bytes
    stored_at: float
    in_flight: bool = False


TABLES = (
    "customers",
    "payment_methods",
    "products",
    "prices",
    "coupons",
    "promotion_codes",
    "discounts",
    "subscriptions",
    "invoices",
    "invoiceitems",
    "events",
    "webhook_endpoints",
    "test_clocks",
)


class State:
    """Everything ``reset()`` throws away."""

    def __init__(self, seed: int | None = None) -> None:
        self.ids = Ids(seed)
        self.seq = 0
        self.tables: dict[str, Table] = {name: Table(name[:-1]) for name in TABLES}
        self.tables["payment_methods"].kind = "PaymentMethod"
        self.tables["prices"].kind = "price"
        self.tables["invoiceitems"].kind = "invoiceitem"
        self.tables["promotion_codes"].kind = "promotion code"
        self.tables["webhook_endpoints"].kind = "webhook endpoint"
        self.tables["test_clocks"].kind = "test_helpers.test_clock"
        # Subscriptions of customers on a test clock fall due on that clock, not on the
        # sandbox's own: one heap per clock, run only when the clock is advanced.
        self.clock_due: dict[str, list[tuple[int, int, str]]] = {}
        self.restricted_keys: dict[str, dict[str, str]] = {}
        self.idempotency: dict[tuple[str, str], IdempotentResult] = {}
        self.due: list[tuple[int, int, str]] = []  # (when, seq, subscription id)
        self.due_at: dict[str, int] = {}
        self.outbox: list[Obj] = []
        self.deliveries: deque[Delivery] = deque(maxlen=2000)
        self.account_id = self.ids.new("acct", 16)
        self.deleted_customers: set[str] = set()
        self.promo_codes: dict[str, str] = {}  # lower-cased code -> promotion code id
        self.retired_prices: dict[str, Obj] = {}  # deleted plans still named by old items

    def __setstate__(self, data: dict[str, Any]) -> None:
        # A state file written before test clocks existed.
        self.__dict__.update(data)
        self.__dict__.setdefault("clock_due", {})
        if "test_clocks" not in self.tables:
            self.tables["test_clocks"] = Table("test_clock")
            self.tables["test_clocks"].kind = "test_helpers.test_clock"

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class Emulator:
    """The sandbox's Stripe account. Every public method runs under ``self.lock``."""

    def __init__(self, settings: Settings | None = None, seed: int | None = None) -> None:
        self.settings = settings or Settings()
        self.clock = Clock()
        self.state = State(seed)
        self.lock = threading.RLock()
        self.now_override: int | None = None

    # -- basics ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to a fresh sandbox: no objects, real time, default settings."""
        with self.lock:
            self.state = State()
            self.clock = Clock()
            self.settings = Settings()

    @property
    def t(self) -> dict[str, Table]:
        return self.state.tables

    def now(self) -> int:
        if self.now_override is not None:
            return self.now_override
        return self.clock.now()

    def new_id(self, prefix: str, length: int = 24) -> str:
        return self.state.ids.new(prefix, length)

    def insert(self, table: str, obj: Obj) -> Obj:
        return self.t[table].insert(obj, self.state.next_seq())

    # -- rendering ------------------------------------------------------------------------------

    def render(self, table: str, obj: Obj) -> Obj:
        if table == "events":
            return self.render_event(obj)
        renderer = self.renderers.get(table)
        if renderer is not None:
            return renderer(self, obj)
        return {k: v for k, v in obj.items() if k[0] != "_"}

    renderers: dict[str, Callable[[Emulator, Obj], Obj]] = {}

    @staticmethod
    def render_event(meta: Obj) -> Obj:
        event: Obj = json.loads(zlib.decompress(meta["_json"]))
        event["pending_webhooks"] = meta["pending_webhooks"]
        return event

    def resolve(self, field_name: str, object_id: str) -> Obj:
        table = EXPANDABLE[field_name]
        obj = self.t[table].get(object_id, field_name)
        return self.render(table, obj)

    def expand(self, obj: Obj, paths: list[str] | None) -> Obj:
        if not paths:
            return obj
        for path in paths:
            parts = path.split(".")
            if len(parts) > MAX_EXPAND_DEPTH:
                raise invalid(
                    f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. "
                    f"Property: {path}",
                    param="expand",
                )
            obj = self._expand_obj(obj, parts, path)
        return obj

    def _expand_obj(self, obj: Obj, parts: list[str], path: str) -> Obj:
        name, rest = parts[0], parts[1:]
        if name not in obj:
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        new = dict(obj)
        new[name] = self._expand_value(name, obj[name], rest, path)
        return new

    def _expand_value(self, name: str, value: Any, rest: list[str], path: str) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [self._expand_value(name, v, rest, path) for v in value]
        if isinstance(value, str):
            if name not in EXPANDABLE:
                raise invalid(f"This property cannot be expanded ({path}).", param="expand")
            value = self.resolve(name, value)
        elif isinstance(value, dict):
            if value.get("object") == "list" and rest and rest[0] == "data":
                new = dict(value)
                if rest[1:]:
                    new["data"] = [self._expand_obj(e, rest[1:], path) for e in value["data"]]
                return new
            if not rest and name not in EXPANDABLE:
                raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        else:
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        if rest:
            return self._expand_obj(value, rest, path)
        return value

    @staticmethod
    def list_object(url: str, data: list[Obj], has_more: bool) -> Obj:
        return {"object": "list", "data": data, "has_more": has_more, "url": url}

    # -- events ---------------------------------------------------------------------------------

    def emit(
        self,
        ctx: Ctx,
        event_type: str,
        obj: Obj,
        previous: Obj | None = None,
    ) -> Obj:
        data: Obj = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        endpoints = [
            we
            for we in self.t["webhook_endpoints"].objects.values()
            if we["status"] == "enabled" and _wants(we["enabled_events"], event_type)
        ]
        event: Obj = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(endpoints),
            "request": {
                "id": None if ctx.automatic else ctx.request_id,
                "idempotency_key": ctx.idempotency_key,
            },
            "type": event_type,
        }
        # Kept as compressed JSON: a snapshot later changes cannot reach, in a twentieth of the
        # memory of the same event as dicts (the store holds every event of the instance).
        meta: Obj = {
            "id": event["id"],
            "type": event_type,
            "created": event["created"],
            "pending_webhooks": event["pending_webhooks"],
            "_json": zlib.compress(json.dumps(event, separators=(",", ":")).encode(), 1),
        }
        ctx.events.append(meta)
        return meta

    def commit(self, ctx: Ctx) -> None:
        """Store the events of a request that succeeded and queue their webhooks."""
        events = self.t["events"]
        for event in ctx.events:
            self.insert("events", event)
            event_type = event["type"]
            parts = event_type.split(".")
            for i in range(1, len(parts)):
                events.index("prefix", ".".join(parts[:i]), event["id"])
            events.index("type", event_type, event["id"])
            if event["pending_webhooks"]:
                self.state.outbox.append(event)
        ctx.events = []

    def webhooks_in_flight(self) -> int:
        """Events not yet handed to their endpoints, and deliveries whose first answer is awaited.

        A delivery that got an answer (or an error) and waits to retry is not counted: its
        receiver has already seen the attempt.
        """
        with self.lock:
            waiting = len(self.state.outbox)
            return waiting + sum(
                1
                for d in self.state.deliveries
                if d.status == "pending" and d.last_status_code is None and d.last_error is None
            )

    def take_outbox(self) -> list[tuple[Obj, list[Obj]]]:
        """Events to deliver now, each with the endpoints that want it."""
        with self.lock:
            out = self.state.outbox
            if not out:
                return []
            self.state.outbox = []
            endpoints = list(self.t["webhook_endpoints"].objects.values())
            return [
                (
                    event,
                    [
                        we
                        for we in endpoints
                        if we["status"] == "enabled" and _wants(we["enabled_events"], event["type"])
                    ],
                )
                for event in out
            ]

    def webhook_delivered(self, event_id: str) -> None:
        with self.lock:
            event = self.t["events"].find(event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    # -- time-driven transitions ---------------------------------------------------------------

    def clock_time(self, clock_id: str | None) -> int | None:
        """The frozen time of a test clock (None: the sandbox's own clock)."""
        if clock_id is None:
            return None
        clock = self.t["test_clocks"].find(clock_id)
        return None if clock is None else int(clock["frozen_time"])

    def schedule(self, sub_id: str, when: int | None) -> None:
        if when is None:
            self.state.due_at.pop(sub_id, None)
            return
        if self.state.due_at.get(sub_id) == when:
            return
        self.state.due_at[sub_id] = when
        sub = self.t["subscriptions"].find(sub_id)
        clock_id = None if sub is None else sub.get("test_clock")
        heap = self.state.due if clock_id is None else self.state.clock_due.setdefault(clock_id, [])
        heapq.heappush(heap, (when, self.state.next_seq(), sub_id))

    def run_due(self, clock_id: str | None = None, until: int | None = None) -> int:
        """Run every transition due by ``until`` (default: now) on the sandbox's clock or on a
        test clock, in time order, each at its own moment. Returns how many ran."""
        from stayflow.sandbox import lifecycle

        ran = 0
        due = self.state.due if clock_id is None else self.state.clock_due.get(clock_id, [])
        now = self.clock.now() if until is None else until
        outer = self.now_override
        while due and due[0][0] <= now and ran < 1_000_000:
            when, _, sub_id = heapq.heappop(due)
            if self.state.due_at.get(sub_id) != when:
                continue  # superseded
            del self.state.due_at[sub_id]
            self.now_override = when
            ctx = Ctx(request_id="", automatic=True)
            try:
                lifecycle.on_due(self, ctx, sub_id, when)
                self.commit(ctx)
            finally:
                self.now_override = outer
            ran += 1
        return ran

    def advance_clock(self, seconds: int) -> int:
        with self.lock:
            if seconds < 0:
                raise invalid("The sandbox clock only moves forward.", param="seconds")
            self.clock.advance(seconds)
            self.run_due()
            return self.clock.now()

    # -- keys -----------------------------------------------------------------------------------

    def create_restricted_key(self, permissions: dict[str, str]) -> str:
        with self.lock:
            clean: dict[str, str] = {}
            for resource, level in permissions.items():
                if resource not in RESOURCES:
                    raise invalid(
                        f"Unknown resource {resource!r}; one of {', '.join(sorted(RESOURCES))}",
                        param="permissions",
                    )
                if level not in LEVELS:
                    raise invalid(f"Invalid level {level!r} (none, read, write)", param=resource)
                clean[resource] = level
            if "prices" in clean and "plans" not in clean:
                clean["plans"] = clean["prices"]
            key = "rk_test_" + self.state.ids.token(40)
            self.state.restricted_keys[key] = clean
            return key

    def authenticate(self, authorization: str | None, resource: str | None, write: bool) -> str:
        """The key's id for idempotency scoping; raises Stripe's 401 / 403."""
        if not authorization:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() == "basic" and key:
            # Stripe also takes the key as the Basic user name (`curl -u sk_test_...:`).
            try:
                key = base64.b64decode(key.strip(), validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if not key:
            raise StripeError(401, "Invalid API Key provided: " + _redact(authorization))
        key = key.strip()
        if key.startswith("sk_test_"):
            allowed = self.settings.secret_keys
            if allowed is None or key in allowed:
                return key
        elif key.startswith("rk_test_"):
            perms = self.state.restricted_keys.get(key)
            if perms is not None:
                if resource is not None:
                    level = perms.get(resource, "none")
                    if level == "none" or (write and level != "write"):
                        need = f"rak_{RESOURCES[resource]}_{'write' if write else 'read'}"
                        raise StripeError(
                            403,
                            f"The provided key '{_redact(key)}' does not have the required "
                            f"permissions for this endpoint on account "
                            f"'{self.state.account_id}'. Having the '{need}' permission would "
                            "allow this request to continue.",
                        )
                return key
        raise StripeError(401, f"Invalid API Key provided: {_redact(key)}")

    # -- idempotency ----------------------------------------------------------------------------

    def idempotency_lookup(
        self, api_key: str, key: str, fingerprint: str
    ) -> IdempotentResult | None:
        if len(key) > 255:
            raise invalid(
                "Idempotency keys may be at most 255 characters long.", param="Idempotency-Key"
            )
        record = self.state.idempotency.get((api_key, key))
        if record is None:
            return None
        if time.time() - record.stored_at > 24 * 3600:
            del self.state.idempotency[(api_key, key)]
            return None
        if record.fingerprint != fingerprint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            )
        if record.in_flight:
            raise StripeError(
                409,
                "There is currently another in-progress request using this Stripe-Idempotency"
                "-Key (that probably means you submitted twice, and the other request is still "
                "going through): " + key + ". Please try again later.",
                type="idempotency_error",
                headers={"Stripe-Should-Retry": "true"},
            )
        return record


def _wants(enabled: list[str], event_type: str) -> bool:
    for pattern in enabled:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _redact(key: str) -> str:
    if len(key) <= 12:
        return "*" * len(key)
    prefix = key[:8]
    return prefix + "*" * (len(key) - 12) + key[-4:]
