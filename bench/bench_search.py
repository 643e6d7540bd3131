"""Search benchmarks: `bd mail search` against `bd mail inbox --json` on one store, and the
full rebuild with the full-text index against one without it.

Goals (from the search issue): a search over 100,000 messages <= 1.3x `bd mail inbox
--json` on the same store; the rebuild with full-text search >= 0.8x its speed without.
BEADS_BENCH_SEARCH_SIZE sets the store's size (default 100,000).
"""

from __future__ import annotations

import os
import sys
import time

from beadsmail import index as index_mod
from beadsmail.index import search as search_index
from bench.bench_mail import READER, build, env
from bench.harness import bd_args, medians_in_turn, processes_in_turn_ms, table


def rebuild_rates(ws, runs: int = 3) -> dict[str, float]:
    """Records/s of a full rebuild with and without the full-text table, in turn."""
    full = index_mod.DOMAINS
    without = tuple(d for d in full if d is not search_index)
    records = sum(ws.index.counts().values())

    def rebuild(domains):
        def run() -> None:
            index_mod.DOMAINS = domains
            try:
                ws.rebuild_index()
            finally:
                index_mod.DOMAINS = full
        return run

    ms = medians_in_turn({"with": rebuild(full), "without": rebuild(without)}, runs=runs, warmup=1)
    ws.rebuild_index()
    return {k: records / (v / 1000) for k, v in ms.items()}


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    size = int(os.environ.get("BEADS_BENCH_SEARCH_SIZE", "100000"))
    t = time.perf_counter()
    ws = build(size)
    print(f"built a store of {size:,} messages in {time.perf_counter() - t:.1f}s", flush=True)
    cwd, reader = ws.loc.worktree, env(READER)
    ms = processes_in_turn_ms({
        "inbox": (bd_args("mail", "inbox", "--json"), cwd, reader),
        "rare": (bd_args("mail", "search", "4242", "--json"), cwd, reader),
        "common": (bd_args("mail", "search", "realistic note", "--json"), cwd, reader),
        "filtered": (bd_args("mail", "search", "number", "--from", "agent-8", "--json"), cwd,
                     reader),
    })
    inbox = ms["inbox"]
    print(table(f"search processes (median of 15), python {sys.version.split()[0]}, "
                f"{size:,} messages", ["command", "ms", "ratio vs inbox", "goal"], [
                    ["bd mail inbox --json", inbox, 1.0, ""],
                    ["bd mail search 4242 (one hit)", ms["rare"], ms["rare"] / inbox, "<= 1.3"],
                    ["bd mail search 'realistic note' (every message)", ms["common"],
                     ms["common"] / inbox, "<= 1.3"],
                    ["bd mail search number --from agent-8", ms["filtered"],
                     ms["filtered"] / inbox, "<= 1.3"],
                ]))
    rates = rebuild_rates(ws)
    print(table("full rebuild (median of 3, in turn)", ["index", "records/s", "ratio", "goal"], [
        ["without full-text search", rates["without"], 1.0, ""],
        ["with full-text search", rates["with"], rates["with"] / rates["without"], ">= 0.8"],
    ]))


if __name__ == "__main__":
    main()
