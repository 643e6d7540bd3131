"""Sync between clones: a bare remote, clones with linked worktrees, real transports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GIT_ENV, fsck, git, make_repo
from helpers import approve_hooks, write_message

from beadsmail import mail, sync, tasks
from beadsmail.workspace import Workspace

# -- fixtures -------------------------------------------------------------------


def make_clones(root: Path, n: int = 3, store: bool = True) -> tuple[Path, list[Path], list[Path]]:
    """A bare remote holding a user branch, ``n`` clones of it, and one linked worktree each."""
    remote = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = make_repo(root / "seed")
    git(seed, "push", "-q", str(remote), "main")
    clones, worktrees = [], []
    for i in range(n):
        clone = root / f"clone{i}"
        git(root, "clone", "-q", str(remote), str(clone))
        wt = root / f"clone{i}-wt"
        git(clone, "worktree", "add", "-q", "-b", f"wt{i}", str(wt))
        clones.append(clone)
        worktrees.append(wt)
    if store:
        Workspace.open(clones[0]).writer.create_store("bd init")
    return remote, clones, worktrees


@pytest.fixture
def net(tmp_path: Path):
    return make_clones(tmp_path, n=2)


def send(path: Path, sender: str, to: str, subject: str) -> dict:
    ws = Workspace.open(path)
    try:
        return mail.send(ws, sender, [to], subject, "body of " + subject)
    finally:
        ws.close()


def do_sync(path: Path, *args: str, **kw) -> dict:
    ws = Workspace.open(path)
    try:
        return sync.sync(ws, *args, **kw)
    finally:
        ws.close()


def state(path: Path) -> dict:
    ws = Workspace.open(path)
    try:
        ws.refresh()
        return ws.index.fingerprint()
    finally:
        ws.close()


def feed_of(clone: Path) -> str:
    """The name of a clone's feed ref."""
    replica = (clone / ".git" / "beadsmail" / "replica").read_text().strip()
    return f"refs/heads/beadsmail.feeds/{replica}"


def segment_ids(path: Path) -> list[str]:
    """Every record id stored on the local store branch, with repetitions."""
    ids: list[str] = []
    if not git(path, "rev-parse", "-q", "--verify", "beadsmail", check=False):
        return ids
    for name in git(path, "ls-tree", "-r", "--name-only", "beadsmail").split():
        if name.endswith(".jsonl"):
            for line in git(path, "show", f"beadsmail:{name}").splitlines():
                if json.loads(line)["kind"] not in ("key", "dropped"):  # (feed metadata)
                    ids.append(json.loads(line)["id"])
    return ids


def hook(worktree: Path, identity: str) -> Path:
    """Configure ``identity`` in a worktree and an on_message hook logging '<id> <event>'."""
    beads = worktree / ".beads"
    (beads / "hooks").mkdir(parents=True, exist_ok=True)
    (beads / "config.yaml").write_text(f"identity: {identity}\n")
    log = worktree / "hook.log"
    script = beads / "hooks" / "on_message"
    script.write_text(f'#!/bin/sh\necho "$1 $2 $BEADS_EVENT" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    approve_hooks(worktree)
    return log


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# -- basics ---------------------------------------------------------------------


def test_first_sync_creates_the_feed_and_a_new_clone_adopts_it(net, bd) -> None:
    remote, clones, wts = net
    sent = send(wts[0], "alice", "bob", "hello")
    result = bd(clones[0], "sync", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["action"] == "created the feed" and data["pushed"] is True
    assert data["sent"] == 1 and data["remote"] == "origin"
    feed = data["feed"]
    replica = (clones[0] / ".git" / "beadsmail" / "replica").read_text().strip()
    assert feed == f"refs/heads/beadsmail.feeds/{replica}"
    assert git(remote, "rev-parse", feed).strip() == data["feed_head"]
    # only this replica's files travel in its feed; no old-layout branch is created
    segments = git(clones[0], "ls-tree", "--name-only", f"beadsmail:.beads/log/{replica}").split()
    assert git(remote, "ls-tree", "-r", "--name-only", feed).split() == [
        f".beads/log/{replica}/{name}" for name in segments] + [".beads/store.json"]
    assert git(remote, "rev-parse", "-q", "--verify", "beadsmail", check=False) == ""
    tracking = feed.replace("refs/heads/", "refs/remotes/origin/")
    assert git(clones[0], "rev-parse", tracking).strip() == data["feed_head"]

    other = bd(wts[1], "sync", "--json").json()  # from a linked worktree of a clone without a store
    assert other["action"] == "adopted the remote store" and other["received"] == 1
    assert state(clones[1])["records"] == [sent["id"]]
    inbox = bd(wts[1], "mail", "inbox", "--identity", "bob", "--json")
    assert [m["id"] for m in inbox.json()] == [sent["id"]]
    again = bd(clones[1], "sync", "--json").json()
    assert again["action"] == "up to date" and again["received"] == again["sent"] == 0
    fsck(clones[1])


def test_a_sync_before_the_first_record_says_nothing_was_published(net, bd) -> None:
    remote, clones, wts = net
    empty = bd(clones[0], "sync", "--json")
    assert empty.code == 0 and empty.json()["pushed"] is False
    assert "nothing published yet" in empty.err
    assert git(remote, "for-each-ref", "refs/heads/beadsmail*") == ""
    send(wts[0], "alice", "bob", "hello")
    first = bd(clones[0], "sync", "--json")
    assert first.json()["action"] == "created the feed" and "nothing published" not in first.err
    assert "nothing published" not in bd(clones[0], "sync").err


@pytest.mark.parametrize("order", [[0, 1, 2, 0, 1], [2, 1, 0, 2, 1], [1, 0, 2, 1, 0]])
def test_mail_on_every_side_converges_in_any_order(tmp_path: Path, order: list[int]) -> None:
    remote, clones, wts = make_clones(tmp_path)
    do_sync(clones[0])
    ids = []
    for i in range(3):
        for where in (clones[i], wts[i]):
            ids.append(send(where, f"agent{i}", f"agent{(i + 1) % 3}", f"from {where.name}")["id"])
    for i in order:
        do_sync(wts[i] if i % 2 else clones[i])
    for i in range(3):  # everyone once more: the last pushes reach the others
        do_sync(clones[i])
    states = [state(c) for c in clones]
    assert states[0] == states[1] == states[2]
    assert sorted(states[0]["records"]) == sorted(ids)
    for clone in clones:
        stored = segment_ids(clone)
        assert sorted(stored) == sorted(ids)  # every message exactly once
        fsck(clone)


def test_diverged_clones_each_push_their_own_feed(net) -> None:
    remote, clones, wts = net
    do_sync(clones[0])
    do_sync(clones[1])
    send(clones[0], "alice", "bob", "a")
    send(clones[1], "bob", "alice", "b")
    first = do_sync(clones[0])
    result = do_sync(clones[1])
    assert result["action"] == "merged" and result["received"] == 1 and result["sent"] == 1
    assert result["attempts"] == 1 and result["warnings"] == []
    # each feed is a chain of single-parent commits moved only by its owner
    for data in (first, result):
        assert git(remote, "rev-parse", data["feed"]).strip() == data["feed_head"]
        parents = git(remote, "rev-list", "--parents", "-n", "1", data["feed"]).split()
        assert len(parents) <= 2
    assert first["feed"] != result["feed"]
    do_sync(clones[0])
    assert state(clones[0]) == state(clones[1])
    fsck(remote)


def test_unrelated_stores_are_unioned(tmp_path: Path) -> None:
    remote, clones, wts = make_clones(tmp_path, n=2, store=False)
    a = send(clones[0], "alice", "bob", "a")["id"]
    b = send(clones[1], "bob", "alice", "b")["id"]  # each clone started its own store
    do_sync(clones[0])
    assert do_sync(clones[1])["action"] == "merged"
    do_sync(clones[0])
    assert state(clones[0]) == state(clones[1])
    assert sorted(state(clones[0])["records"]) == sorted([a, b])


def test_copied_git_dir_same_segment_on_both_sides_is_unioned_with_a_warning(net) -> None:
    remote, clones, wts = net
    do_sync(clones[0])
    send(clones[0], "alice", "bob", "before the copy")
    twin = clones[0].parent / "twin"
    shutil.copytree(clones[0], twin, symlinks=True)  # same replica id: one writer, two clones
    a = send(clones[0], "alice", "bob", "on the original")["id"]
    b = send(twin, "alice", "bob", "on the twin")["id"]
    do_sync(clones[0])
    result = do_sync(twin)
    assert any("merged its lines by record id" in w for w in result["warnings"])
    do_sync(clones[0])
    for clone in (clones[0], twin):
        stored = segment_ids(clone)
        assert len(stored) == len(set(stored)) == 3 and {a, b} <= set(stored)
    assert state(clones[0]) == state(twin)


def test_another_clone_pushing_meanwhile_is_no_race(net, monkeypatch) -> None:
    from beadsmail.store import remote as remote_mod

    remote, clones, wts = net
    do_sync(clones[0])
    do_sync(clones[1])
    mine = send(clones[1], "bob", "alice", "mine")["id"]
    raced = []
    real_fetch = remote_mod.Transport.fetch

    def fetch_then_someone_pushes(self, rem, heads, known=None):
        refs = real_fetch(self, rem, heads, known)
        if not raced:
            raced.append(send(clones[0], "alice", "bob", "raced")["id"])
            do_sync(clones[0])  # the remote moves between our fetch and our push
        return refs

    monkeypatch.setattr(remote_mod.Transport, "fetch", fetch_then_someone_pushes)
    result = do_sync(clones[1])
    assert result["attempts"] == 1 and result["pushed"] is True
    monkeypatch.undo()
    do_sync(clones[0])
    do_sync(clones[1])
    assert sorted(state(clones[0])["records"]) == sorted([mine, raced[0]])
    assert state(clones[0]) == state(clones[1])


def test_own_feed_moved_by_a_copy_of_the_git_dir_is_merged_and_retried(net, monkeypatch) -> None:
    from beadsmail.store import remote as remote_mod

    remote, clones, wts = net
    do_sync(clones[0])
    send(clones[0], "alice", "bob", "before the copy")
    do_sync(clones[0])
    twin = clones[0].parent / "twin"
    shutil.copytree(clones[0], twin, symlinks=True)  # same replica id: two writers of one feed
    a = send(clones[0], "alice", "bob", "on the original")["id"]
    raced = []
    real_fetch = remote_mod.Transport.fetch

    def fetch_then_twin_pushes(self, rem, heads, known=None):
        refs = real_fetch(self, rem, heads, known)
        if not raced:
            raced.append(send(twin, "alice", "bob", "on the twin")["id"])
            do_sync(twin)
        return refs

    monkeypatch.setattr(remote_mod.Transport, "fetch", fetch_then_twin_pushes)
    result = do_sync(clones[0])
    monkeypatch.undo()
    assert result["attempts"] == 2 and result["pushed"] is True
    feed = result["feed"]
    # the remote's feed moved only by fast-forwards: the twin's commit is in its history
    assert git(remote, "merge-base", "--is-ancestor",
               git(twin, "rev-parse", feed).strip(), feed, check=False) == ""
    do_sync(twin)
    for clone in (clones[0], twin):
        stored = segment_ids(clone)
        assert len(stored) == len(set(stored)) == 3 and {a, raced[0]} <= set(stored)
    assert state(clones[0]) == state(twin)


def test_pull_only_and_push_only(net, bd) -> None:
    remote, clones, wts = net
    do_sync(clones[0])
    do_sync(clones[1])
    send(clones[0], "alice", "bob", "a")
    pulled = bd(clones[0], "sync", "--pull-only", "--json").json()
    assert pulled["pushed"] is False and pulled["sent"] == 0
    assert git(remote, "rev-parse", "-q", "--verify", feed_of(clones[0]), check=False) == ""
    pushed = bd(clones[0], "sync", "--push-only", "--json").json()
    assert pushed["pushed"] is True and pushed["sent"] == 1
    send(clones[1], "bob", "alice", "b")
    # the remote holds a feed this clone has not merged: its own feed is pushed all the same
    alone = bd(clones[1], "sync", "--push-only", "--json").json()
    assert alone["pushed"] is True and alone["sent"] == 1 and alone["received"] == 0
    both = bd(clones[1], "sync", "--push-only", "--pull-only")
    assert both.code == 2 and both.err.count("\n") == 1


# -- interop with plain git and real transports ------------------------------------


def test_plain_git_push_and_fetch_deliver_mail_without_bd_sync(net, bd) -> None:
    remote, clones, wts = net
    sent = send(wts[0], "alice", "bob", "by plain git")
    git(clones[0], "push", "-q", "origin", "beadsmail")
    git(clones[1], "fetch", "-q", "origin")
    inbox = bd(wts[1], "mail", "inbox", "--identity", "bob", "--json")
    assert inbox.code == 0, inbox.err
    assert [m["id"] for m in inbox.json()] == [sent["id"]]
    # the next sync merges what git fetched and pushes nothing new back
    result = do_sync(clones[1])
    assert result["action"] == "adopted the remote store" and result["sent"] == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon(tmp_path: Path):
    """A real ``git daemon`` on loopback serving ``tmp_path`` (push enabled); killed after."""
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr",
         f"--base-path={tmp_path}", "--listen=127.0.0.1", f"--port={port}", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **GIT_ENV},
        start_new_session=True)  # `git daemon` runs `git-daemon` as a child: kill the group
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_git_daemon_transport(tmp_path: Path, daemon: str) -> None:
    remote, clones, wts = make_clones(tmp_path, n=2)
    url = f"{daemon}/remote.git"
    for clone in clones:
        git(clone, "remote", "add", "daemon", url)
    a = send(clones[0], "alice", "bob", "over git://")["id"]
    first = do_sync(clones[0], "daemon")
    assert first["pushed"] is True and first["url"] == url
    b = send(clones[1], "bob", "alice", "back")["id"]
    second = do_sync(clones[1], "daemon")
    assert second["received"] == 1 and second["sent"] == 1 and second["action"] == "merged"
    do_sync(clones[0], url)  # a URL works as well as a name
    assert state(clones[0]) == state(clones[1])
    assert sorted(state(clones[0])["records"]) == sorted([a, b])
    fsck(remote)


def fake_ssh(tmp_path: Path) -> Path:
    """An ``ssh`` that runs the remote command locally: the ssh transport without a server."""
    script = tmp_path / "fake-ssh"
    script.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    script.chmod(0o755)
    return script


def test_ssh_transport_and_a_refused_push(tmp_path: Path, bd) -> None:
    remote, clones, wts = make_clones(tmp_path, n=2)
    ssh = fake_ssh(tmp_path)
    for clone in clones:
        git(clone, "config", "core.sshCommand", str(ssh))
        git(clone, "remote", "set-url", "origin", f"ssh://localhost{remote}")
    a = send(clones[0], "alice", "bob", "over ssh")["id"]
    assert do_sync(clones[0])["pushed"] is True
    assert do_sync(clones[1])["received"] == 1

    hook_path = remote / "hooks" / "pre-receive"
    hook_path.write_text("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n")
    hook_path.chmod(0o755)
    send(clones[1], "bob", "alice", "refused")
    before_head = git(clones[1], "rev-parse", "beadsmail")
    before = state(clones[1])
    result = bd(clones[1], "sync", "--json")
    assert result.code == 1
    error = result.json()["error"]
    assert error["type"] == "remote_error" and "refused" in error["message"]
    assert git(clones[1], "rev-parse", "beadsmail") == before_head
    assert state(clones[1]) == before and a in before["records"]
    assert git(remote, "rev-parse", "-q", "--verify", feed_of(clones[1]), check=False) == ""


# -- arrivals --------------------------------------------------------------------


def test_arrival_hook_fires_once_across_syncs_fetches_and_rebuilds(net, bd) -> None:
    remote, clones, wts = net
    log = hook(wts[1], "bob")
    do_sync(clones[0])
    do_sync(clones[1])
    first = send(clones[0], "alice", "bob", "one")["id"]
    send(clones[0], "alice", "carol", "not for anyone here")
    do_sync(clones[0])
    result = bd(clones[1], "sync", "--json").json()
    assert [m["id"] for m in result["new_messages"]] == [first]
    assert logged(log) == [f"{first} message arrive"]
    do_sync(clones[1])
    assert bd(clones[1], "index", "rebuild").code == 0
    do_sync(clones[1])
    assert logged(log) == [f"{first} message arrive"]

    second = send(clones[0], "alice", "bob", "two")["id"]
    do_sync(clones[0])
    git(clones[1], "fetch", "-q", "origin")
    assert state(clones[1])["records"].count(second) == 1  # a plain read sees it, fires nothing
    assert logged(log) == [f"{first} message arrive"]
    assert [m["id"] for m in do_sync(clones[1])["new_messages"]] == [second]
    own = send(wts[1], "bob", "bob", "a note to self")["id"]  # a local send is no arrival
    do_sync(clones[1])
    assert logged(log) == [f"{first} message arrive", f"{second} message arrive",
                           f"{own} message send"]


def test_first_sync_treats_mail_already_here_as_history(net) -> None:
    remote, clones, wts = net
    log = hook(wts[1], "bob")
    send(clones[0], "alice", "bob", "old news")
    do_sync(clones[0])
    git(clones[1], "fetch", "-q", "origin")  # the clone already has it before its first sync
    assert do_sync(clones[1])["new_messages"] == []
    assert logged(log) == []


# -- tasks -----------------------------------------------------------------------


def test_raced_task_moves_resolve_to_the_same_winner_everywhere(net, bd) -> None:
    remote, clones, wts = net
    task = tasks.create(Workspace.open(clones[0]), "alice", "ship it")["task"]
    do_sync(clones[0])
    do_sync(clones[1])
    tasks.move(Workspace.open(clones[0]), "alice", task["id"], "in_progress", 1)
    tasks.move(Workspace.open(clones[1]), "bob", task["id"], "review", 1)
    do_sync(clones[0])
    merged = bd(clones[1], "sync", "--json").json()
    do_sync(clones[0])
    assert len(merged["task_conflicts"]) == 1
    assert merged["task_conflicts"][0]["task"] == task["id"]
    shown = [tasks.show(Workspace.open(c), task["id"]) for c in clones[:2]]
    assert shown[0] == shown[1]
    assert state(clones[0]) == state(clones[1])


# -- bad input and faults ------------------------------------------------------------


def test_unreachable_remote_is_one_error_and_touches_nothing(net, bd) -> None:
    remote, clones, wts = net
    send(clones[0], "alice", "bob", "local")
    before_head, before = git(clones[0], "rev-parse", "beadsmail"), state(clones[0])
    for target in (str(clones[0].parent / "missing.git"), f"git://127.0.0.1:{free_port()}/x.git",
                   "nosuchremote"):
        result = bd(clones[0], "sync", target, "--json")
        assert result.code == 1, result.out
        assert set(result.json()["error"]) >= {"type", "message"}
        plain = bd(clones[0], "sync", target)
        assert plain.code == 1 and plain.err.count("\n") == 1 and plain.out == ""
    git(clones[0], "remote", "set-url", "origin", str(clones[0].parent / "gone.git"))
    result = bd(clones[0], "sync", "--json")
    assert result.json()["error"]["type"] == "remote_error"
    assert git(clones[0], "rev-parse", "beadsmail") == before_head
    assert state(clones[0]) == before


def test_remote_branch_that_is_not_a_store_is_refused(net, bd) -> None:
    remote, clones, wts = net
    other = make_repo(clones[0].parent / "other")
    git(other, "push", "-q", str(remote), "main:beadsmail")  # an unrelated branch of that name
    send(clones[0], "alice", "bob", "local")
    before_head, before = git(clones[0], "rev-parse", "beadsmail"), state(clones[0])
    result = bd(clones[0], "sync", "--json")
    assert result.code == 1
    assert "not a beadsmail store" in result.json()["error"]["message"]
    assert git(clones[0], "rev-parse", "beadsmail") == before_head and state(clones[0]) == before
    assert git(clones[0], "rev-parse", "-q", "--verify", "refs/remotes/origin/beadsmail",
               check=False) == ""


@pytest.mark.parametrize("stage", ["fetch", "merge", "push"])
def test_interrupted_sync_is_completed_by_the_next(net, monkeypatch, stage: str) -> None:
    from beadsmail.store import feeds as feeds_mod
    from beadsmail.store import remote as remote_mod

    remote, clones, wts = net
    do_sync(clones[0])
    do_sync(clones[1])
    a = send(clones[0], "alice", "bob", "a")["id"]
    do_sync(clones[0])
    b = send(clones[1], "bob", "alice", "b")["id"]
    target = {"fetch": (remote_mod.Transport, "fetch"), "merge": (feeds_mod, "merge_into"),
              "push": (remote_mod.Transport, "push")}[stage]
    real = getattr(*target)

    def dies(*args, **kw):
        real(*args, **kw)
        raise KeyboardInterrupt  # the process is killed right after this step

    monkeypatch.setattr(*target, dies)
    with pytest.raises(KeyboardInterrupt):
        do_sync(clones[1])
    monkeypatch.undo()
    do_sync(clones[1])
    feed = feed_of(clones[1])
    assert git(remote, "rev-parse", feed) == git(clones[1], "rev-parse", feed)
    do_sync(clones[0])
    assert sorted(state(clones[0])["records"]) == sorted([a, b])
    assert state(clones[0]) == state(clones[1])
    fsck(clones[1])


def test_sync_killed_mid_way_loses_nothing(net, bd_proc) -> None:
    remote, clones, wts = net
    do_sync(clones[0])
    do_sync(clones[1])
    ids = []
    env = {**os.environ, **GIT_ENV}
    for delay in (0.25, 0.4):  # killed at different points of the sync
        for clone, who in ((clones[0], "alice"), (clones[1], "bob")):
            ws = Workspace.open(clone)
            ids += [write_message(ws, who, subject=f"m{i}")["id"] for i in range(10)]
            ws.close()
        do_sync(clones[0])
        proc = subprocess.Popen([sys.executable, "-m", "beadsmail", "sync"], cwd=clones[1],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
    final = bd_proc(clones[1], "sync", "--json")
    assert final.code == 0, final.out + final.err
    do_sync(clones[0])
    assert sorted(state(clones[0])["records"]) == sorted(ids)
    assert state(clones[0]) == state(clones[1])
    fsck(clones[1])


# -- sync.auto ---------------------------------------------------------------------


def test_auto_sync_pushes_in_the_background_and_never_blocks_a_write(net) -> None:
    remote, clones, wts = net
    do_sync(clones[0])
    (clones[0] / ".beads").mkdir(exist_ok=True)
    (clones[0] / ".beads" / "config.yaml").write_text("sync:\n  auto: true\n")
    approve_hooks(clones[0])
    sent = send(clones[0], "alice", "bob", "auto")
    assert not [w for w in sent["warnings"] if "sync" in w]
    deadline = time.monotonic() + 300
    feed = feed_of(clones[0])
    while git(remote, "rev-parse", "-q", "--verify", feed, check=False).strip() != \
            git(clones[0], "rev-parse", "-q", "--verify", feed, check=False).strip() or \
            not git(remote, "rev-parse", "-q", "--verify", feed, check=False):
        assert time.monotonic() < deadline, "the background sync never pushed"
        time.sleep(0.1)
    log = clones[0] / ".git" / "beadsmail" / "sync.log"
    deadline = time.monotonic() + 300
    while not log.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    git(clones[0], "remote", "set-url", "origin", str(clones[0].parent / "gone.git"))
    started = time.monotonic()
    offline = send(clones[0], "alice", "bob", "offline")
    assert not [w for w in offline["warnings"] if "sync" in w]
    assert time.monotonic() - started < 30  # a loaded machine is slow; a blocking sync is slower


# -- http(s): git http-backend behind a loopback WSGI server -------------------------


def _dechunk(stream) -> bytes:
    body = b""
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            stream.readline()
            return body
        body += stream.read(size)
        stream.readline()


def _http_backend(root: Path):
    def app(environ, start_response):
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            body = _dechunk(environ["wsgi.input"])
        else:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(root),
               "GIT_HTTP_EXPORT_ALL": "1", "REMOTE_USER": "tester", "CONTENT_LENGTH": str(len(body))}
        for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                    "HTTP_CONTENT_ENCODING", "GIT_PROTOCOL", "HTTP_GIT_PROTOCOL"):
            if environ.get(key):
                env[key] = environ[key]
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return [payload]

    return app


@pytest.fixture
def http_remote(tmp_path: Path):
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            return None

    server = make_server("127.0.0.1", 0, _http_backend(tmp_path), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_transport(tmp_path: Path, http_remote: str) -> None:
    remote, clones, wts = make_clones(tmp_path, n=2)
    url = f"{http_remote}/remote.git"
    a = send(clones[0], "alice", "bob", "over http")["id"]
    assert do_sync(clones[0], url)["pushed"] is True
    b = send(clones[1], "bob", "alice", "back over http")["id"]
    result = do_sync(clones[1], url)
    assert result["received"] == 1 and result["sent"] == 1
    do_sync(clones[0], url)
    assert sorted(state(clones[0])["records"]) == sorted([a, b])
    assert state(clones[0]) == state(clones[1])
    fsck(remote)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-url", "relative-url"])
def test_a_no_op_sync_loads_neither_typer_nor_dulwich(net, relative: bool) -> None:
    remote, clones, wts = net
    if relative:  # `git remote add origin ../remote.git`: relative to the worktree's top
        git(clones[0], "remote", "set-url", "origin", "../remote.git")
    send(clones[0], "alice", "bob", "a")
    do_sync(clones[0])
    (clones[0] / "sub").mkdir()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "beadsmail", "sync", "--json"],
                          cwd=clones[0] / "sub", capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["action"] == "up to date"
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "beadsmail.sync" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("dulwich", "typer")}


def test_arrivals_by_broadcast_group_and_channel(net) -> None:
    from beadsmail import agents, channels

    remote, clones, wts = net
    log = hook(wts[1], "bob")
    ws = Workspace.open(clones[0])
    agents.register(ws, "alice", "alice", role="manager")
    agents.register(ws, "alice", "bob", role="worker", group="devs")
    channels.create(ws, "alice", "ops")
    channels.join(ws, "alice", "ops", agent="bob")
    ws.close()
    do_sync(clones[0])
    do_sync(clones[1])
    ids = [send(clones[0], "alice", to, f"to {to}")["id"] for to in ("*", "@devs", "#ops")]
    send(clones[0], "alice", "@ops-team", "to nobody here")
    do_sync(clones[0])
    result = do_sync(clones[1])
    assert sorted(m["id"] for m in result["new_messages"]) == sorted(ids)
    assert sorted(logged(log)) == sorted(f"{i} message arrive" for i in ids)


# -- feeds: plain git, the transition from the one-branch layout ------------------------


def test_plain_git_fetch_of_feeds_delivers_mail(net, bd) -> None:
    remote, clones, wts = net
    sent = send(clones[0], "alice", "bob", "through a feed")
    do_sync(clones[0])
    git(clones[1], "fetch", "-q", "origin")  # default refspecs: refs/heads/* -> refs/remotes/origin/*
    assert git(clones[1], "rev-parse", "-q", "--verify",
               feed_of(clones[0]).replace("refs/heads/", "refs/remotes/origin/"), check=False)
    inbox = bd(wts[1], "mail", "inbox", "--identity", "bob", "--json")
    assert [m["id"] for m in inbox.json()] == [sent["id"]]
    result = do_sync(clones[1])  # merges what git fetched into the view
    assert result["received"] == 1 and result["action"] == "adopted the remote store"
    assert sent["id"] in segment_ids(clones[1])


def test_old_layout_branch_is_merged_and_pushed_best_effort(net, bd) -> None:
    remote, clones, wts = net
    old = send(clones[0], "alice", "bob", "from an old clone")["id"]
    git(clones[0], "push", "-q", "origin", "beadsmail")  # what an old client's sync leaves
    new = send(clones[1], "bob", "alice", "from a new clone")["id"]
    result = do_sync(clones[1])
    assert result["received"] == 1 and result["legacy_pushed"] is True
    # an old client fetching only the branch sees the new clone's mail
    assert new in git(remote, "log", "-p", "beadsmail")
    assert old in segment_ids(clones[1])
    hook_path = remote / "hooks" / "update"  # the old branch refused, the feed accepted
    hook_path.write_text('#!/bin/sh\n[ "$1" = refs/heads/beadsmail ] && exit 1\nexit 0\n')
    hook_path.chmod(0o755)
    later = send(clones[1], "bob", "alice", "later")["id"]
    refused = do_sync(clones[1])
    assert refused["pushed"] is True and refused["legacy_pushed"] is False
    assert any("refs/heads/beadsmail" in w for w in refused["warnings"])
    assert later in git(remote, "show", f"{feed_of(clones[1])}:.beads/log/"
                        + git(clones[1], "ls-tree", "--name-only", "-r",
                              f"{feed_of(clones[1])}:.beads/log").split()[-1])
    hook_path.unlink()
    (clones[1] / ".beads").mkdir(exist_ok=True)
    (clones[1] / ".beads" / "config.yaml").write_text("sync:\n  legacy_branch: never\n")
    send(clones[1], "bob", "alice", "never")
    quiet = do_sync(clones[1])
    assert quiet["pushed"] is True and quiet["legacy_pushed"] is False and quiet["warnings"] == []


def test_feeds_of_replicas_gone_long_are_retired_without_losing_records(tmp_path: Path) -> None:
    remote, clones, wts = make_clones(tmp_path, n=3)
    gone = send(clones[0], "alice", "bob", "last words")["id"]
    do_sync(clones[0])
    do_sync(clones[1])
    (clones[1] / ".beads").mkdir(exist_ok=True)
    (clones[1] / ".beads" / "config.yaml").write_text("sync:\n  retire_after_days: 0.000001\n")
    time.sleep(0.2)  # (older than 0.0864 s: the retirement age set above)
    send(clones[1], "bob", "carol", "still here")
    result = do_sync(clones[1])
    assert result["retired"] == [feed_of(clones[0])]
    assert git(remote, "rev-parse", "-q", "--verify", feed_of(clones[0]), check=False) == ""
    assert gone in git(remote, "log", "-p", "beadsmail")  # the old branch keeps its records
    assert feed_of(clones[0]) not in "".join(Workspace.open(clones[1]).heads())
    # a fresh clone still gets them; the gone replica coming back recreates its feed
    assert gone in [m for m in state_after_sync(clones[2])["records"]]
    back = send(clones[0], "alice", "bob", "back again")["id"]
    assert do_sync(clones[0])["pushed"] is True
    assert git(remote, "rev-parse", "-q", "--verify", feed_of(clones[0]), check=False)
    do_sync(clones[2])
    assert {gone, back} <= set(state(clones[2])["records"])


def state_after_sync(path: Path) -> dict:
    do_sync(path)
    return state(path)
