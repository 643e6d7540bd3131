"""Store benchmarks: write cost vs store size, full rebuild rate, `bd where` start-up.

Goals (from the store issue): one in-process write with 1,000 / 100,000 /
1,000,000 records stored, largest/smallest median <= 1.3 and median <= 10 ms;
full rebuild >= 100,000 records/s; a `bd where --json` process against a
100,000-record store within 1.3x of `python -c "import typer"`.
Set BEADS_BENCH_SIZES=1000,100000 to skip the million-record store.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from beadsmail import records
from beadsmail.workspace import Workspace
from bench.harness import bd_args, floors, medians_in_turn, new_repo, process_ms, table

SIZES = [int(s) for s in os.environ.get("BEADS_BENCH_SIZES", "1000,100000,1000000").split(",")]
BATCH = 2000


def message(i: int, replica: str, clock: int) -> dict:
    rid = records.new_id()
    return {"v": 1, "id": rid, "kind": "message", "actor": "alice", "clock": clock,
            "created_at": "2026-11-23T10:00:00.000000Z", "replica": replica,
            "from": "alice", "to": [f"agent-{i % 50}"], "subject": f"Subject number {i}",
            "body": "A message body of a realistic length for an agent note. " * 3,
            "priority": i % 5, "type": "request", "thread_id": rid, "replies_to": None,
            "ephemeral": True, "metadata": {}, "action_requested": "none"}


def build(n: int) -> Workspace:
    """A store of ``n`` messages, written straight to segments in large commits."""
    ws = Workspace.open(new_repo())
    replica, writer = ws.replica, ws.writer
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    for start in range(0, n, BATCH):
        lines = [records.dumps(message(i, replica, i + 1)) for i in range(start, min(n, start + BATCH))]
        writer.append(replica, lines, "bench: bulk load", "alice", day, 1 << 20)
    # a store that size has long been packed by the background packer: pack the
    # bulk load now, so its one-off repack does not run during the measurements
    subprocess.run(["git", "repack", "-d", "-q"], cwd=ws.loc.worktree, check=True)
    return ws


def write_once(ws: Workspace, i: int) -> None:
    ws.write("alice", [("message", {
        "from": "alice", "to": ["bob"], "subject": f"bench {i}", "body": "hello",
        "priority": 2, "type": "request", "thread_id": "bd-0000000000000", "replies_to": None,
        "ephemeral": True, "metadata": {}, "action_requested": "none"})], "mail: alice -> bob: bench")


def interleaved_write_medians(stores: dict[int, Workspace], rounds: int = 41) -> dict[int, float]:
    """One write to each store in turn, ``rounds`` times: machine drift hits every size alike."""
    def writer(ws: Workspace):
        count = itertools.count()
        return lambda: write_once(ws, next(count))

    return medians_in_turn({n: writer(ws) for n, ws in stores.items()}, runs=rounds, warmup=3)


def main() -> None:
    stores, rates = {}, {}
    for n in SIZES:
        ws = build(n)
        t = time.perf_counter()
        ws.refresh()
        rates[n] = n / (time.perf_counter() - t)
        stores[n] = ws
    writes = interleaved_write_medians(stores)
    rows = [[f"{n:,}", writes[n], f"{rates[n]:,.0f}"] for n in SIZES]
    big = [n for n in SIZES if n >= 100_000]
    rebuild_rate = rates[100_000] if 100_000 in rates else (rates[big[0]] if big else None)
    where_ws = stores[100_000] if 100_000 in stores else (stores[big[0]] if big else None)
    print(table("one write, in-process (median of 41, stores written in turn)", ["records stored", "write ms", "fold records/s"], rows))
    smallest, largest = writes[min(writes)], writes[max(writes)]
    summary = [["write ratio largest/smallest", largest / smallest, "<= 1.3"],
               ["write median at largest (ms)", largest, "<= 10"]]
    if rebuild_rate:
        summary.append(["full rebuild records/s", rebuild_rate, ">= 100,000"])
    print(table("store goals", ["figure", "value", "goal"], summary))
    if where_ws is not None:
        fl = floors()
        where = process_ms(bd_args("where", "--json"), cwd=where_ws.loc.worktree)
        typer_ms = fl['python -c "import typer"']
        print(table(f"process start-up (median of 15), python {sys.version.split()[0]}",
                    ["command", "ms", "ratio vs import typer", "goal"],
                    [["python -c pass", fl["python -c pass"], "", ""],
                     ['python -c "import typer"', typer_ms, 1.0, ""],
                     ["bd where --json (100,000 records)", where, where / typer_ms, "<= 1.3"]]))


if __name__ == "__main__":
    main()
