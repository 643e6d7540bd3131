"""A real multi-agent session, printed as it happens (``make demo``).

Creates a temporary repository with two linked worktrees (one per agent), a
bare "remote" and a second clone standing for another machine, then runs the
real ``bd`` CLI in each place: registration, mail with threads and receipts,
a channel, the task board with a version conflict and the review queue, sync
between clones, an MCP agent (the SDK's client over ``bd mcp``), and the overview. Everything runs against real git.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env={**os.environ, **GIT_ENV},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Agent:
    """One agent: an identity working in one directory."""

    def __init__(self, name: str, where: Path, label: str) -> None:
        self.name, self.where, self.label = name, where, label

    def bd(self, *args: str, show: bool = True, ok: bool = True) -> str:
        env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": self.name}
        proc = subprocess.run([sys.executable, "-m", "beadsmail", *args], cwd=self.where,
                              env=env, capture_output=True, text=True)
        if show:
            print(f"{BOLD}[{self.name} @ {self.label}]$ bd {shlex.join(args)}{RESET}")
            for line in (proc.stdout + proc.stderr).rstrip().splitlines():
                print(f"  {line}")
            print()
        if ok and proc.returncode != 0:
            raise SystemExit(f"demo step failed (exit {proc.returncode}): bd {shlex.join(args)}")
        return proc.stdout

    def data(self, *args: str) -> dict | list:
        return json.loads(self.bd(*args, "--json", show=False))


def say(text: str) -> None:
    print(f"{DIM}# {text}{RESET}")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="beadsmail-demo-"))
    repo, remote, laptop = root / "project", root / "remote.git", root / "laptop"
    say(f"a fresh repository in {root}, with a worktree per agent")
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# project\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial commit")
    for name in ("worker-1", "reviewer", "helper"):
        git(repo, "worktree", "add", "-q", "-b", name, str(root / name))
    manager = Agent("manager", repo, "project")
    worker = Agent("worker-1", root / "worker-1", "worker-1 worktree")
    reviewer = Agent("reviewer", root / "reviewer", "reviewer worktree")

    manager.bd("init")
    say("register the team (the registry, like every record, is a commit on refs/heads/beadsmail)")
    manager.bd("agent", "register", "--id", "manager", "--name", "Manager", "--role", "manager",
               "--group", "core", "--tier", "1")
    manager.bd("agent", "register", "--id", "worker-1", "--name", "Worker One", "--role", "project",
               "--group", "core", "--tier", "2", show=False)
    manager.bd("agent", "register", "--id", "reviewer", "--name", "Reviewer", "--role", "reviewer",
               "--group", "core", "--tier", "2", show=False)
    manager.bd("agent", "list")

    say("mail between worktrees: an urgent request, read, a threaded reply, an ack")
    sent = manager.data("mail", "send", "worker-1", "-s", "Parser task",
                        "-m", "Please write the JSONL parser.", "--urgent", "--action", "respond")
    msg = sent["id"]
    worker.bd("mail", "inbox")
    worker.bd("mail", "read", msg)
    worker.bd("mail", "reply", msg, "-m", "On it, tests first.")
    worker.bd("mail", "ack", msg)
    manager.bd("show", msg, "--thread")

    say("the task board: optimistic locking by version, review queue on entering review")
    task = manager.data("task", "create", "--title", "Write the JSONL parser", "--priority", "high",
                        "--assign", "worker-1")
    tid = task["task"]["id"]
    manager.bd("task", "status", tid, "in_progress", "--version", "1")
    say("a stale version is a conflict, not a silent overwrite")
    reviewer.bd("task", "status", tid, "todo", "--version", "1", ok=False)
    worker.bd("task", "comment", tid, "--content", "Parser done; 14 tests.")
    manager.bd("task", "status", tid, "review", "--version", "2")
    reviewer.bd("channel", "read", "review-queue")
    reviewer.bd("task", "status", tid, "done", "--version", "3")
    manager.bd("task", "board")

    say("a broadcast: per-recipient state, one reader does not hide it from another")
    manager.bd("mail", "send", "*", "-s", "Standup in 5", "-m", "Post status to #standup.",
               "--type", "broadcast")
    worker.bd("mail", "inbox")

    say("another machine: a clone synced through a bare remote with `bd sync`")
    git(root, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    manager.bd("sync")
    git(root, "clone", "-q", str(remote), str(laptop))
    remote_agent = Agent("architect", laptop, "laptop clone")
    remote_agent.bd("sync")
    remote_agent.bd("mail", "send", "manager", "-s", "Design review",
                    "-m", "The store layout looks right to me.")
    remote_agent.bd("sync")
    manager.bd("sync")
    manager.bd("mail", "inbox")

    say("an agent that speaks MCP: bd setup claude writes its .mcp.json; the SDK's own client "
        "starts bd mcp from it")
    from mcp_agent import run as mcp_agent

    mcp_agent(root / "helper", manager, GIT_ENV, say)

    say("the overview, and a health check")
    manager.bd("status")
    manager.bd("doctor")
    say(f"git log of the store branch ({repo}):")
    log = subprocess.run(["git", "log", "--oneline", "-8", "beadsmail"], cwd=repo,
                         capture_output=True, text=True).stdout
    print("".join(f"  {line}\n" for line in log.splitlines()))
    say(f"done; everything is left in {root} to explore (bd where, git log beadsmail)")


if __name__ == "__main__":
    main()
