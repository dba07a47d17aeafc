"""How long a newcomer waits: `stayflow demo` until its URLs, and until its history is played.

    python bench/demo.py [--days 90] [--runs 1]

Runs the real command in a scratch folder on free ports (a fresh demo each run), and prints
seconds to the printed URLs (the issue asks for about 10), seconds until the business site
says the history is ready, the sessions played, and seconds per simulated day, with the
machine's load (`uptime`) before and after. Conditions: SQLite as the demo uses it (WAL,
stayflow's default durability), the sandbox and stayflow in the same process, the whole
history driven over HTTP on 127.0.0.1. There is no baseline: nothing else does this.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _support import free_port


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def one_run(days: int) -> dict[str, float]:
    ports = [free_port(), free_port(), free_port()]
    stayflow = Path(sys.executable).parent / "stayflow"
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "demo.log"
        started = time.monotonic()
        with log.open("w") as out:
            demo = subprocess.Popen(
                [
                    str(stayflow),
                    "demo",
                    "--port",
                    str(ports[0]),
                    "--site-port",
                    str(ports[1]),
                    "--sandbox-port",
                    str(ports[2]),
                    "--days",
                    str(days),
                ],
                cwd=folder,
                env={k: v for k, v in os.environ.items() if not k.startswith("STAYFLOW_")},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = started + 120
            while "Stop: Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
                if demo.poll() is not None:
                    raise SystemExit(log.read_text())
                time.sleep(0.05)
            urls = time.monotonic() - started
            status: dict[str, object] = {}
            deadline = started + 3600
            while time.monotonic() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/status") as answer:
                    status = json.load(answer)
                if status["ready"] or status["error"]:
                    break
                time.sleep(0.5)
            ready = time.monotonic() - started
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(120)
    return {"urls_s": urls, "history_s": ready - urls, "sessions": float(str(status["sessions"]))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"load before: {uptime()}")
    for run in range(args.runs):
        figures = one_run(args.days)
        print(
            f"run {run + 1}: URLs printed after {figures['urls_s']:.1f} s; "
            f"{args.days} days of history ({figures['sessions']:.0f} sessions) in "
            f"{figures['history_s']:.1f} s more ({figures['history_s'] / args.days:.2f} s a day)"
        )
    print(f"load after:  {uptime()}")


if __name__ == "__main__":
    main()
