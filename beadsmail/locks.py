"""Waiting for an ``flock`` with a time limit.

A blocking ``flock`` cannot time out, and a signal-based alarm works on the main
thread only (``bd serve`` writes from a worker thread), so waiters poll, backing
off from 0.5 ms to 10 ms.
"""

from __future__ import annotations

import fcntl
import time


def flock_within(fd: int, seconds: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, waiting at most ``seconds``; False if not."""
    deadline = time.monotonic() + seconds
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
