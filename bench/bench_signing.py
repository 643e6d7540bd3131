"""Signed feeds: what signing and verifying cost, as ratios measured in one run.

- ``bd mail send`` processes (every write signs) against the same command with the
  signer replaced by one that writes the records unsigned (``UNSIGNED`` below: the
  same process otherwise, started the same way). Goal <= 1.1.
- A full rebuild (``bd index rebuild`` in-process) of a store of 20,000 signed records
  in writes of 1 and of 50 records, with verification (``warn``) against ``off``, the
  signature cache warm as after any earlier fold. Goal >= 0.8 (speed ratio).
- Receiving by sync: a second clone pulls 10,000 signed records (writes of 50) and
  verifies them. Goal >= 5,000 records/s.
- ``bd mail check`` against ``python -c pass`` with signing on: nothing is verified
  when nothing is new, and nothing of the crypto is imported.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import GIT_ENV, bd_args, floors, median_ms, new_repo, processes_in_turn_ms, table

SEND_RUNS = 15
# ``bd`` with the signer's work taken out of the write: the baseline of the send ratio
UNSIGNED = (
    "import sys, beadsmail.records as r, beadsmail.signing.writer as w\n"
    "w.Signer.seal = lambda self, records, make_key: (records, [r.dumps(x) for x in records])\n"
    "w.Signer.written = lambda self, lines, commit: None\n"
    "w.Signer.folded = lambda self, conn, actor: None\n"
    "w.Signer.may_write = lambda self, actor: None\n"
    "from beadsmail.cli import run\n"
    "run()\n")


def _store(records: int, per_write: int, policy: str = "warn") -> Path:
    from beadsmail.workspace import Workspace

    repo = new_repo("beadsmail-bench-signing-")
    (repo / ".beads").mkdir(exist_ok=True)
    ws = Workspace.open(repo)  # (the clone's state directory, for the approval)
    ws.close()
    _set_policy(repo, policy)
    ws = Workspace.open(repo)
    fields = {"from": "alice", "to": ["bob"], "subject": "s", "body": "b" * 200, "priority": 2,
              "type": "status", "thread_id": "bd-0000000000000", "replies_to": None,
              "ephemeral": True, "metadata": {}, "action_requested": "none"}
    for _ in range(records // per_write):
        ws.write("alice", [("message", dict(fields)) for _ in range(per_write)], "bench")
    ws.close()
    return repo


def _set_policy(repo: Path, policy: str) -> None:
    (repo / ".beads" / "config.yaml").write_text(f"security:\n  signatures: {policy}\n")
    if policy == "off":  # (turning verification off takes the clone's approval)
        from beadsmail import approvals

        approvals.trust(repo, repo / ".git" / "beadsmail", ["config.yaml"])


def _rebuild_ms(repo: Path, policy: str) -> float:
    from beadsmail.workspace import Workspace

    _set_policy(repo, policy)

    def once() -> None:
        ws = Workspace.open(repo)
        assert ws.policy == policy, (ws.policy, policy)
        ws.rebuild_index()
        ws.close()

    return median_ms(once, runs=5, warmup=1)


def _rebuilds() -> list[list[object]]:
    rows = []
    for per_write in (1, 50):
        repo = _store(20_000 if per_write > 1 else 5_000, per_write)
        on, off = _rebuild_ms(repo, "warn"), _rebuild_ms(repo, "off")
        n = 20_000 if per_write > 1 else 5_000
        rows.append([f"rebuild {n} records, {per_write}/write", f"{on:.0f}", f"{off:.0f}",
                     f"{off / on:.2f}", ">= 0.8"])
        shutil.rmtree(repo, ignore_errors=True)
    return rows


def _sends() -> list[list[object]]:
    signed = new_repo("beadsmail-bench-signing-send-")
    env = {**GIT_ENV, "BEADS_IDENTITY": "alice"}
    procs = {"signed": (bd_args("mail", "send", "bob", "-s", "s", "-m", "b"), signed, env)}
    for repo in (signed, unsigned := new_repo("beadsmail-bench-signing-send-")):
        subprocess.run(bd_args("init"), cwd=repo, env=env, check=True, capture_output=True)
    subprocess.run(bd_args("mail", "send", "bob", "-s", "first", "-m", "b"), cwd=signed,
                   env=env, check=True, capture_output=True)
    procs["unsigned"] = ([sys.executable, "-c", UNSIGNED, "mail", "send", "bob", "-s", "s",
                          "-m", "b"], unsigned, env)
    subprocess.run(procs["unsigned"][0], cwd=unsigned, env=procs["unsigned"][2], check=True,
                   capture_output=True)
    times = processes_in_turn_ms(procs, runs=SEND_RUNS)
    check = processes_in_turn_ms({"check": (bd_args("mail", "check"), signed, env),
                                  "pass": ([sys.executable, "-c", "pass"], signed, env)},
                                 runs=SEND_RUNS)
    return [["bd mail send", f"{times['signed']:.1f}", f"{times['unsigned']:.1f}",
             f"{times['signed'] / times['unsigned']:.2f}", "<= 1.1"],
            ["bd mail check vs python -c pass", f"{check['check']:.1f}", f"{check['pass']:.1f}",
             f"{check['check'] / check['pass']:.2f}", "(floor)"]]


def _receive() -> list[list[object]]:
    from beadsmail import sync
    from beadsmail.workspace import Workspace

    sender = _store(10_000, 50)
    root = Path(tempfile.mkdtemp(prefix="beadsmail-bench-signing-sync-"))
    remote = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "-C", str(sender), "remote", "add", "origin", str(remote)], check=True)
    ws = Workspace.open(sender)
    sync.sync(ws)
    ws.close()
    receiver = root / "receiver"
    subprocess.run(["git", "clone", "-q", str(remote), str(receiver)], check=True, env=GIT_ENV)
    ws = Workspace.open(receiver)
    start = time.perf_counter()
    sync.sync(ws)
    took = time.perf_counter() - start
    ws.refresh()
    count = ws.index.counts().get("message", 0)
    ws.close()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(sender, ignore_errors=True)
    return [["receive by sync (signed)", f"{took * 1000:.0f}", "-",
             f"{count / took:,.0f} rec/s", ">= 5,000 rec/s"]]


def main() -> None:
    rows = _sends() + _rebuilds() + _receive()
    print(table("signing: with / without, one run", ["what", "with ms", "without ms", "ratio",
                                                     "goal"], rows))
    print(f"floors: {floors()}")
