"""What a demo keeps between runs: one JSON file (mode 0600) beside its databases.

It holds the demo app's secret and API key and the admin password: a local demo's
secrets, in the demo's own folder, never printed to a log.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "demo.json"
SANDBOX_FILE = "sandbox.state"
DATABASE_FILE = "stayflow.db"
# Everything a demo writes in its folder; --reset removes these and nothing else.
OWN_FILES = (
    STATE_FILE,
    SANDBOX_FILE,
    SANDBOX_FILE + ".tmp",
    DATABASE_FILE,
    DATABASE_FILE + "-wal",
    DATABASE_FILE + "-shm",
    "stayflow.secret",
)


@dataclass
class SiteCustomer:
    name: str
    email: str
    plan: str
    subscription_id: str


@dataclass
class DemoState:
    port: int
    site_port: int
    sandbox_port: int
    app_id: str = ""
    app_secret: str = ""
    api_key: str = ""
    admin_email: str = ""
    admin_password: str = ""
    # History: sandbox time it starts and ends (epoch seconds), and how far it got.
    history_start: int = 0
    history_end: int = 0
    history_done: bool = False
    history_day: int = -1  # the last day played to its end
    sessions_played: int = 0
    customers: list[SiteCustomer] = field(default_factory=list)

    @property
    def stayflow_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def site_url(self) -> str:
        # "localhost", not 127.0.0.1: another origin than stayflow's, so CORS is real.
        return f"http://localhost:{self.site_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def seeded(self) -> bool:
        return bool(self.app_id)


def load(folder: Path) -> DemoState | None:
    path = folder / STATE_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    customers = [SiteCustomer(**c) for c in data.pop("customers", [])]
    return DemoState(**data, customers=customers)


def save(folder: Path, state: DemoState) -> None:
    path = folder / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(state), handle, indent=2)
    tmp.replace(path)


def reset(folder: Path) -> None:
    for name in OWN_FILES:
        (folder / name).unlink(missing_ok=True)
