"""Start localstripe 1.15.10 (the third-party emulator) as a child process for differential
tests and benchmarks: bound to 127.0.0.1 only (its stock CLI listens on every interface) and
with its pickle file in a private temporary directory (its default is a fixed /tmp file that
every instance shares). Its behaviour is otherwise untouched: it still re-pickles its whole
store on every write, as shipped.

Run as a script, this file is the child: ``python localstripe_runner.py --fd N --state PATH``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx


class LocalStripe:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="localstripe-")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.state_file = Path(self._dir.name) / "localstripe.pickle"
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--fd", str(sock.fileno()), "--state", str(self.state_file)],
            pass_fds=(sock.fileno(),),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sock.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                # localstripe answers 401 without a key: that is enough to know it is up
                httpx.get(f"{self.url}/v1/customers", timeout=1)
                return
            except httpx.HTTPError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("localstripe did not start")

    def register_webhook(self, name: str, url: str, secret: str, events: list[str] | None) -> None:
        body: dict[str, object] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        httpx.post(f"{self.url}/_config/webhooks/{name}", json=body).raise_for_status()

    def flush(self) -> None:
        httpx.delete(f"{self.url}/_config/data").raise_for_status()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._dir.cleanup()

    def __enter__(self) -> LocalStripe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _child() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--state", required=True)
    args = parser.parse_args()
    import pickle

    from aiohttp import web
    from localstripe import resources, server

    state = args.state

    def try_load_from_disk(self: dict[str, object]) -> None:
        if os.path.exists(state):
            with open(state, "rb") as f:
                old = pickle.load(f)
            self.clear()
            self.update(old)

    def dump_to_disk(self: dict[str, object]) -> None:
        with open(state, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = dump_to_disk
    sock = socket.socket(fileno=args.fd)
    web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    _child()
