"""Listing benchmarks: the roster and review-queue reads agents and the page run often.

Goal (from the first-hour issue): with 200 agents and 2,000 messages stored, each of
`bd agent list --json`, `bd status --json` and `bd task review-count --json` takes at
most 1.0x a `python -c "import typer"` process. The commands and the floor are run
in turn, round after round, so that their ratios come from one run under the same
load. `bd mail inbox --json` is shown beside them for reference.
"""

from __future__ import annotations

import sys

from beadsmail import maintenance, tasks
from beadsmail.workspace import Workspace
from bench.bench_agents import AGENTS, MESSAGES, roster
from bench.harness import GIT_ENV, bd_args, new_repo, processes_in_turn_ms, table

TASKS = 60
IN_REVIEW = 20
RUNS = 15


def seed() -> Workspace:
    """200 agents in 10 groups (every tenth a reviewer), 2,000 messages, 60 tasks of which
    20 wait in review."""
    path = new_repo("beadsmail-bench-listings-")
    maintenance.init(path)
    roster(path, AGENTS, MESSAGES)
    ws = Workspace.open(path)
    for i in range(TASKS):
        tasks.create(ws, "agent-0", f"task {i}", group=f"g{i % 10}",
                     status="review" if i < IN_REVIEW else "todo")
    return ws


def main() -> None:
    ws = seed()
    cwd = ws.loc.worktree
    me = {**GIT_ENV, "BEADS_IDENTITY": "agent-3"}
    commands = {
        'python -c "import typer"': ([sys.executable, "-c", "import typer"], None, None),
        "bd agent list --json": (bd_args("agent", "list", "--json"), cwd, me),
        "bd status --json": (bd_args("status", "--json"), cwd, me),
        "bd task review-count --json": (bd_args("task", "review-count", "--json"), cwd, me),
        "bd mail inbox --json": (bd_args("mail", "inbox", "--json"), cwd, me),
    }
    ms = processes_in_turn_ms(commands, runs=RUNS)
    floor = ms['python -c "import typer"']
    goals = {"bd agent list --json", "bd status --json", "bd task review-count --json"}
    rows = [[name, value, value / floor, "<= 1.0" if name in goals else ""]
            for name, value in ms.items()]
    print(table(f"listings (median of {RUNS}, in turn), {AGENTS} agents, {MESSAGES:,} messages, "
                f"{TASKS} tasks ({IN_REVIEW} in review), python {sys.version.split()[0]}",
                ["command", "ms", "ratio vs import typer", "goal"], rows))


if __name__ == "__main__":
    main()
