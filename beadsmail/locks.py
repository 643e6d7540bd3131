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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from beadsmail.errors import InvalidInput, StoreError


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


@contextmanager
def store_lock(state_dir: Path, timeout) -> Iterator[None]:
    """The one store lock: exclusive, short, released by the kernel if we die.

    A holder that is alive but stuck (stopped with Ctrl-Z, hung) would otherwise
    block every writer for ever, so a waiter gives up after ``store.lock_timeout``
    seconds with an error naming the holder, which notes its pid and command in
    the lock file.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidInput(f"store.lock_timeout {timeout!r} must be a number of seconds > 0")
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "write.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        acquire_store(fd, path, timeout)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder_note(), 0)
        except OSError:
            pass  # (a full disk) the lock holds all the same
        yield
    finally:
        os.close(fd)
