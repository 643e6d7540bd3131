"""Workloads for the reliability tests: a crash loop and a concurrent mix of agents.

``crash_loop`` runs real ``bd`` writers one after another and SIGKILLs each at a
random moment (sometimes its background packer too), remembering every write
that reported success; ``verify_store`` then proves each one is still there.
``concurrent_mix`` runs several agents at once across checkouts for a bounded
time and returns exactly what each says it stored. The short test in the
default suite and the long ``torture`` runs use the same code with other sizes.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import faults


@dataclass
class Ledger:
    """What processes reported as stored (so must survive anything)."""

    sent: set[str] = field(default_factory=set)
    acked: dict[str, str] = field(default_factory=dict)  # message id -> who acked it
    events: set[str] = field(default_factory=set)
    tasks: dict[str, int] = field(default_factory=dict)  # task id -> version last seen
    moves: list[tuple[str, int, str]] = field(default_factory=list)  # (task, from version, event)

    def ids(self) -> set[str]:
        return self.sent | self.events | set(self.tasks)


def _ok(run: faults.Run) -> dict | list | None:
    """A run's JSON if it finished; a run not killed must have succeeded."""
    if run.killed:
        return run.json()
    assert run.code == 0, (f"bd {' '.join(run.args)} exited {run.code} after earlier kills: "
                           f"{run.err} {run.out}")
    return run.json()


def create_tasks(repo: Path, ledger: Ledger, n: int) -> None:
    for i in range(n):
        run = faults.run_killed(repo, ("task", "create", "--title", f"task {i}", "--json",
                                       "--identity", "lead"), None)
        task = _ok(run)["task"]
        ledger.tasks[task["id"]] = task["version"]


def current_version(repo: Path, task_id: str) -> tuple[int, str]:
    from beadsmail.index import tasks as idx
    from beadsmail.workspace import Workspace

    ws = Workspace.open(repo)
    try:
        ws.refresh()
        task = idx.get(ws.index.conn, task_id)
        return task["version"], task["status"]
    finally:
        ws.close()


def one_op(repo: Path, rnd: random.Random, ledger: Ledger, ops: tuple[str, ...],
           delay: float | None, remote: str | None = None) -> faults.Run:
    """Run one random operation (killed after ``delay``) and record what it reported."""
    op = rnd.choice(ops)
    if op == "ack" and not ledger.sent - ledger.acked.keys():
        op = "send"
    if op == "send":
        run = faults.run_killed(repo, ("mail", "send", "bob", "-s", f"s{rnd.randrange(10**6)}",
                                       "-m", "body " * rnd.randrange(1, 50), "--identity", "alice",
                                       "--json"), delay)
        done = _ok(run)
        if done:
            ledger.sent.add(done["id"])
    elif op == "ack":
        target = rnd.choice(sorted(ledger.sent - ledger.acked.keys()))
        run = faults.run_killed(repo, ("mail", "ack", target, "--identity", "bob", "--json"), delay)
        done = _ok(run)
        if done:
            ledger.acked.update({m: "bob" for m in done["acknowledged"]})
    elif op == "move":
        task = rnd.choice(sorted(ledger.tasks))
        version, status = current_version(repo, task)
        to = rnd.choice([s for s in ("backlog", "todo", "in_progress", "done") if s != status])
        run = faults.run_killed(repo, ("task", "status", task, to, "--version", str(version),
                                       "--identity", "lead", "--json"), delay)
        done = _ok(run)
        if done:
            ledger.events.add(done["event"])
            ledger.moves.append((task, version, done["event"]))
    else:  # sync
        run = faults.run_killed(repo, ("sync", remote or "origin", "--json"), delay)
        _ok(run)
    return run


def crash_loop(repo: Path, rnd: random.Random, runs: int, tally: faults.Tally,
               ops: tuple[str, ...] = ("send", "send", "ack", "move"),
               min_delay: float = 0.03, max_delay: float = 0.25, kill_packers_every: int = 3,
               remote: str | None = None, ledger: Ledger | None = None) -> Ledger:
    """``runs`` operations, most killed at a random moment; packers killed now and then.

    A kill lands at most a little past how long an operation that ran to the end took
    (the median so far), so that most kills hit a live process however fast this
    machine runs them."""
    ledger = ledger or Ledger()
    common = repo / ".git"
    lasted: list[float] = []
    for i in range(runs):
        upper = min(max_delay, 1.1 * statistics.median(lasted)) if lasted else max_delay
        delay = rnd.uniform(min_delay, max(upper, min_delay)) if rnd.random() < 0.85 else None
        started = time.monotonic()
        run = one_op(repo, rnd, ledger, ops, delay, remote)
        if not run.killed:
            lasted.append(time.monotonic() - started)
        tally.runs += 1
        tally.kills += run.killed
        if kill_packers_every and i % kill_packers_every == 0:
            if not faults.packers(common):  # as a write past store.pack_after starts it
                faults.start_packer(common)
            time.sleep(rnd.uniform(0.0, 0.08))
            tally.packer_kills += faults.kill_packers(common)
    faults.wait_packers(common)
    return ledger


def check_ledger(repo: Path, ledger: Ledger) -> int:
    """Every reported write is in the index with the state it reported; records checked."""
    from beadsmail.index import mail as mail_index
    from beadsmail.index import tasks as idx
    from beadsmail.workspace import Workspace

    ws = Workspace.open(repo)
    try:
        ws.refresh()
        conn = ws.index.conn
        for message_id, who in ledger.acked.items():
            assert mail_index.state(conn, message_id, who) >= 3, f"ack of {message_id} lost"
        for task, version, event in ledger.moves:
            history = {h["event"]: h for h in idx.history(conn, task)}
            assert event in history and history[event]["version"] == version + 1, \
                f"move {event} of {task} from version {version} lost"
        return len(ledger.ids()) + len(ledger.acked)
    finally:
        ws.close()


def one_winner_per_version(repo: Path, wins: list[tuple[str, int, str]]) -> int:
    """Movers on different clones may each win version n locally; once synced, exactly one
    of them holds version n + 1 in the task's history and every other one is a recorded
    conflict, never lost and never applied twice. Returns how many moves were checked."""
    from beadsmail.index import tasks as idx
    from beadsmail.workspace import Workspace

    raced: dict[tuple[str, int], list[str]] = {}
    for task, version, event in wins:
        raced.setdefault((task, version), []).append(event)
    ws = Workspace.open(repo)
    try:
        ws.refresh()
        conn = ws.index.conn
        lost = {c["event"] for c in idx.conflicts(conn)}
        for (task, version), events in raced.items():
            applied = {h["event"] for h in idx.history(conn, task)}
            winners = [e for e in events if e in applied]
            assert len(winners) <= 1, f"{task}: two movers won version {version}: {winners}"
            assert all(e in lost for e in events if e not in winners), (task, version, events)
        return len(wins)
    finally:
        ws.close()


def bare_remote(repo: Path, name: str = "origin") -> Path:
    """A local bare repository as ``origin`` of ``repo``."""
    from conftest import git

    bare = repo.parent / f"{repo.name}-remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(repo, "remote", "add", name, str(bare))
    return bare


@dataclass
class Outcome:
    """What the agents of a concurrent run reported, exactly."""

    sent: list[str] = field(default_factory=list)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (message, who)
    wins: list[tuple[str, int, str]] = field(default_factory=list)  # (task, from version, event)
    conflicts: int = 0
    syncs: int = 0
    failures: list[str] = field(default_factory=list)


def _bd(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*faults.BD, *args], cwd=cwd, env=faults.env(), capture_output=True,
                          text=True, timeout=120)


def _agent(n: int, cwd: Path, going, seed: int, tasks: list[str], out: Outcome,
           lock, sync_remote: str | None, synced: bool) -> None:
    """One agent: sends, acks its own inbox, moves tasks by the version it read, syncs
    (``sync_remote``); ``synced``: some agent syncs this store with another clone.
    It works while ``going()`` says so."""
    import json

    rnd = random.Random(seed)
    me, peer = f"agent-{n}", f"agent-{(n + 1) % 8}"
    while going():
        op = rnd.choice(("send", "send", "ack", "move", "move") + (("sync",) if sync_remote else ()))
        if op == "send":
            p = _bd(cwd, "mail", "send", peer, "-s", f"from {me}", "-m", "hi", "--identity", me,
                    "--json")
            if p.returncode == 0:
                with lock:
                    out.sent.append(json.loads(p.stdout)["id"])
        elif op == "ack":
            p = _bd(cwd, "mail", "ack", "--all", "--identity", me, "--json")
            if p.returncode == 0:
                with lock:
                    out.acked += [(m, me) for m in json.loads(p.stdout)["acknowledged"]]
        elif op == "move":
            task = rnd.choice(tasks)
            shown = _bd(cwd, "task", "show", task, "--json")
            if shown.returncode != 0:
                with lock:
                    out.failures.append(shown.stderr + shown.stdout)
                continue
            current = json.loads(shown.stdout)["task"]
            to = rnd.choice([s for s in ("backlog", "todo", "in_progress", "done")
                             if s != current["status"]])
            p = _bd(cwd, "task", "status", task, to, "--version", str(current["version"]),
                    "--identity", "lead", "--json")
            if p.returncode == 0:
                with lock:
                    out.wins.append((task, current["version"], json.loads(p.stdout)["event"]))
                continue
            error = json.loads(p.stdout)["error"] if p.returncode == 1 else {}
            if error.get("type") == "conflict":
                with lock:
                    out.conflicts += 1
                continue
            if synced and error.get("message", "").endswith(f"already in {to}; nothing to do"):
                # a sync between the show and the move merged another clone's move of the
                # same version, which won the race and had put the task where we wanted it
                with lock:
                    out.conflicts += 1
                continue
        else:
            p = _bd(cwd, "sync", sync_remote, "--json")
            if p.returncode == 0:
                with lock:
                    out.syncs += 1
        if p.returncode != 0:
            with lock:
                out.failures.append(f"{op} in {cwd.name}: {p.stderr.strip()} {p.stdout.strip()}")


def concurrent_mix(checkouts: list[Path], seconds: float, tasks: list[str], seed: int,
                   agents: int = 8, sync_remote: dict[Path, str] | None = None,
                   until=None, limit: float = 600) -> Outcome:
    """``agents`` agents spread over ``checkouts``, all at once, for ``seconds`` and then
    until ``until(outcome)`` holds (however slowly this machine runs them), giving up
    after ``limit`` seconds."""
    import threading

    out, lock = Outcome(), threading.Lock()
    started = time.monotonic()

    def going() -> bool:
        elapsed = time.monotonic() - started
        if elapsed < seconds:
            return True
        with lock:
            return until is not None and not until(out) and elapsed < limit

    threads = [threading.Thread(target=_agent, args=(
        n, checkouts[n % len(checkouts)], going, seed + n, tasks, out, lock,
        (sync_remote or {}).get(checkouts[n % len(checkouts)]), bool(sync_remote)))
        for n in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def check_outcome(repo: Path, out: Outcome) -> int:
    """Exact counts, no duplicates, one winner per task version; records checked."""
    from beadsmail.index import mail as mail_index
    from beadsmail.index import tasks as idx
    from beadsmail.workspace import Workspace

    assert not out.failures, out.failures[:5]
    assert len(out.sent) == len(set(out.sent)), "an id was handed out twice"
    versions = [(task, version) for task, version, _ in out.wins]
    assert len(versions) == len(set(versions)), "two movers won the same version"
    ws = Workspace.open(repo)
    try:
        ws.refresh()
        conn = ws.index.conn
        stored = {r[0] for r in conn.execute(
            "SELECT id FROM messages WHERE sender LIKE 'agent-%'")}
        assert stored == set(out.sent), (len(stored), len(out.sent))
        for message, who in out.acked:
            assert mail_index.state(conn, message, who) == 3
        for task, version, event in out.wins:
            history = {h["version"]: h["event"] for h in idx.history(conn, task)}
            assert history[version + 1] == event, (task, version, event)
        applied = sum(len(idx.history(conn, t)) - 1 for t in {w[0] for w in out.wins})
        assert applied == len(out.wins), "every applied move was reported by exactly one mover"
        lines = _all_lines(repo)
        assert len(lines) == len(set(lines)), "a record was written twice"
        return len(stored) + len(out.acked) + len(out.wins)
    finally:
        ws.close()


def _all_lines(repo: Path) -> list[str]:
    """The id of every line of every segment of the store (parsed from git's own view)."""
    import json

    ids = []
    for path in faults.segments(repo):
        for raw in faults.segment_bytes(repo, path).splitlines():
            ids.append(json.loads(raw)["id"])
    return ids
