"""Arrival hooks: only folded records, once per message id, bounded time, nothing dropped."""

from __future__ import annotations

import json
import time
from pathlib import Path

import faults
import pytest
from conftest import git
from helpers import approve_hooks
from test_sync import do_sync, hook, logged, make_clones, send

from beadsmail import mail
from beadsmail.workspace import Workspace


@pytest.fixture
def net(tmp_path: Path):
    return make_clones(tmp_path, n=2)


def _ids(log: Path) -> list[str]:
    return [line.split()[0] for line in logged(log)]


def test_a_line_repeated_or_rejected_fires_once_or_never(net) -> None:
    remote, clones, wts = net
    log = hook(wts[1], "bob")
    do_sync(clones[0])
    do_sync(clones[1])
    sent = send(clones[0], "alice", "bob", "once")
    path = next(p for p in faults.segments(clones[0]))
    line = faults.segment_bytes(clones[0], path).splitlines()[-1]
    bad = json.loads(line)
    bad.update(id="bd-zzzzzzzzzzzzz", priority="not a priority")  # the fold rejects it
    faults.commit_segment(clones[0], path, faults.segment_bytes(clones[0], path)
                          + (line + b"\n") * 300 + json.dumps(bad).encode() + b"\n")
    do_sync(clones[0])
    report = do_sync(clones[1])
    assert [m["id"] for m in report["new_messages"]] == [sent["id"]]
    assert _ids(log) == [sent["id"]]


def test_the_other_sides_cleanup_and_compaction_never_refire(net, bd) -> None:
    remote, clones, wts = net
    log = hook(wts[1], "bob")
    do_sync(clones[0])
    old = send(clones[0], "alice", "bob", "history")["id"]
    ws = Workspace.open(clones[0])
    mail.send(ws, "alice", ["bob"], "permanent history", "kept by the cleanup", ephemeral=False)
    ws.close()
    do_sync(clones[0])
    git(clones[1], "fetch", "-q", "origin")  # already here at the first sync: history
    do_sync(clones[1])
    new = send(clones[0], "alice", "bob", "arrives")["id"]
    do_sync(clones[0])
    assert [m["id"] for m in do_sync(clones[1])["new_messages"]] == [new]
    for mid in (old, new):
        assert bd(wts[1], "mail", "ack", mid, "--identity", "bob").code == 0
    do_sync(clones[1])
    do_sync(clones[0])
    cleaned = bd(clones[0], "cleanup", "--ephemeral", "--force", "--json").json()
    assert cleaned["count"] == 2 and cleaned["compacted_segments"]
    send(clones[0], "alice", "carol", "not for bob")
    do_sync(clones[0])
    report = do_sync(clones[1])
    assert report["new_messages"] == [] and _ids(log) == [new]
    assert bd(clones[1], "index", "rebuild").code == 0
    assert do_sync(clones[1])["new_messages"] == [] and _ids(log) == [new]


def test_twenty_arrivals_and_a_hanging_hook_cost_one_timeout_and_run_later(net) -> None:
    remote, clones, wts = net
    log = hook(wts[1], "bob")
    script = wts[1] / ".beads" / "hooks" / "on_message"
    recorder = script.read_text()
    script.write_text(recorder + "sleep 600\n")  # logs, then hangs
    (wts[1] / ".beads" / "config.yaml").write_text("identity: bob\nhooks:\n  timeout: 2\n")
    approve_hooks(wts[1])
    do_sync(clones[0])
    do_sync(clones[1])
    sent = [send(clones[0], "alice", "bob", f"m{i}")["id"] for i in range(20)]
    do_sync(clones[0])
    started = time.monotonic()
    report = do_sync(wts[1])
    took = time.monotonic() - started
    assert len(report["new_messages"]) == 20
    assert report["hooks_deferred"] == 19 and _ids(log) == sent[:1]
    assert took < 20, took  # one hook timeout (2 s) and the sync itself, not 20 of them
    assert any("hooks.budget" in w for w in report["warnings"])
    script.write_text(recorder)  # fixed: the next syncs run what is left, once each
    approve_hooks(wts[1])
    while (report := do_sync(wts[1]))["hooks_deferred"]:
        assert report["new_messages"] == []
    assert _ids(log) == sent


def test_an_unapproved_hook_does_not_fire_on_arrival(net) -> None:
    remote, clones, wts = net
    log = hook(wts[1], "bob")
    script = wts[1] / ".beads" / "hooks" / "on_message"
    script.write_text(script.read_text() + "# changed by a pulled commit\n")
    do_sync(clones[0])
    do_sync(clones[1])
    sent = send(clones[0], "alice", "bob", "hi")["id"]
    do_sync(clones[0])
    report = do_sync(wts[1])
    assert [m["id"] for m in report["new_messages"]] == [sent] and logged(log) == []
    assert [w for w in report["warnings"] if "bd hooks trust" in w]
    assert report["hooks_held"] == 1
    ws = Workspace.open(wts[1])
    assert mail.inbox(ws, "bob")[0]["id"] == sent  # the mail itself is there
    again = do_sync(wts[1])
    assert again["hooks_held"] == 1 and not [w for w in again["warnings"] if "hook" in w]
    approve_hooks(wts[1])  # reviewed and approved: it runs for what arrived meanwhile
    assert do_sync(wts[1])["hooks_held"] == 0 and _ids(log) == [sent]
    do_sync(wts[1])
    assert _ids(log) == [sent]
