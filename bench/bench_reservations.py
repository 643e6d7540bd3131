"""The commit guard's cost: `bd guard check` (what the pre-commit hook runs) against
`bd mail check` on one store, in turn.

Goal (from the reservations issue): the guard <= 1.5x `bd mail check`. The store holds
10,000 messages and 50 open reservations of other agents; five files are staged, none
of them reserved (the common case: the commit goes through).
"""

from __future__ import annotations

import os
import subprocess
import sys

from beadsmail import reservations
from bench.bench_mail import build, env
from bench.harness import bd_args, processes_in_turn_ms, table


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    ws = build(int(os.environ.get("BEADS_BENCH_GUARD_SIZE", "10000")))
    for i in range(50):
        reservations.reserve(ws, f"agent-{i}", [f"area{i}/**"], ttl="2h")
    root = ws.loc.worktree
    for i in range(5):
        (root / f"file{i}.txt").write_text(f"change {i}\n")
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    me = env("committer")
    ms = processes_in_turn_ms({
        "guard": (bd_args("guard", "check"), root, me),
        "check": (bd_args("mail", "check"), root, me),
        "pass": ([sys.executable, "-c", "pass"], None, None),
    })
    print(table("commit guard (median of 15, in turn), 10,000 messages, 50 reservations, "
                "5 staged files", ["command", "ms", "ratio vs mail check", "goal"], [
                    ["python -c pass", ms["pass"], ms["pass"] / ms["check"], ""],
                    ["bd mail check", ms["check"], 1.0, ""],
                    ["bd guard check", ms["guard"], ms["guard"] / ms["check"], "<= 1.5"],
                ]))


if __name__ == "__main__":
    main()
