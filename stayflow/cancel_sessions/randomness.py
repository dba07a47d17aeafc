"""The OS's randomness, read in blocks.

Precancel needs 36 random bytes per session (the page token and the public id). One
``os.urandom`` call per session was ~8% of precancel's CPU under load (a system call, dear
on a busy or sandboxed host), so bytes are read 4 KiB at a time and handed out once each.
They are the same bytes ``os.urandom`` would give; a forked child drops the parent's block
so two processes never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

BLOCK = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        if n > BLOCK:
            return os.urandom(n)
        with self._lock:
            if self._at + n > len(self._block):
                self._block, self._at = os.urandom(BLOCK), 0
            out = self._block[self._at : self._at + n]
            self._at += n
            return out


_pool = _Pool()


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS's CSPRNG, never handed out twice."""
    return _pool.take(n)
