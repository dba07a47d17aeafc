"""Running the sandbox: in a background thread, in a subprocess, or in the foreground (CLI),
and :class:`Sandbox`, the handle tests use to steer it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from stayflow.sandbox.api import App
from stayflow.sandbox.emulator import Emulator, State
from stayflow.sandbox.faults import Faults
from stayflow.sandbox.server import Server, bind, new_loop

if TYPE_CHECKING:
    import stripe

DEFAULT_SECRET_KEY = "sk_test_stayflow_sandbox"  # noqa: S105 - the sandbox takes any sk_test_


def _load_state(emulator: Emulator, path: Path) -> None:
    if path.exists():
        with path.open("rb") as f:
            data = pickle.load(f)  # noqa: S301 - a file this sandbox wrote, on this machine
        emulator.state = data["state"]
        emulator.clock.offset = data["clock_offset"]


def _save_state(emulator: Emulator, path: Path) -> None:
    with emulator.lock:
        blob = pickle.dumps(
            {"state": emulator.state, "clock_offset": emulator.clock.offset},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


async def _serve(
    app: App,
    sock: socket.socket,
    stop: asyncio.Event,
    ready: threading.Event | None,
    state_file: Path | None,
) -> None:
    server = Server(app)
    await server.start(sock)
    if ready is not None:
        ready.set()
    saved_seq = app.em.state.seq
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            if state_file is not None and app.em.state.seq != saved_seq:
                saved_seq = app.em.state.seq
                _save_state(app.em, state_file)
    finally:
        await server.stop()
        if state_file is not None:
            _save_state(app.em, state_file)


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 12111,
    state_file: str | None = None,
    fd: int | None = None,
    announce: bool = True,
) -> None:
    """Serve in the foreground until SIGINT / SIGTERM (the ``stayflow sandbox`` command)."""
    emulator = Emulator()
    path = Path(state_file) if state_file else None
    if path is not None:
        _load_state(emulator, path)
    sock = socket.socket(fileno=fd) if fd is not None else bind(host, port)
    sock.setblocking(False)
    app = App(emulator)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if announce:
        bound = sock.getsockname()
        print(
            f"stayflow sandbox (Stripe API 2026-10-28) on http://{bound[0]}:{bound[1]}",
            file=sys.stderr,
            flush=True,
        )
    try:
        loop.run_until_complete(_serve(app, sock, stop, None, path))
    finally:
        loop.close()


class Sandbox:
    """A running sandbox and the controls tests use.

    ``with Sandbox.start() as sb:`` serves on a free 127.0.0.1 port in a background thread
    (``subprocess=True`` runs it in its own process instead, e.g. for benchmarks). The
    controls talk to the ``/_sandbox/...`` routes over HTTP, so they work the same on a
    sandbox in this process, in a subprocess or started by ``stayflow sandbox`` elsewhere
    (``Sandbox.connect(url)``).
    """

    def __init__(self, url: str, secret_key: str = DEFAULT_SECRET_KEY) -> None:
        self.url = url.rstrip("/")
        self.secret_key = secret_key
        self._http = httpx.Client(base_url=self.url, timeout=30.0)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.app: App | None = None

    # -- starting and stopping ------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        subprocess: bool = False,
        state_file: str | os.PathLike[str] | None = None,
        secret_key: str = DEFAULT_SECRET_KEY,
    ) -> Sandbox:
        sock = bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        url = f"http://{bound_host}:{bound_port}"
        sb = cls(url, secret_key)
        if subprocess:
            sb._start_process(sock, state_file)
        else:
            sb._start_thread(sock, Path(state_file) if state_file else None)
        return sb

    @classmethod
    def connect(cls, url: str, secret_key: str = DEFAULT_SECRET_KEY) -> Sandbox:
        return cls(url, secret_key)

    def _start_thread(self, sock: socket.socket, state_file: Path | None) -> None:
        emulator = Emulator()
        if state_file is not None:
            _load_state(emulator, state_file)
        self.app = App(emulator, Faults())
        ready = threading.Event()
        loop = new_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._stop = asyncio.Event()
            assert self.app is not None
            loop.run_until_complete(_serve(self.app, sock, self._stop, ready, state_file))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"sandbox{self.url}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the sandbox did not start within 10 s")

    def _start_process(
        self, sock: socket.socket, state_file: str | os.PathLike[str] | None
    ) -> None:
        fd = sock.fileno()
        cmd = [sys.executable, "-m", "stayflow.sandbox", "--fd", str(fd), "--quiet"]
        if state_file is not None:
            cmd += ["--state-file", os.fspath(state_file)]
        self._process = subprocess.Popen(cmd, pass_fds=(fd,))  # noqa: S603 - our own module
        sock.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self._http.get("/_sandbox/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the sandbox subprocess did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
        self._http.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------------------------

    def client(self, key: str | None = None, **options: Any) -> stripe.StripeClient:
        """A ``StripeClient`` pointed at this sandbox (``max_network_retries`` etc. pass on)."""
        import stripe

        return stripe.StripeClient(
            key or self.secret_key, base_addresses={"api": self.url}, **options
        )

    # -- controls -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self._http.request(method, path, json=body)
        data = answer.json()
        if answer.status_code != 200:
            raise RuntimeError(f"sandbox {method} {path}: {data}")
        return data

    def health(self) -> bool:
        return bool(self._call("GET", "/_sandbox/health")["ok"])

    def reset(self) -> None:
        """Forget every object, event, key and fault (the clock goes back to real time)."""
        self._call("POST", "/_sandbox/reset")

    def now(self) -> int:
        return int(self._call("GET", "/_sandbox/clock")["now"])

    def advance_clock(self, seconds: int | None = None, *, to: int | None = None) -> int:
        """Move the clock forward and run what falls due (renewals, trial ends, resumes)."""
        if (seconds is None) == (to is None):
            raise ValueError("pass seconds or to=")
        body = {"to": to} if to is not None else {"advance": seconds}
        return int(self._call("POST", "/_sandbox/clock", body)["now"])

    def create_restricted_key(self, permissions: dict[str, str]) -> str:
        """``{"subscriptions": "write", "customers": "read"}`` -> ``rk_test_...``."""
        return str(
            self._call("POST", "/_sandbox/restricted_keys", {"permissions": permissions})["key"]
        )

    def add_webhook(
        self, url: str, events: list[str] | None = None, secret: str | None = None
    ) -> str:
        """Register a webhook endpoint; returns its signing secret."""
        body: dict[str, Any] = {"url": url, "events": events or ["*"]}
        if secret is not None:
            body["secret"] = secret
        return str(self._call("POST", "/_sandbox/webhooks", body)["secret"])

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_sandbox/webhook_deliveries")["data"])

    def inject_fault(
        self,
        kind: str,
        *,
        status: int = 500,
        seconds: float = 30.0,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        rate: float | None = None,
        after: bool = False,
        retry_after: float | None = None,
    ) -> int:
        """Make matching API requests fail: ``error`` (status 500/429/...), ``hang``, ``drop``,
        ``latency``; ``after=True`` runs the request and loses the answer; ``retry_after`` adds
        a ``Retry-After`` header to an error."""
        rule = {
            "kind": kind,
            "status": status,
            "seconds": seconds,
            "method": method,
            "path": path,
            "times": times,
            "rate": rate,
            "after": after,
            "retry_after": retry_after,
        }
        return int(self._call("POST", "/_sandbox/faults", rule)["id"])

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sandbox/faults"))

    def clear_faults(self) -> None:
        """Remove every fault rule, the latency and the rate limit."""
        self._call("DELETE", "/_sandbox/faults")

    def set_latency(self, ms: float) -> None:
        self._call("POST", "/_sandbox/latency", {"ms": ms})

    def set_rate_limit(self, per_second: float | None) -> None:
        """Answer 429 beyond ``per_second`` requests a second (25 mimics test mode)."""
        self._call("POST", "/_sandbox/rate_limit", {"per_second": per_second})

    def configure(self, **settings: Any) -> None:
        """``secret_keys=[...]`` (None: any sk_test_), ``webhook_retry_delays=[...]``, ``seed``."""
        self._call("POST", "/_sandbox/config", settings)

    @contextlib.contextmanager
    def faulty(self, kind: str, **options: Any) -> Iterator[int]:
        """``with sb.faulty("error", status=500): ...`` -- the rule is removed afterwards."""
        rule = self.inject_fault(kind, **options)
        try:
            yield rule
        finally:
            self.clear_faults()


__all__ = ["DEFAULT_SECRET_KEY", "Sandbox", "State", "serve_forever"]
