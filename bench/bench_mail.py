"""Mail benchmarks: inbox, send and check processes; wake latency and idle cost of a waiter.

Goals (from the mail and coordination issues), with 100,000 messages stored:
- ``bd mail inbox --json`` process vs ``python -c "import typer"``: ratio <= 1.3;
- ``bd mail send`` process vs the same floor: ratio <= 1.6, and within 1.1x of
  the same send on a 1,000-message store;
- wake latency (a write in one process -> ``bd mail inbox --wait`` returns in
  another): median <= 100 ms; an idle waiter uses <= 1% CPU;
- ``bd mail check`` with nothing new vs ``python -c pass``: ratio <= 3.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from beadsmail import records
from beadsmail.workspace import Workspace
from bench.harness import (
    GIT_ENV,
    bd_args,
    floors,
    new_repo,
    process_ms,
    processes_in_turn_ms,
    table,
)

BATCH = 2000
AGENTS = 500
READER = "reader"
BODY = "A message body of a realistic length for an agent note. " * 3


def _message(i: int, replica: str, to: str, sender: str) -> dict:
    rid = records.new_id()
    return {"v": 1, "id": rid, "kind": "message", "actor": sender, "clock": i + 1,
            "created_at": "2026-11-23T10:00:00.000000Z", "replica": replica, "from": sender,
            "to": [to], "subject": f"Subject number {i}", "body": BODY, "priority": i % 5,
            "type": "request", "thread_id": rid, "replies_to": None, "ephemeral": True,
            "metadata": {}, "action_requested": "none"}


def build(n: int) -> Workspace:
    """``n`` messages between ``AGENTS`` agents; the reader has 200 acked and 20 open ones."""
    ws = Workspace.open(new_repo("beadsmail-bench-mail-"))
    replica, writer = ws.replica, ws.writer
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    for start in range(0, n - 220, BATCH):
        lines = [records.dumps(_message(i, replica, f"agent-{i % AGENTS}",
                                        f"agent-{(i * 7 + 1) % AGENTS}"))
                 for i in range(start, min(n - 220, start + BATCH))]
        writer.append(replica, lines, "bench: bulk load", "bench", day, 1 << 20)
    ws.refresh()
    mine = [_message(n - 220 + i, replica, READER, f"agent-{i % AGENTS}") for i in range(220)]
    fields = [{k: v for k, v in m.items() if k not in ("v", "kind", "actor", "clock",
                                                       "created_at", "replica")} for m in mine]
    ws.write("bench", [("message", f) for f in fields], "bench: reader's mail")
    ws.write(READER, [("receipt", {"message": f["id"], "recipient": READER, "state": "acked"})
                      for f in fields[:200]], "bench: reader acked")
    return ws


def env(identity: str) -> dict:
    return {**GIT_ENV, "BEADS_IDENTITY": identity}


def send_ms(big: Workspace, small: Workspace, runs: int = 15) -> tuple[float, float]:
    """The same send into each store in turn: their ratio is what the goal is about."""
    args = bd_args("mail", "send", "agent-1", "-s", "bench", "-m", "hello")
    ms = processes_in_turn_ms({"big": (args, big.loc.worktree, env("bench-sender")),
                               "small": (args, small.loc.worktree, env("bench-sender"))}, runs)
    return ms["big"], ms["small"]


def _spawn_waiter(ws: Workspace, identity: str, seconds: int = 30) -> subprocess.Popen:
    full = {**os.environ, **env(identity)}
    return subprocess.Popen(bd_args("mail", "inbox", "--wait", str(seconds), "--json"),
                            cwd=ws.loc.worktree, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def wake_latency_ms(ws: Workspace, runs: int = 11) -> list[float]:
    """Write in this process, time until a waiting ``bd`` process has printed the mail."""
    out = []
    for i in range(runs):
        me = f"waiter-{i}"
        waiter = _spawn_waiter(ws, me)
        time.sleep(0.8)  # let it start and settle into polling
        t = time.perf_counter()
        ws.write("bench", [("message", {
            "from": "bench", "to": [me], "subject": "wake up", "body": "now", "priority": 2,
            "type": "request", "thread_id": records.new_id(), "replies_to": None,
            "ephemeral": True, "metadata": {}, "action_requested": "none"})], "bench: wake")
        waiter.stdout.read()
        waiter.wait()
        out.append((time.perf_counter() - t) * 1000)
    return out


def idle_cpu_percent(ws: Workspace, seconds: float = 4.0) -> float:
    """CPU used by a waiter with nothing arriving, as a share of one core."""
    waiter = _spawn_waiter(ws, "idle-waiter", seconds=int(seconds) + 10)
    time.sleep(1.0)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        with open(f"/proc/{waiter.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    before, t = cpu(), time.perf_counter()
    time.sleep(seconds)
    used, elapsed = cpu() - before, time.perf_counter() - t
    waiter.kill()
    waiter.wait()
    return 100 * used / elapsed


def main() -> None:
    # Installed packages run from cached bytecode; let the warm-up runs write it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    size = int(os.environ.get("BEADS_BENCH_MAIL_SIZE", "100000"))
    t = time.perf_counter()
    big = build(size)
    print(f"built a store of {size:,} messages in {time.perf_counter() - t:.1f}s", flush=True)
    small = build(1000)
    fl = floors()
    pass_ms, typer_ms = fl["python -c pass"], fl['python -c "import typer"']
    cwd = big.loc.worktree
    inbox = process_ms(bd_args("mail", "inbox", "--json"), cwd=cwd, env=env(READER))
    # the check's goal is a ratio to `python -c pass`: measure the two in turn
    paired = processes_in_turn_ms({
        "check": (bd_args("mail", "check"), cwd, env("agent-1-nothing-new")),
        "pass": ([sys.executable, "-c", "pass"], None, None)})
    check, pass_ms = paired["check"], paired["pass"]
    send_big, send_small = send_ms(big, small)
    wake = wake_latency_ms(big)
    idle = idle_cpu_percent(big)
    print(table(f"mail processes (median of 15), python {sys.version.split()[0]}, "
                f"{size:,} messages", ["command", "ms", "ratio", "goal"], [
                    ["python -c pass", pass_ms, "", ""],
                    ['python -c "import typer"', typer_ms, "", ""],
                    ["bd mail inbox --json", inbox, inbox / typer_ms, "<= 1.3 vs import typer"],
                    ["bd mail send", send_big, send_big / typer_ms, "<= 1.6 vs import typer"],
                    ["bd mail send (1,000 messages)", send_small, send_big / send_small,
                     "<= 1.1 (big/small)"],
                    ["bd mail check (nothing new)", check, check / pass_ms, "<= 3 vs python -c pass"],
                ]))
    print(table("waking", ["figure", "value", "goal"], [
        ["wake latency median (ms)", statistics.median(wake), "<= 100"],
        ["wake latency max (ms)", max(wake), ""],
        ["idle waiter CPU (% of a core)", idle, "<= 1"],
    ]))


if __name__ == "__main__":
    main()
