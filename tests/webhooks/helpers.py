"""A real webhook receiver on 127.0.0.1 and helpers to drive deliveries."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

# What the receiver answers for one request: (status, headers, body), or HANG.
Answer = tuple[int, dict[str, str], bytes]
HANG = (0, {}, b"hang")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Receiver:
    """Answers each POST with the next planned answer (then 200), and keeps what it got.

    ``pause`` seconds before each answer; ``most_in_flight`` is the most requests it ever
    held open at once.
    """

    plan: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    pause: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    answer = receiver.plan.pop(0) if receiver.plan else (200, {}, b"ok")
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    if answer is HANG:
                        receiver.released.wait(30)
                        return
                    if receiver.pause:
                        receiver.released.wait(receiver.pause)
                finally:
                    # Before answering: the sender cannot have sent its next request yet.
                    with lock:
                        receiver.in_flight -= 1
                self._answer(answer)

            def _answer(self, answer: Answer) -> None:
                status, headers, content = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request's payload, each verified with the standardwebhooks library."""
        hook = Webhook(secret)
        out = []
        for got in self.received:
            lowered = {k.lower(): v for k, v in got.headers.items()}
            out.append(hook.verify(got.body, lowered))
        return out


class Clock:
    """An injected clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def once(func: Callable[[], Any]) -> Any:
    return func()
