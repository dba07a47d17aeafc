"""Starting, seeding and stopping the demo (threads in one process)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from stayflow.demo import state as demo_state
from stayflow.demo.catalog import PLAN_BY_ID, SECRET_KEY, SandboxApi
from stayflow.demo.history import DAY, DAYS, Target, play
from stayflow.demo.site import Site
from stayflow.demo.state import DemoState, SiteCustomer

log = logging.getLogger("stayflow.demo")

ADMIN_EMAIL = "demo@example.com"
# The business site's subscribers: one per kind of plan the demo sells.
SITE_CUSTOMERS = (
    ("Ada Lovelace", "ada@example.com", "pro_monthly", 0),
    ("Grace Hopper", "grace@example.com", "pro_yearly", 0),
    ("Alan Turing", "alan@example.com", "pro_monthly", 14),
    ("Katherine Johnson", "katherine@example.com", "team_monthly", 0),
    ("Yukihiro Matsumoto", "matz@example.com", "pro_monthly_jpy", 0),
)


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


def sandbox_clock(emulator: Any) -> Callable[[], datetime]:
    """The sandbox's movable clock, read in this process (sub-second, unlike its API)."""

    def now() -> datetime:
        clock = emulator.clock
        ts = clock.frozen_at if clock.frozen_at is not None else time.time() + clock.offset
        return datetime.fromtimestamp(ts, UTC)

    return now


class Demo:
    def __init__(
        self, folder: Path, port: int, site_port: int, sandbox_port: int, *, days: int = DAYS
    ) -> None:
        self.folder = folder
        self.days = days
        self.stop_event = threading.Event()
        self.state = DemoState(port=port, site_port=site_port, sandbox_port=sandbox_port)
        self.day = 0
        self.history_error: str | None = None
        self._threads: list[threading.Thread] = []
        self._sandbox: Any = None
        self._server: Any = None
        self._site: Site | None = None
        self.first_start = False

    # -- start ------------------------------------------------------------------------------

    def start(self, *, reset: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if reset:
            demo_state.reset(self.folder)
        kept = demo_state.load(self.folder)
        if kept is not None:
            wanted = (self.state.port, self.state.site_port, self.state.sandbox_port)
            if (kept.port, kept.site_port, kept.sandbox_port) != wanted:
                raise DemoError(
                    f"the demo in {self.folder} runs on ports {kept.port}, {kept.site_port} and "
                    f"{kept.sandbox_port} (its webhooks and allowed origins name them): start it "
                    f"with --port {kept.port}, or pass --reset to start a new demo"
                )
            self.state = kept
        self.first_start = not self.state.seeded
        self._start_sandbox()
        settings = self._settings()
        self._start_stayflow(settings)
        if not self.state.seeded:
            self._seed(settings)
        self._site = Site(lambda: self.state, self.progress)
        try:
            self._site.start(self.state.site_port)
        except OSError as exc:
            self._site = None
            raise DemoError(f"cannot serve the site on port {self.state.site_port}: {exc}") from exc
        if not self.state.history_done:
            self._spawn(self._history, "stayflow-demo-history")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_sandbox(self) -> None:
        from stayflow.db import set_clock
        from stayflow.sandbox.runner import Sandbox

        path = self.folder / demo_state.SANDBOX_FILE
        fresh = not path.exists()
        try:
            self._sandbox = Sandbox.start(self.state.sandbox_port, state_file=path)
        except OSError as exc:
            raise DemoError(
                f"cannot serve the sandbox on port {self.state.sandbox_port}: {exc}"
            ) from exc
        emulator = self._sandbox.app.em
        if fresh:
            # The history starts 90 days ago and ends now: the clock runs from there.
            emulator.clock.offset = -self.days * DAY
            start = emulator.now()
            self.state.history_start, self.state.history_end = start, start + self.days * DAY
        set_clock(sandbox_clock(emulator))

    def _settings(self) -> Any:
        from stayflow.settings import load_settings

        return load_settings(
            database_url=f"sqlite:///{self.folder / demo_state.DATABASE_FILE}",
            base_url=self.state.stayflow_url,
            stripe_api_base=self.state.sandbox_url,
            log_level="WARNING",
            log_json=False,
        ).ensure_secret_key()

    def _start_stayflow(self, settings: Any) -> None:
        import uvicorn

        from stayflow.app import create_app
        from stayflow.db import make_engine, migrate
        from stayflow.logs import configure_logging

        configure_logging(settings.log_level, settings.log_json)
        engine = make_engine(settings)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        app = create_app(settings, run_worker=True)
        self._factory = app.state.session_factory
        # Attribution's judgement of saves reads this clock too (the sandbox's).
        app.state.services["clock"] = sandbox_clock(self._sandbox.app.em)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.state.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        thread = threading.Thread(target=self._server.run, name="stayflow-demo-web", daemon=True)
        self._web_thread = thread
        thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(f"stayflow did not start on port {self.state.port}")
            time.sleep(0.05)

    def _seed(self, settings: Any) -> None:
        """The demo app, its admin user, its Stripe connection, settings, flows and catalog."""
        from stayflow.admin import service as admin_service
        from stayflow.apps import service as apps_service
        from stayflow.crypto import Encryptor
        from stayflow.db import make_engine, make_session_factory, transaction, utcnow

        sandbox = SandboxApi(self.state.sandbox_url)
        try:
            sandbox.create_catalog()
        finally:
            sandbox.close()
        engine = make_engine(settings)
        password = secrets.token_urlsafe(12)
        try:
            with transaction(make_session_factory(engine)) as db:
                created = apps_service.create_app(db, Encryptor(settings.secret_key), "Demo")
                app_id = created.app.app_id
                secret, api_key = created.app_secret, created.api_key
            with transaction(make_session_factory(engine)) as db:
                admin_service.create_user(
                    db, ADMIN_EMAIL, password, app_id=app_id, role="owner", now=utcnow()
                )
        finally:
            engine.dispose()
        with httpx.Client(
            base_url=self.state.stayflow_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60.0,
        ) as api:
            for method, path, body in (
                ("PUT", "/api/v1/billing/stripe", {"api_key": SECRET_KEY}),
                (
                    "PATCH",
                    "/api/v1/cancel-flow/settings",
                    {"allowed_origins": [self.state.site_url]},
                ),
            ):
                answer = api.request(method, path, json=body)
                if answer.status_code != 200:
                    raise DemoError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        self._apply_flows(settings, app_id)
        self.state.app_id, self.state.app_secret, self.state.api_key = app_id, secret, api_key
        self.state.admin_email, self.state.admin_password = ADMIN_EMAIL, password
        demo_state.save(self.folder, self.state)

    def _apply_flows(self, settings: Any, app_id: str) -> None:
        """The flows file, as `stayflow flows apply` applies it (offers checked with Stripe)."""
        from stayflow.apps.repository import get_app_by_public_id
        from stayflow.billing.actions.validation import offer_check
        from stayflow.crypto import Encryptor
        from stayflow.db import make_engine, make_session_factory, transaction
        from stayflow.flows import fileformat
        from stayflow.flows import service as flows_service

        text = resources.files("stayflow.demo").joinpath("flows.yaml").read_text()
        data = fileformat.parse(text, name="flows.yaml")
        check = offer_check({"settings": settings, "encryptor": Encryptor(settings.secret_key)})
        engine = make_engine(settings)
        try:
            with transaction(make_session_factory(engine)) as db:
                app = get_app_by_public_id(db, app_id)
                assert app is not None
                flows_service.apply(db, app, data, offer_check=check)
        finally:
            engine.dispose()

    # -- history ----------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        return {
            "ready": self.state.history_done,
            "day": self.day,
            "days": (self.state.history_end - self.state.history_start) // DAY,
            "sessions": self.state.sessions_played,
            "error": self.history_error,
        }

    def _history(self) -> None:
        sandbox = SandboxApi(self.state.sandbox_url)
        base = self.state.sessions_played
        target = Target(
            self.state.stayflow_url, self.state.site_url, self.state.app_id, self.state.app_secret
        )

        def progress(day: int, sessions: int) -> None:
            self.day = day
            self.state.history_day = day
            self.state.sessions_played = base + sessions
            demo_state.save(self.folder, self.state)

        try:
            play(
                sandbox,
                target,
                start=self.state.history_start,
                end=self.state.history_end,
                stop=self.stop_event,
                progress=progress,
                settle=self._settle,
                played_through=self.state.history_day,
            )
            if self.stop_event.is_set():
                return
            self.day = (self.state.history_end - self.state.history_start) // DAY
            customers = []
            for name, email, plan, trial in SITE_CUSTOMERS:
                sub = sandbox.subscribe(name, email, plan, trial_days=trial, group="site")
                label = PLAN_BY_ID[plan].label + (f", {trial}-day trial" if trial else "")
                customers.append(SiteCustomer(name, email, label, str(sub["id"])))
            self.state.customers = customers
            self.state.history_done = True
            demo_state.save(self.folder, self.state)
            self._sync_attribution()
            print("The demo's history is ready: the business site's accounts are open.", flush=True)
        except Exception as exc:  # the demo goes on serving; the site and the log say why
            self.history_error = str(exc)
            log.exception("demo.history.failed")
        finally:
            sandbox.close()

    def _settle(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until no job is running or due, so none runs across a clock jump.

        The sandbox's webhooks count too: an event of the last billing action, still on its
        way to stayflow, becomes a job only when it arrives, and that job would otherwise
        start before the jump and finish after it (its lease, read on the moved clock, lost).
        """
        from sqlalchemy import func, or_, select

        from stayflow.db import utcnow
        from stayflow.jobs.models import QUEUED, RUNNING, Job

        deadline = time.monotonic() + timeout
        with self._factory() as db:
            while time.monotonic() < deadline and not self.stop_event.is_set():
                busy = db.scalar(
                    select(func.count(Job.id)).where(
                        or_(
                            Job.status == RUNNING,
                            (Job.status == QUEUED) & (Job.run_at <= utcnow()),
                        )
                    )
                )
                db.rollback()
                if not busy and not self._sandbox.app.em.webhooks_in_flight():
                    return
                time.sleep(0.05)

    def _sync_attribution(self) -> None:
        """Ask the worker for an attribution sync now, not at the next hourly schedule."""
        with httpx.Client(
            base_url=self.state.stayflow_url,
            headers={"Authorization": f"Bearer {self.state.api_key}"},
            timeout=60.0,
        ) as api:
            answer = api.post("/api/v1/attribution/sync")
            if answer.status_code >= 400:
                log.warning("demo.attribution_sync", extra={"answer": answer.text[:300]})

    # -- stop -------------------------------------------------------------------------------

    def wait(self) -> None:
        while not self.stop_event.wait(0.5):
            pass

    def stop(self) -> None:
        from stayflow.db import set_clock

        self.stop_event.set()
        for thread in self._threads:
            thread.join(60)
        if self._site is not None:
            self._site.stop()
        if self._server is not None:
            self._server.should_exit = True
            self._web_thread.join(30)
        if self._sandbox is not None:
            self._sandbox.stop()  # saves its state
        set_clock(None)
        if self.state.seeded:
            demo_state.save(self.folder, self.state)

    def banner(self) -> str:
        s = self.state
        lines = [
            "stayflow demo",
            f"  business site  {s.site_url}/  (click Cancel on an account)",
            f"  admin          {s.stayflow_url}/admin",
        ]
        if self.first_start:
            lines.append(
                f"                 sign in as {s.admin_email}, password {s.admin_password}"
            )
            lines.append("                 (shown once; it is kept in the demo's demo.json)")
        else:
            lines.append(
                f"                 sign in as {s.admin_email}; the password is in demo.json"
            )
        lines += [
            f"  API docs       {s.stayflow_url}/docs  (API key in demo.json)",
            f"  Stripe sandbox {s.sandbox_url}  (any sk_test_ key)",
            f"  state          {self.folder}",
        ]
        if not s.history_done:
            lines.append(
                "Playing 90 days of subscribers in the background; the site shows its progress."
            )
        lines.append("Move the clock: stayflow demo advance --days 30.  Stop: Ctrl-C.")
        return "\n".join(lines)
