"""Local upkeep of the index: the WAL stays bounded, and commands ride out rebuilds."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import GIT_ENV, run_bd_proc
from helpers import write_message

import beadsmail.index as index_mod
from beadsmail import records
from beadsmail.workspace import Workspace


def _wal(ws: Workspace) -> int:
    target = os.readlink(ws.index_path)
    try:
        return (ws.index_path.parent / (target + "-wal")).stat().st_size
    except FileNotFoundError:
        return 0


def test_the_wal_is_truncated_when_writes_come_one_process_at_a_time(repo: Path, bd,
                                                                   monkeypatch) -> None:
    monkeypatch.setattr(index_mod, "WAL_LIMIT", 256 << 10, raising=False)
    assert bd(repo, "init").code == 0
    sizes, kept = [], []
    for i in range(120):
        ws = Workspace.open(repo)  # a process that leaves without closing its connection
        write_message(ws, subject=f"m{i}", body="x" * 500)
        sizes.append(_wal(ws))
        kept.append(ws)
    assert max(sizes) <= (256 << 10) + (256 << 10), sizes  # the limit and one write's pages
    assert max(sizes) > 0 and sum(b < a for a, b in zip(sizes, sizes[1:], strict=False)) >= 2, sizes
    shown = bd(repo, "mail", "inbox", "--identity", "bob", "--json")
    assert shown.code == 0 and len(shown.json()) == 120


def _seed(repo: Path, n: int) -> None:
    """``n`` messages written in bulk, so that a rebuild takes a while."""
    ws = Workspace.open(repo)
    replica, day = ws.replica, datetime.now(UTC).strftime("%Y-%m-%d")
    lines = []
    for i in range(n):
        rid = records.new_id()
        lines.append(records.dumps({
            "v": 1, "id": rid, "kind": "message", "actor": "seed", "clock": i + 1,
            "created_at": "2026-11-23T10:00:00.000000Z", "replica": replica, "from": "seed",
            "to": [f"agent-{i % 50}"], "subject": f"s{i}", "body": "b" * 200, "priority": 2,
            "type": "request", "thread_id": rid, "replies_to": None, "ephemeral": True,
            "metadata": {}, "action_requested": "none"}))
    ws.writer.append(replica, lines, "seed", "seed", day, 1 << 20)
    ws.close()


@pytest.mark.slow
def test_sends_and_reads_during_repeated_rebuilds_never_fail(repo: Path, bd) -> None:
    assert bd(repo, "init").code == 0
    _seed(repo, 20000)
    env = {k: v for k, v in os.environ.items() if k != "BEADS_IDENTITY"} | GIT_ENV
    rebuilds = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys\n"
         "for _ in range(6):\n"
         "    r = subprocess.run([sys.executable, '-m', 'beadsmail', 'index', 'rebuild'],"
         " capture_output=True, text=True)\n"
         "    print(r.returncode, r.stderr.strip().replace('\\n', ' '), flush=True)\n"],
        cwd=repo, env=env, stdout=subprocess.PIPE, text=True)
    failures, sent, during = [], [], 0
    while rebuilds.poll() is None or not sent:
        during += rebuilds.poll() is None
        send = run_bd_proc(repo, "mail", "send", "reader", "-s", f"n{len(sent)}", "-m", "x",
                           "--json", env={"BEADS_IDENTITY": "writer"})
        if send.code:
            failures.append(("send", send.err))
        else:
            sent.append(send.json()["id"])
        for args in (("mail", "inbox", "--json"), ("mail", "check")):
            read = run_bd_proc(repo, *args, env={"BEADS_IDENTITY": "reader"})
            if read.code:
                failures.append((args[1], read.err))
    outcomes = rebuilds.communicate()[0].splitlines()
    assert failures == []
    assert [line.split(" ", 1)[0] for line in outcomes] == ["0"] * 6, outcomes
    assert during >= 1
    inbox = run_bd_proc(repo, "mail", "inbox", "--json", env={"BEADS_IDENTITY": "reader"})
    assert sorted(m["id"] for m in inbox.json()) == sorted(sent)
