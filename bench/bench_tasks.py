"""``bd task list --json`` on a store of 10,000 tasks, against the start-up floor.

Goal: the whole process costs at most 1.3x ``python -c "import typer"``.
The tasks are written in batches of 1,000 per commit (the commit count does not
matter to a read); the index is warm, as it is for every command after the first.
Byte-code caching is switched on (into a temporary prefix) for every process
measured, floors included, as it is for an installed ``bd``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from bench import harness

TASKS = 10_000
BATCH = 1_000
GOAL = 1.3


def populate(path, count: int = TASKS) -> None:
    from beadsmail import maintenance
    from beadsmail.workspace import Workspace

    maintenance.init(path)
    ws = Workspace.open(path)
    priorities = ("low", "medium", "high")
    for start in range(0, count, BATCH):
        items = [("task", {"title": f"task {i}: make the thing work", "description": "details " * 8,
                           "priority": priorities[i % 3], "status": "backlog",
                           "assigned_to": f"worker-{i % 7}", "parent": None, "group": None,
                           "sort_order": 0})
                 for i in range(start, min(start + BATCH, count))]
        ws.write("bench", items, f"bench: tasks {start}..")
    ws.close()


def interleaved(commands: dict[str, list[str]], cwd, env: dict, runs: int = 21) -> dict:
    """Median ms of each command, run in turns so that load on the machine hits all alike."""
    full_env = {**os.environ, **harness.GIT_ENV, **env}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 2):
        for name, args in commands.items():
            start = time.perf_counter()
            subprocess.run(args, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            if round_ >= 2:  # two warm-up rounds
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(ms) for name, ms in times.items()}


def main() -> None:
    path = harness.new_repo("beadsmail-bench-tasks-")
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    os.environ["PYTHONDONTWRITEBYTECODE"] = ""
    os.environ["PYTHONPYCACHEPREFIX"] = str(path / ".pycache")
    try:
        populate(path)
        env = {"BEADS_IDENTITY": "bench"}
        out = subprocess.run(harness.bd_args("task", "list", "--json"), cwd=path, check=True,
                             capture_output=True, env={**os.environ, **harness.GIT_ENV, **env})
        listed = len(json.loads(out.stdout))
        assert listed == TASKS, f"listed {listed} tasks, expected {TASKS}"
        typer_name = 'python -c "import typer"'
        medians = interleaved({
            "python -c pass": [sys.executable, "-c", "pass"],
            typer_name: [sys.executable, "-c", "import typer"],
            f"bd task list --json ({TASKS} tasks)": harness.bd_args("task", "list", "--json"),
            "bd task review-count --json": harness.bd_args("task", "review-count", "--json"),
        }, path, env)
        typer_ms = medians[typer_name]
        rows = [[name, ms, ms / typer_ms, f"<= {GOAL}" if name.startswith("bd task list") else ""]
                for name, ms in medians.items()]
        print(harness.table(f"task list, {TASKS} tasks (python {sys.version.split()[0]})",
                            ["command", "median ms", "x import typer", "goal"], rows))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
