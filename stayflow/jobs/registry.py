"""Job handlers, registered by dotted name (``webhooks.deliver``), and periodic schedules."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from stayflow.jobs.worker import ClaimedJob, JobContext

Handler = Callable[["JobContext"], None]
# Called once when a job goes dead, with the session factory, the job and the last error.
DeadHook = Callable[["sessionmaker[Session]", "ClaimedJob", str], None]

# Modules whose import registers handlers; each domain adds its own ``tasks`` module here.
HANDLER_MODULES: list[str] = [
    "stayflow.jobs.tasks",
    "stayflow.cancel_sessions.tasks",
    "stayflow.mirror.tasks",
    "stayflow.billing.actions.tasks",
    "stayflow.attribution.tasks",
    "stayflow.webhooks.tasks",
    "stayflow.reports.tasks",
]


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    func: Handler
    max_attempts: int | None = None
    backoff_base: float = 2.0
    backoff_max: float = 3600.0
    on_dead: DeadHook | None = None
    # Run in the worker's lane: each job on its own thread, claimed apart from other jobs
    # (for handlers that wait on someone else's server, such as webhook deliveries).
    lane: bool = False


@dataclass(frozen=True)
class Schedule:
    name: str
    handler: str
    interval_seconds: float
    payload: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self) -> None:
        self.handlers: dict[str, HandlerSpec] = {}
        self.schedules: dict[str, Schedule] = {}

    def handler(
        self,
        name: str,
        *,
        max_attempts: int | None = None,
        backoff_base: float = 2.0,
        backoff_max: float = 3600.0,
        on_dead: DeadHook | None = None,
        lane: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self.handlers[name] = HandlerSpec(
                name, func, max_attempts, backoff_base, backoff_max, on_dead, lane
            )
            return func

        return register

    def schedule(
        self, name: str, handler: str, every_seconds: float, payload: dict[str, Any] | None = None
    ) -> None:
        if every_seconds <= 0:
            raise ValueError("a schedule's interval must be positive")
        self.schedules[name] = Schedule(name, handler, every_seconds, payload or {})

    def get(self, name: str) -> HandlerSpec | None:
        return self.handlers.get(name)

    def lane_names(self) -> frozenset[str]:
        return frozenset(name for name, spec in self.handlers.items() if spec.lane)


registry = Registry()
_loaded: set[str] = set()


def load_handlers(extra_modules: Sequence[str] = ()) -> Registry:
    """Import every module that registers handlers (each once).

    ``extra_modules`` are plugins named by STAYFLOW_JOB_MODULES (comma-separated).
    """
    for module in [*HANDLER_MODULES, *extra_modules]:
        if module not in _loaded:
            importlib.import_module(module)
            _loaded.add(module)
    return registry
