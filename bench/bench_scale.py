"""Scale of sync with feeds: fleets of 2, 8, 16 and 32 clones syncing at once.

Each clone of a fleet (``bench/fleet.py``) sends a message and runs ``bd sync``
as its own process, ``ROUNDS`` times, all clones at the same moment, against one
local bare remote; then every clone syncs in turn until all hold every message.
The table gives the syncs run, the failed ones (goal: 0 at every size), the
time from the start until every clone holds every message, and the pack bytes
a sync fetched (median and max).

Then a no-op sync with the replicas of the largest fleet known against the
smallest: a ``bd sync`` process against the path (decided from ref files), and
``sync()`` in-process through a real ``git daemon`` (the ref advertisement and
negotiation of every feed). Goal: 32 replicas <= 1.5x 2 replicas.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

from bench import fleet
from bench.harness import bd_args, medians_in_turn, new_repo, process_ms, table

SIZES = (2, 8, 16, 32)
ROUNDS = 2


def main() -> None:
    root = Path(os.path.realpath(new_repo(prefix="beadsmail-bench-scale-")))
    rows, fleets = [], {}
    try:
        for n in SIZES:
            print(f"fleet of {n} clones ...", flush=True)
            where = root / f"fleet{n}"
            where.mkdir()
            result = fleet.run(where, n, ROUNDS)
            fleets[n] = where
            sizes = result.bytes_fetched or [0]
            rows.append([n, result.syncs, len(result.failures), result.converge_s,
                         statistics.median(sizes), max(sizes),
                         "ok" if not result.problems else "; ".join(result.problems)[:40]])
        print(table(f"clones syncing at once after every send ({ROUNDS} sends each)",
                    ["clones", "syncs", "failed", "converged s", "bytes/sync med",
                     "bytes/sync max", "check"], rows))
        print(f"failures: {sum(r[2] for r in rows)} (goal 0: "
              f"{'ok' if not sum(r[2] for r in rows) else 'MISSED'})\n")
        _noop(fleets[SIZES[0]], fleets[SIZES[-1]])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _noop(small: Path, large: Path) -> None:
    from beadsmail import sync
    from beadsmail.workspace import Workspace

    few, many = small / "clone00", large / "clone00"
    known = {p: len(list((p / ".git" / "refs" / "remotes" / "origin" / "beadsmail.feeds")
                         .iterdir())) for p in (few, many)}
    path_ms = {p: process_ms(bd_args("sync"), cwd=p, runs=11) for p in (few, many)}
    port, daemon = _daemon(small.parent)
    try:
        workspaces = {}
        for p in (few, many):
            fleet.git(p, "remote", "add", "daemon",
                      f"git://127.0.0.1:{port}/{p.parent.name}/remote.git")
            workspaces[p] = Workspace.open(p)
            sync.sync(workspaces[p], "daemon")
        calls = {p: (lambda ws=workspaces[p]: sync.sync(ws, "daemon")) for p in (few, many)}
        daemon_ms = medians_in_turn(calls, runs=9)
        for ws in workspaces.values():
            ws.close()
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
    rows = [[f"{known[p]} replicas", path_ms[p], daemon_ms[p]] for p in (few, many)]
    print(table("no-op sync", ["replicas known", "bd sync, path (ms)",
                               "sync() via git daemon (ms)"], rows))
    for label, ms in (("path", path_ms), ("git daemon", daemon_ms)):
        ratio = ms[many] / ms[few]
        print(f"{label}: {known[many]} replicas / {known[few]} = {ratio:.2f} "
              f"(goal <= 1.5: {'ok' if ratio <= 1.5 else 'MISSED'})")


def _daemon(base: Path) -> tuple[int, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={base}",
         "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, proc
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    main()
