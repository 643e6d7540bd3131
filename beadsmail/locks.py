"""Waiting for an ``flock`` with a time limit.

A blocking ``flock`` cannot time out, and a signal-based alarm works on the main
thread only (``bd serve`` writes from a worker thread), so waiters poll, backing
off from 0.5 ms to 10 ms. The store lock's holder notes its pid, start time and
command in the lock file, so a waiter that gives up can name it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from beadsmail.errors import StoreError


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


def acquire_store(fd: int, path: Path, timeout: float) -> None:
    """``flock`` the store lock, waiting at most ``timeout`` seconds."""
    if not flock_within(fd, timeout):
        raise StoreError(f"the store is locked by {_holder(path)} and was not released "
                         f"within {timeout:g} s; wait for it to finish, or stop that "
                         "process if it is stuck (store.lock_timeout in .beads/config.yaml)")


def _command() -> str:
    """The holder's command, its words before the first option ('bd mail send')."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    words = ["bd" if name in ("__main__.py", "bd") else name]
    for word in sys.argv[1:4]:
        if word.startswith("-") or not word.isprintable() or " " in word:
            break
        words.append(word)
    return " ".join(words)[:100]


def _holder(path: Path) -> str:
    """Who holds the lock, as its holder noted it: 'pid 123 (bd index rebuild, for 40 s)'."""
    try:
        pid, since, command = path.read_text("utf-8", "replace").strip().split(" ", 2)
        return f"pid {int(pid)} ({command}, for {max(0, time.time() - int(since)):.0f} s)"
    except (OSError, ValueError):
        return "another process"


def holder_note() -> bytes:
    """What a store lock's holder writes into the lock file (see ``_holder``)."""
    return f"{os.getpid()} {time.time():.0f} {_command()}\n".encode()
