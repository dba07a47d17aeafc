"""What the benchmarks share: scratch databases, free ports, starting, waiting for and
stopping a server, the machine's load.

Benchmarks run as scripts (`python bench/NAME.py`), so this module is imported as
`_support` from the script's own folder.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_HOST = "127.0.0.1:5432"
PG_ADMIN = f"postgresql+psycopg://postgres@{PG_HOST}/postgres"


def create_database(backend: str, folder: Path, prefix: str = "stayflow_bench") -> str:
    """A fresh database URL: a SQLite file in ``folder``, or a new PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@{PG_HOST}/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by create_database (a SQLite file goes with its folder)."""
    if not url.startswith("postgresql"):
        return
    name = make_url(url).database
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def start_server(
    cmd: list[str], env: dict[str, str], *, stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (``stop_server`` ends it and its children)."""
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
    )


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it is still there after ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def load_average() -> str:
    """The machine's load (as ``uptime`` prints it), to print beside every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"
