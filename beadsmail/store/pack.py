"""Background packing of loose objects, started detached by ``Writer.maybe_pack``.

Runs ``git repack -d`` (deltas, then removes the loose copies; never prunes
anything unreachable, so other worktrees are safe). One packer at a time, by a
non-blocking lock. Without a ``git`` binary it falls back to dulwich's
``pack_loose_objects`` (no deltas, but bounded). Never runs a gc or prune.
Afterwards it sweeps the object lock files that killed writers left behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STALE_OBJECT_LOCK = 60.0  # seconds


def pack(common: Path) -> None:
    state = common / "beadsmail"
    state.mkdir(exist_ok=True)
    with open(state / "pack.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        if shutil.which("git"):
            env = {**os.environ, "GIT_DIR": str(common)}
            subprocess.run(["git", "repack", "-d", "-q"], env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            from dulwich.object_store import DiskObjectStore

            DiskObjectStore(str(common / "objects")).pack_loose_objects()
        sweep_object_locks(common)


def sweep_object_locks(common: Path, max_age: float = STALE_OBJECT_LOCK) -> int:
    """Remove ``objects/??/<sha>.lock`` files a killed writer left (harmless, but git
    fsck complains about them). A live writer holds one for microseconds."""
    now = time.time()
    removed = 0
    for lock in (common / "objects").glob("[0-9a-f][0-9a-f]/*.lock"):
        try:
            if now - lock.stat().st_mtime > max_age:
                lock.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


if __name__ == "__main__":
    pack(Path(sys.argv[1]))
