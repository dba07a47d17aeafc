"""Fault injection, latency and an optional global rate limit (the reliability tests' tools).

A rule matches requests by method and path (``fnmatch`` pattern) and does one thing to them:
``error`` (answer ``status``: 500 is Stripe's api_error, 429 its rate_limit error, any other
status an api_error with that code), ``hang`` (hold the request ``seconds``, then drop it),
``drop`` (close the connection without answering) or ``latency`` (wait ``seconds`` first).
With ``after=True`` the request runs first and its answer is lost (error or drop): the case an
Idempotency-Key exists for. ``times`` bounds how many requests a rule hits; ``rate`` makes it
hit a random fraction of matching requests (seeded, so runs repeat). ``retry_after`` adds a
``Retry-After`` header to an error answer (the SDK waits that long before its retry).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("error", "hang", "drop", "latency")


@dataclass
class Rule:
    kind: str
    status: int = 500
    seconds: float = 30.0
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    rate: float | None = None
    after: bool = False
    retry_after: float | None = None  # error faults: a Retry-After header (seconds)
    id: int = 0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Faults:
    rules: list[Rule] = field(default_factory=list)
    latency: float = 0.0
    rate_limit: float | None = None  # requests per second, all keys together
    _next_id: int = 1
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _bucket: float = 0.0
    _bucket_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **spec: Any) -> Rule:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        allowed = {
            "kind",
            "status",
            "seconds",
            "method",
            "path",
            "times",
            "rate",
            "after",
            "retry_after",
        }
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        rule = Rule(**spec)
        if rule.rate is not None and not 0 <= rule.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if rule.times is not None and rule.times < 1:
            raise ValueError("times must be at least 1")
        if not 0 <= rule.seconds <= 600:
            raise ValueError("seconds must be between 0 and 600")
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules = []
            self.latency = 0.0
            self.rate_limit = None

    def seed(self, seed: int) -> None:
        self._rng.seed(seed)

    def pick(self, method: str, path: str) -> list[Rule]:
        """The rules that hit this request (counting the hit)."""
        if not self.rules:
            return []
        hit: list[Rule] = []
        with self._lock:
            for rule in list(self.rules):
                if not rule.matches(method, path):
                    continue
                if rule.rate is not None and self._rng.random() >= rule.rate:
                    continue
                rule.hits += 1
                if rule.times is not None and rule.hits >= rule.times:
                    self.rules.remove(rule)
                hit.append(rule)
        return hit

    def allow(self) -> bool:
        """Token bucket for the optional global rate limit."""
        limit = self.rate_limit
        if limit is None:
            return True
        with self._lock:
            now = time.monotonic()
            self._bucket = min(limit, self._bucket + (now - self._bucket_at) * limit)
            self._bucket_at = now
            if self._bucket >= 1:
                self._bucket -= 1
                return True
            return False

    def set_rate_limit(self, per_second: float | None) -> None:
        with self._lock:
            self.rate_limit = per_second
            self._bucket = per_second or 0.0
            self._bucket_at = time.monotonic()

    def describe(self) -> dict[str, Any]:
        return {
            "rules": [r.as_dict() for r in self.rules],
            "latency_ms": round(self.latency * 1000),
            "rate_limit": self.rate_limit,
        }
