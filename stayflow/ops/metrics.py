"""Prometheus metrics, one registry per app instance (tests make many)."""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from stayflow.jobs.models import STATUSES
from stayflow.jobs.service import counts_by_status


class JobsCollector(Collector):
    """Jobs by status, counted at scrape time from the table itself."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("stayflow_jobs", "Jobs by status", labels=["status"])
        try:
            with self.session_factory() as db:
                counts = counts_by_status(db)
        except Exception:
            return
        for status in STATUSES:
            family.add_metric([status], counts.get(status, 0))
        yield family


MAX_CACHED_CHILDREN = 2000
# The route label of a request no route took (refused at the edge, or no such path).
UNMATCHED = "unmatched"


class Metrics:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "stayflow_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stayflow_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(JobsCollector(session_factory))
        # The labelled children, looked up once per (method, route, status): ``labels()``
        # checks and locks on every call, which showed in precancel's profile. Routes are
        # templates (or "unmatched"), so the keys are few.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)


def route_template(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED
