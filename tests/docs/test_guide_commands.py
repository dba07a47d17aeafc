"""Every shell command in the quickstart and the install guide, run as written.

The ``sh`` blocks are read from the pages, so a change there is what runs here. What changes:
ports (free ones, so parallel runs do not collide), the install guide's database name (a
fresh one, dropped afterwards), and ``pip install`` lines are left out (this environment has
stayflow installed already; installing is what the README's test command does), and the demo
plays 3 days of history instead of 90 (its hidden ``--days``: the history is the demo test's
subject, and 90 days would only load the machine under the other tests). Waiting is
on readiness (the guide's own ``curl --retry`` on ``/readyz``, the demo's printed URLs),
never a fixed sleep. ``nginx`` and ``text`` blocks are configuration and output, not
commands.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.cancel_flow.test_browser import free_port
from tests.conftest import require_postgres

ROOT = Path(__file__).resolve().parents[2]


def sh_blocks(page: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAYFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _without_pip(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.startswith("pip install"))


def test_the_quickstart_commands_run(tmp_path: Path) -> None:
    blocks = sh_blocks("quickstart.md")
    assert [b.strip() for b in blocks] == [
        "pip install .\nstayflow demo",
        "stayflow demo advance --days 31",
    ]
    ports = [str(free_port()) for _ in range(3)]
    command = _without_pip(blocks[0]).strip()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [
                "bash",
                "-c",
                f"exec {command} --port {ports[0]} --site-port {ports[1]} "
                f"--sandbox-port {ports[2]} --days 3",
            ],
            cwd=tmp_path,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "Stop: Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()
            time.sleep(0.2)
        printed = log.read_text()
        assert "Stop: Ctrl-C" in printed, printed
        # The three addresses answer.
        assert httpx.get(f"http://localhost:{ports[1]}/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/admin/login").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/docs").status_code == 200
        before = httpx.get(f"http://127.0.0.1:{ports[2]}/_sandbox/clock").json()["now"]
        # The page's second block, from the same folder, while the demo runs.
        moved = subprocess.run(
            ["bash", "-c", blocks[1]],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert moved.returncode == 0, moved.stderr
        after = httpx.get(f"http://127.0.0.1:{ports[2]}/_sandbox/clock").json()["now"]
        assert after - before >= 31 * 86400
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, log.read_text()


@pytest.mark.postgres
def test_the_install_guide_commands_run(tmp_path: Path) -> None:
    require_postgres()
    script = "\n".join(_without_pip(b) for b in sh_blocks("install.md"))
    database = f"stayflow_guide_{os.getpid()}_{secrets.token_hex(3)}"
    for old, new in {
        "stayflow_prod": database,
        "8101": str(free_port()),
        "8102": str(free_port()),
    }.items():
        assert old in script
        script = script.replace(old, new)
    env = _env()
    env["STAYFLOW_LOG_LEVEL"] = "WARNING"
    shell = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: what it left running on a failure
    )
    try:
        stdout, stderr = shell.communicate(timeout=300)
        assert shell.returncode == 0, stdout[-3000:] + stderr[-5000:]
        assert "stayflow_jobs" in stdout and "stayflow_http_requests_total" in stdout
        assert (tmp_path / "stayflow.dump").stat().st_size > 0
        assert oct((tmp_path / "secrets" / "secret_key").stat().st_mode & 0o777) == "0o600"
    finally:
        try:
            os.killpg(shell.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        shell.wait(60)
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", database],
            check=False,
            capture_output=True,
        )
