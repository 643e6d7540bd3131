"""Coordination benchmarks: `bd agent heartbeat` start-up, committed heartbeats, listings.

Goal (from the coordination issue): a `bd agent heartbeat` process (the usual
case, liveness noted locally, nothing committed) within 1.3x of
`python -c "import typer"`. Also shown, without goals: a heartbeat that commits
(`agents.heartbeat_interval: 0`), and `bd agent list` / `bd status` against a
roster of 200 agents with 2,000 messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from beadsmail.workspace import Workspace
from bench.harness import GIT_ENV, bd_args, floors, new_repo, process_ms, table

AGENTS = 200
MESSAGES = 2000


def _bd(cwd: Path, *args: str) -> None:
    subprocess.run(bd_args(*args), cwd=cwd, env={**os.environ, **GIT_ENV, "BEADS_IDENTITY": "boss"},
                   check=True, stdout=subprocess.DEVNULL)


def roster(path: Path, agents: int, messages: int) -> None:
    """A store with ``agents`` registered agents in 10 groups and ``messages`` messages.
    The profiles are written by a registered manager, each message by its sender (the
    fold refuses profiles changed by anyone else, and mail whose sender did not write it)."""
    ws = Workspace.open(path)
    ws.write("boss", [("agent", {"op": "register", "agent": "boss", "name": "boss",
                                 "role": "manager", "group": None, "tier": 1, "model": None,
                                 "status": "active", "last_seen": None})], "bench: manager")
    profiles = [("agent", {"op": "register", "agent": f"agent-{i}", "name": f"Agent {i}",
                           "role": "manager" if i == 0 else "tester", "group": f"g{i % 10}",
                           "tier": 1 if i == 0 else 2, "model": None, "status": "active",
                           "last_seen": None}) for i in range(agents)]
    ws.write("boss", profiles, "bench: roster")
    by_sender: dict[str, list] = {}
    for i in range(messages):
        to = ["*"] if i % 10 == 0 else [f"@g{i % 10}"] if i % 10 == 1 else [f"agent-{i % agents}"]
        sender = f"agent-{(i + 1) % agents}"
        by_sender.setdefault(sender, []).append(("message", {
            "from": sender, "to": to, "subject": f"note {i}", "body": "hello",
            "priority": 2, "type": "status", "thread_id": "bd-0000000000000", "replies_to": None,
            "ephemeral": False, "metadata": {}, "action_requested": "none"}))
    for sender, batch in by_sender.items():
        ws.write(sender, batch, "bench: messages")
    ws.close()


def main() -> None:
    repo = new_repo()
    _bd(repo, "init")
    _bd(repo, "agent", "register", "--id", "w1", "--role", "tester")
    fl = floors()
    typer_ms = fl['python -c "import typer"']
    beat = process_ms(bd_args("agent", "heartbeat", "--identity", "w1"), cwd=repo)
    (repo / ".beads" / "config.yaml").write_text("agents:\n  heartbeat_interval: 0\n")
    committed = process_ms(bd_args("agent", "heartbeat", "--identity", "w1"), cwd=repo)
    big = new_repo()
    _bd(big, "init")
    roster(big, AGENTS, MESSAGES)
    listing = process_ms(bd_args("agent", "list", "--json"), cwd=big, runs=7)
    overview = process_ms(bd_args("status", "--json"), cwd=big, env={"BEADS_IDENTITY": "agent-0"},
                          runs=7)
    print(table(f"process start-up (median of 15), python {sys.version.split()[0]}",
                ["command", "ms", "ratio vs import typer", "goal"],
                [["python -c pass", fl["python -c pass"], "", ""],
                 ['python -c "import typer"', typer_ms, 1.0, ""],
                 ["bd agent heartbeat (noted locally)", beat, beat / typer_ms, "<= 1.3"],
                 ["bd agent heartbeat (committed)", committed, committed / typer_ms, ""],
                 [f"bd agent list --json ({AGENTS} agents, {MESSAGES} messages)", listing,
                  listing / typer_ms, ""],
                 [f"bd status --json ({AGENTS} agents, {MESSAGES} messages)", overview,
                  overview / typer_ms, ""]]))


if __name__ == "__main__":
    main()
