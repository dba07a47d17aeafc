"""What precancel needs to know about an app, cached for a few seconds per process.

Precancel is the hot path (every click on a Cancel link), so it reads the app,
its settings and its decrypted secret from here instead of the database. A
settings change made through this process is seen at once (``invalidate``);
other processes see it within ``TTL_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from stayflow.apps import service as apps_service
from stayflow.apps.repository import get_app_by_public_id
from stayflow.cancel_sessions.settings import CancelFlowSettings
from stayflow.cancel_sessions.settings import read as read_settings
from stayflow.crypto import Encryptor

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class AppInfo:
    pk: int
    app_id: str
    secret: str
    settings: CancelFlowSettings
    # Worked out once per cached settings, not per request (precancel's profile showed the
    # redirect hosts, parsed from the origins, on every call).
    redirect_hosts: tuple[str, ...] = field(init=False)
    session_lifetime: timedelta = field(init=False)
    abandon_after: timedelta = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        object.__setattr__(self, "redirect_hosts", settings.redirect_hosts())
        object.__setattr__(
            self, "session_lifetime", timedelta(minutes=settings.session_expiry_minutes)
        )
        object.__setattr__(self, "abandon_after", timedelta(minutes=settings.abandon_after_minutes))

    def redirect_allowed(self, url: str) -> bool:
        return self.settings.redirect_allowed(url, self.redirect_hosts)


class PrecancelApps:
    def __init__(
        self, session_factory: sessionmaker[Session], encryptor: Encryptor, ttl: float = TTL_SECONDS
    ) -> None:
        self.session_factory = session_factory
        self.encryptor = encryptor
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, AppInfo | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def cached(self, app_id: str) -> tuple[bool, AppInfo | None]:
        """(hit, info); info None on a hit means: no such app (also cached, briefly)."""
        with self._lock:
            entry = self._entries.get(app_id)
            if entry is None or entry[0] < time.monotonic():
                return False, None
            return True, entry[1]

    def load(self, app_id: str) -> AppInfo | None:
        """Read from the database (blocking: call it from a worker thread) and cache.

        One read per app when an entry expires: concurrent requests for the same app wait
        for the first one's read instead of each asking the database (on SQLite each read
        also queued for the write lock behind precancel's writer).
        """
        with self._lock:
            loading = self._loading.setdefault(app_id, threading.Lock())
        with loading:
            hit, info = self.cached(app_id)
            if hit:
                return info
            try:
                return self._read(app_id)
            finally:
                with self._lock:
                    self._loading.pop(app_id, None)

    def _read(self, app_id: str) -> AppInfo | None:
        with self.session_factory() as db:
            app = get_app_by_public_id(db, app_id)
            info = None
            if app is not None:
                info = AppInfo(
                    app.id,
                    app.app_id,
                    apps_service.app_secret(self.encryptor, app),
                    read_settings(app),
                )
        with self._lock:
            self._entries[app_id] = (time.monotonic() + self.ttl, info)
            self._entries.move_to_end(app_id)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return info

    def invalidate(self, app_id: str) -> None:
        with self._lock:
            self._entries.pop(app_id, None)
