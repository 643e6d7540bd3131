"""Reads from a store filled the way users fill it: one ``bd mail send`` process at a time.

The other benchmarks seed their stores in bulk (one commit, one fold), which never
shows what thousands of separate processes leave behind: each folds a little into
the index and leaves, so before the index kept its WAL in check (``Index.upkeep``)
2,000 sends left a 142 MB WAL beside a 1.1 MB index and ``bd mail check`` took
100 ms against 40 ms. This builds a store of ``BEADS_BENCH_SENDS`` (default 2,000)
messages by separate processes and one of the same size in bulk, and measures the
same reads in turn on both: their ratio should stay near 1.

Every message is still its own ``bd mail send`` process, but ``BEADS_BENCH_SEED_JOBS``
(default 4) of them run at a time, as agents in several worktrees send at once
(they queue on the store lock): one at a time, 2,000 sends took over an hour on a
loaded 2-core machine. The WAL sees the same thousands of separate writers either way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from beadsmail.workspace import Workspace
from bench import bench_mail
from bench.harness import GIT_ENV, bd_args, new_repo, processes_in_turn_ms, table

READER = bench_mail.READER


def seed_by_processes(n: int, jobs: int) -> Workspace:
    """``n`` messages, each sent by its own ``bd mail send``, ``jobs`` processes at a time;
    every 100th is the reader's."""
    repo = new_repo("beadsmail-bench-seeded-")
    env = {**os.environ, **GIT_ENV}
    subprocess.run(bd_args("init"), cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)

    def send(i: int) -> None:
        to = READER if i % 100 == 0 else f"agent-{i % bench_mail.AGENTS}"
        subprocess.run(bd_args("mail", "send", to, "-s", f"Subject number {i}", "-m",
                               bench_mail.BODY), cwd=repo, check=True, stdout=subprocess.DEVNULL,
                       env={**env, "BEADS_IDENTITY": f"agent-{(i * 7 + 1) % bench_mail.AGENTS}"})

    with ThreadPoolExecutor(jobs) as pool:
        for _ in pool.map(send, range(n)):
            pass
    return Workspace.open(repo)


def _files(ws: Workspace) -> tuple[float, float]:
    """(index MB, WAL MB) of a store's current index generation."""
    target = ws.index_path.parent / os.readlink(ws.index_path)
    wal = target.with_name(target.name + "-wal")
    return target.stat().st_size / 1e6, (wal.stat().st_size if wal.exists() else 0) / 1e6


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    n = int(os.environ.get("BEADS_BENCH_SENDS", "2000"))
    jobs = int(os.environ.get("BEADS_BENCH_SEED_JOBS", "4"))
    t = time.perf_counter()
    seeded = seed_by_processes(n, jobs)
    print(f"sent {n:,} messages, one process each, {jobs} at a time, in "
          f"{time.perf_counter() - t:.0f}s", flush=True)
    bulk = bench_mail.build(n)
    sizes = {"bulk": _files(bulk), "processes": _files(seeded)}
    reader = bench_mail.env(READER)
    quiet = bench_mail.env("agent-1-nothing-new")
    ms = processes_in_turn_ms({
        "check bulk": (bd_args("mail", "check"), bulk.loc.worktree, quiet),
        "check processes": (bd_args("mail", "check"), seeded.loc.worktree, quiet),
        "inbox bulk": (bd_args("mail", "inbox", "--json"), bulk.loc.worktree, reader),
        "inbox processes": (bd_args("mail", "inbox", "--json"), seeded.loc.worktree, reader),
    })
    rows = [[f"bd mail {what}", ms[f"{what} bulk"], ms[f"{what} processes"],
             ms[f"{what} processes"] / ms[f"{what} bulk"], "<= 1.2"]
            for what in ("check", "inbox")]
    rows.append(["index / WAL MB", "{:.1f} / {:.1f}".format(*sizes["bulk"]),
                 "{:.1f} / {:.1f}".format(*sizes["processes"]), "", "WAL <= 4.2"])
    print(table(f"reads from {n:,} messages seeded in bulk vs by {n:,} processes (median of "
                f"15 in turn), python {sys.version.split()[0]}",
                ["command", "bulk ms", "processes ms", "ratio", "goal"], rows))


if __name__ == "__main__":
    main()
