"""Sync speed: receiving 10,000 new records, and a no-op ``bd sync`` against ``git fetch``.

Receiving: a sender clone writes 10,000 records (in commits of 50) and pushes
them to a local bare remote; a receiver that has one record of its own (so the
histories diverged) runs ``sync()`` in-process: fetch + merge commit + fold
into the index. Each run uses a fresh receiver cloned from a copy of the remote
taken before the 10,000 records; the remote is packed with deltas, as a forge
or the background ``git repack`` keeps it. Goal: >= 5,000 records/s.

No-op: with nothing new on either side, the median wall time of a ``bd sync``
process against the median of ``git fetch`` of the same remote in the same
run. Goal: ratio <= 1.5. The ``python -c pass`` and ``import typer`` floors are
printed beside it, and the standard modules a store reader needs (json, pathlib,
sqlite3): a ``bd`` process cannot be faster than those.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import GIT_ENV, bd_args, floors, median_ms, new_repo, process_ms, table

RECORDS = 10_000
PER_COMMIT = 50
RUNS = 3


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout


def _fields(i: int) -> dict:
    return {"from": "sender", "to": ["receiver"], "subject": f"bench {i}",
            "body": "x" * 120, "priority": 2, "type": "request", "thread_id": "bd-0000000000000",
            "replies_to": None, "ephemeral": True, "metadata": {}, "action_requested": "none"}


def _write(ws, n: int, start: int = 0) -> None:
    for base in range(start, start + n, PER_COMMIT):
        items = [("message", _fields(i)) for i in range(base, min(base + PER_COMMIT, start + n))]
        ws.write("sender", items, "bench: batch")


def _setup(root: Path) -> tuple[Path, Path]:
    from beadsmail import sync
    from beadsmail.workspace import Workspace

    remote = root / "remote.git"
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    sender = new_repo(prefix="beadsmail-bench-sender-")
    _git(sender, "remote", "add", "origin", str(remote))
    ws = Workspace.open(sender)
    _write(ws, 1)
    sync.sync(ws)
    before = root / "before.git"
    shutil.copytree(remote, before)
    _write(ws, RECORDS, start=1)
    sync.sync(ws)
    ws.close()
    _git(remote, "repack", "-adq")  # as a forge (or the background packer) keeps it: deltas
    shutil.rmtree(sender, ignore_errors=True)
    return remote, before


def _receive(root: Path, remote: Path, before: Path, run: int) -> tuple[float, int]:
    from beadsmail import sync
    from beadsmail.workspace import Workspace

    receiver = root / f"receiver{run}"
    _git(root, "clone", "-q", str(before), str(receiver))
    ws = Workspace.open(receiver)
    sync.sync(ws)
    ws.write("receiver", [("message", _fields(-1))], "bench: local record")
    _git(receiver, "remote", "set-url", "origin", str(remote))
    ws.close()
    ws = Workspace.open(receiver)
    started = time.perf_counter()
    report = sync.sync(ws, pull=True, push=False)
    elapsed = time.perf_counter() - started
    ws.close()
    return elapsed, report["received"]


def main() -> None:
    root = Path(shutil.os.path.realpath(new_repo(prefix="beadsmail-bench-sync-")))
    try:
        print(f"writing {RECORDS} records on a sender clone ...", flush=True)
        remote, before = _setup(root)
        rows = []
        for run in range(RUNS):
            elapsed, received = _receive(root, remote, before, run)
            rows.append([run + 1, received, elapsed * 1000, received / elapsed])
        best = max(r[3] for r in rows)
        print(table("receiving new records (fetch + merge + fold, in-process)",
                    ["run", "records", "ms", "records/s"], rows))
        print(f"best: {best:,.0f} records/s (goal >= 5,000/s: {'ok' if best >= 5000 else 'MISSED'})\n")
        _noop(root, remote)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _noop(root: Path, remote: Path) -> None:
    from beadsmail import sync
    from beadsmail.workspace import Workspace

    receiver = root / "receiver0"
    ws = Workspace.open(receiver)
    sync.sync(ws)
    in_process = median_ms(lambda: sync.sync(ws), runs=15)
    ws.close()
    bd = process_ms(bd_args("sync"), cwd=receiver)
    fetch = process_ms(["git", "fetch", "-q", "origin"], cwd=receiver)
    rows = [["git fetch (process)", fetch, 1.0], ["bd sync (process)", bd, bd / fetch],
            ["sync() in-process", in_process, in_process / fetch]]
    rows += [[name, ms, ms / fetch] for name, ms in floors().items()]
    # what any command that reads a JSON config and the SQLite index must load first
    stdlib = process_ms([sys.executable, "-c", "import json, pathlib, sqlite3"])
    rows.append(['python -c "import json, pathlib, sqlite3"', stdlib, stdlib / fetch])
    print(table("no-op sync against a local bare remote", ["what", "median ms", "x git fetch"],
                rows))
    verdict = "ok" if bd / fetch <= 1.5 else "MISSED"
    print(f"bd sync / git fetch = {bd / fetch:.2f} (goal <= 1.5: {verdict})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
