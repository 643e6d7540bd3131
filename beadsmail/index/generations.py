"""The index's files: generations behind a symlink, and turns for making them.

The index's name (``index.sqlite3``) is a symlink to its current generation,
``index.sqlite3.<pid>-<random>``. A new index (the first, one after a schema
change or corruption, a rebuild) is made as a new generation and published by
replacing the symlink, atomically. Each generation has its own ``-wal`` and
``-shm`` files, so a process still using an older one (SQLite resolved the
symlink when it opened it) never touches the new one's: closing its connection
checkpoints and deletes only its own. Publishing removes the other generations'
files. A process using one keeps its open files and goes on with it, folding
what arrives into it: ``bd serve`` follows records by their position in its
index (``Index.arrived_after``), which a new generation numbers afresh, so it
keeps its generation until it restarts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from beadsmail.errors import StoreError
from beadsmail.locks import flock_within


def target(path: Path) -> str | None:
    """The generation the index's name points at (None: no index; "": a plain file)."""
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        return ""


def new(path: Path) -> Path:
    """A name for a new generation."""
    return path.with_name(f"{path.name}.{os.getpid()}-{os.urandom(4).hex()}")


def discard(generation: Path) -> None:
    """Remove a generation's files (one that failed before it was published)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{generation}{suffix}").unlink(missing_ok=True)


def publish(path: Path, generation: Path) -> str:
    """Point the index's name at ``generation`` (closed, complete), remove every other
    generation's files, and return the new target (see ``target``).

    On a filesystem without symlinks (FAT, some network shares) the generation is
    renamed to the index's name instead, the old file's WAL files removed first, so
    that a new file never meets an old one's; a process with the old file open then
    goes on with it, as with a generation.
    """
    import errno

    link = path.with_name(f"{path.name}.link")
    link.unlink(missing_ok=True)
    try:
        os.symlink(generation.name, link)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(generation, path)
        sweep(path, "")
        return ""
    os.replace(link, path)
    sweep(path, generation.name)
    return generation.name


def sweep(path: Path, current: str | None) -> None:
    """Remove the files of every generation but ``current`` (a killed build's, older ones)."""
    keep = {path.name, f"{path.name}.build"}
    keep |= {f"{current or path.name}-wal", f"{current or path.name}-shm", current or path.name}
    if current is None:  # no index: nothing may meet a new one's name
        keep -= {f"{path.name}-wal", f"{path.name}-shm"}
    for entry in os.scandir(path.parent):
        if entry.name.startswith((f"{path.name}.", f"{path.name}-")) and entry.name not in keep:
            Path(entry.path).unlink(missing_ok=True)


@contextmanager
def build_lock(path: Path, busy_seconds: int = 120) -> Iterator[None]:
    """Turns for processes that make a new index generation, for at most ``busy_seconds``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.build", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not flock_within(fd, busy_seconds):
            raise StoreError(f"another bd process has been building the index {path} for over "
                             f"{busy_seconds} s; try again when it is done")
        yield
    finally:
        os.close(fd)
