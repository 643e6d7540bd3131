"""Index generations: a new index is built beside the old one and published by a symlink."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import GIT_ENV, fsck, git
from helpers import write_message

from beadsmail import boundary
from beadsmail.index import Index
from beadsmail.workspace import Workspace


def _files(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / ".git" / "beadsmail").iterdir()
                  if p.name.startswith("index.sqlite3"))


def _generation_files(repo: Path) -> list[str]:
    return [n for n in _files(repo) if n not in ("index.sqlite3", "index.sqlite3.build")]


def test_rebuild_publishes_a_new_generation_and_open_readers_keep_theirs(repo: Path) -> None:
    writer = Workspace.open(repo)
    for i in range(3):
        write_message(writer, subject=f"s{i}")
    reader = Workspace.open(repo)
    reader.refresh()
    before = os.readlink(reader.index_path)
    positions = reader.index.arrived_after(0)
    writer.rebuild_index()
    after = os.readlink(reader.index_path)
    assert after != before
    # the reader goes on with the generation it has open (its arrival positions stay
    # valid), folding what arrives into it; a new process opens the new one
    assert reader.index.counts() == {"message": 3}
    write_message(writer, subject="after the rebuild")
    reader.refresh()
    assert reader.index.arrived_after(0)[:3] == positions
    assert [r["subject"] for _, r in reader.index.arrived_after(positions[-1][0])] == [
        "after the rebuild"]
    assert reader.index.fingerprint() == writer.index.fingerprint()
    fresh = Workspace.open(repo)
    fresh.refresh()
    assert fresh.index.fingerprint() == writer.index.fingerprint()
    for ws in (reader, writer, fresh):
        ws.close()
    assert _generation_files(repo) == sorted(n for n in (after, f"{after}-wal", f"{after}-shm")
                                             if n in _files(repo))
    fsck(repo)


def test_closing_an_old_generation_leaves_the_new_ones_wal_alone(repo: Path) -> None:
    """A process that still had the old index open closes (SQLite checkpoints and may
    delete its WAL then) after others committed to the new one: their commits stay."""
    old = Workspace.open(repo)
    write_message(old, subject="first")
    builder = Workspace.open(repo)
    builder.rebuild_index()
    later = Workspace.open(repo)
    write_message(later, subject="folded into the new generation's WAL")
    target = os.readlink(later.index_path)
    assert (repo / ".git" / "beadsmail" / f"{target}-wal").exists()
    old.close()  # SQLite checkpoints and deletes *its* generation's WAL on close
    conn = sqlite3.connect(later.index_path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM messages").fetchone() == (2,)
    heads = dict(conn.execute("SELECT ref, commit_id FROM heads"))
    conn.close()
    assert {ref: c for ref, c in heads.items() if ref.startswith("refs/")} == later.heads()
    later.close()
    builder.close()


def test_a_failed_build_leaves_the_index_as_it_was(repo: Path, monkeypatch) -> None:
    ws = Workspace.open(repo)
    for i in range(3):
        write_message(ws, subject=f"s{i}")
    before = os.readlink(ws.index_path)

    def broken(self, sources):
        for n, _ in enumerate(item for source in sources for item in source):
            if n == 1:
                raise OSError(28, "No space left on device")
        return 0

    monkeypatch.setattr(Index, "load", broken)
    with pytest.raises(OSError):
        ws.rebuild_index()
    assert os.readlink(ws.index_path) == before
    assert ws.index.counts() == {"message": 3}
    assert _generation_files(repo) == sorted(n for n in (before, f"{before}-wal",
                                                         f"{before}-shm") if n in _files(repo))
    ws.close()


def test_leftovers_and_an_index_from_before_generations_are_replaced(repo: Path, bd) -> None:
    ws = Workspace.open(repo)
    for i in range(2):
        write_message(ws, subject=f"s{i}")
    ws.close()
    state = repo / ".git" / "beadsmail"
    (state / "index.sqlite3.4242-deadbeef").write_bytes(b"a build that was killed")
    # an index from an older beadsmail: a plain file with its own WAL files
    (state / "index.sqlite3").unlink()
    legacy = sqlite3.connect(state / "index.sqlite3")
    legacy.execute("PRAGMA journal_mode=WAL")
    legacy.execute("CREATE TABLE heads (ref TEXT, commit_id TEXT)")
    legacy.execute("PRAGMA user_version=11")
    legacy.commit()
    result = bd(repo, "where", "--json")
    legacy.close()
    assert result.code == 0, result.err
    assert result.json()["records"] == {"message": 2}
    assert (state / "index.sqlite3").is_symlink()
    result = bd(repo, "index", "rebuild", "--json")
    assert result.code == 0, result.err
    target = os.readlink(state / "index.sqlite3")
    assert "index.sqlite3.4242-deadbeef" not in _files(repo)
    assert set(_generation_files(repo)) <= {target, f"{target}-wal", f"{target}-shm"}


def test_concurrent_first_folds_and_rebuilds_agree(repo: Path) -> None:
    ws = Workspace.open(repo)
    ws.write("alice", [("message", {
        "from": "alice", "to": ["bob"], "subject": f"m{i}", "body": "x", "priority": 2,
        "type": "request", "thread_id": "bd-0000000000000", "replies_to": None,
        "ephemeral": True, "metadata": {}, "action_requested": "none"}) for i in range(300)],
        "mail: many")
    ws.close()
    os.unlink(repo / ".git" / "beadsmail" / "index.sqlite3")
    env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": "bob"}
    commands = [["index", "rebuild", "--json"], ["where", "--json"], ["index", "rebuild"],
                ["where", "--json"], ["mail", "inbox", "--json"]]

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "beadsmail", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(run, commands))
    for args, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (args, result.stderr)
    check = Workspace.open(repo)
    check.refresh()
    assert check.index.counts() == {"message": 300}
    target = os.readlink(check.index_path)
    check.close()
    assert set(_generation_files(repo)) <= {target, f"{target}-wal", f"{target}-shm"}


def test_a_rebuild_killed_part_way_leaves_a_working_index(repo: Path) -> None:
    ws = Workspace.open(repo)
    for n in range(4):
        ws.write("alice", [("message", {
            "from": "alice", "to": ["bob"], "subject": f"m{n}.{i}", "body": "x" * 200,
            "priority": 2, "type": "request", "thread_id": "bd-0000000000000",
            "replies_to": None, "ephemeral": True, "metadata": {}, "action_requested": "none"})
            for i in range(2500)], "mail: many")
    ws.close()
    env = {**os.environ, **GIT_ENV}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "beadsmail", "index", "rebuild"], cwd=repo, env=env,
                   check=True, capture_output=True)
    took = time.perf_counter() - t
    killed: list[bool] = []
    fractions = [0.3, 0.6, 0.9]
    while fractions:  # a machine that got faster meanwhile: kill sooner, until one lands
        fraction = fractions.pop(0)
        proc = subprocess.Popen([sys.executable, "-m", "beadsmail", "index", "rebuild"],
                                cwd=repo, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(took * fraction)
        proc.kill()
        killed.append(proc.wait() == -9)
        check = Workspace.open(repo)
        check.refresh()
        assert check.index.counts() == {"message": 10_000}
        check.close()
        if not fractions and not any(killed) and fraction > 0.01:
            fractions.append(fraction / 3)
    assert any(killed), "every kill came after the rebuild had ended"
    subprocess.run([sys.executable, "-m", "beadsmail", "index", "rebuild"], cwd=repo, env=env,
                   check=True, capture_output=True)
    target = os.readlink(repo / ".git" / "beadsmail" / "index.sqlite3")
    assert set(_generation_files(repo)) <= {target, f"{target}-wal", f"{target}-shm"}
    fsck(repo)


def test_a_failure_while_publishing_keeps_the_index_usable(repo: Path, monkeypatch) -> None:
    ws = Workspace.open(repo)
    write_message(ws, subject="kept")
    before = os.readlink(ws.index_path)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "symlink", full)
        with pytest.raises(OSError):
            ws.rebuild_index()
    assert os.readlink(ws.index_path) == before
    assert ws.index.counts() == {"message": 1}
    write_message(ws, subject="still writable")
    assert ws.index.counts() == {"message": 2}
    assert _generation_files(repo) == sorted(n for n in (before, f"{before}-wal",
                                                         f"{before}-shm") if n in _files(repo))
    ws.rebuild_index()
    assert ws.index.counts() == {"message": 2}
    ws.close()


def test_without_symlinks_the_index_is_a_plain_file(repo: Path, monkeypatch, bd) -> None:
    """A filesystem without symlinks (FAT, some network shares): generations are renamed
    into place instead, and every command works."""
    def unsupported(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", unsupported)
    (repo / ".git" / "beadsmail").mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(repo)
    for i in range(3):
        write_message(ws, subject=f"s{i}")
    assert not ws.index_path.is_symlink() and ws.index_path.is_file()
    ws.rebuild_index()
    assert ws.index.counts() == {"message": 3}
    ws.close()
    result = bd(repo, "where", "--json")
    assert result.code == 0, result.err
    assert result.json()["records"] == {"message": 3}
    assert _generation_files(repo) == [n for n in ("index.sqlite3-shm", "index.sqlite3-wal")
                                       if n in _files(repo)]


def test_a_busy_index_is_an_error_not_a_reason_to_replace_it(repo: Path, monkeypatch) -> None:
    from beadsmail import index as index_mod

    ws = Workspace.open(repo)
    write_message(ws, subject="kept")
    ws.close()
    target = os.readlink(repo / ".git" / "beadsmail" / "index.sqlite3")
    holder = sqlite3.connect(repo / ".git" / "beadsmail" / "index.sqlite3")
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(index_mod, "BUSY_SECONDS", 0.2)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        Index(repo / ".git" / "beadsmail" / "index.sqlite3")
    holder.rollback()
    holder.close()
    assert os.readlink(repo / ".git" / "beadsmail" / "index.sqlite3") == target
    ws = Workspace.open(repo)
    ws.refresh()
    assert ws.index.counts() == {"message": 1}
    ws.close()


def _rich_store(repo: Path) -> None:
    """Many small segments holding every fold's kinds, a record repeated in a later segment
    (as a copied .git would leave it) and a bad line."""
    ws = Workspace.open(repo)
    ws.config["store"]["segment_bytes"] = 700  # a segment for every record or two
    sent = [write_message(ws, subject=f"s{i}", to=("bob", "#ops") if i % 3 else ("bob",))
            for i in range(24)]
    for i, m in enumerate(sent[:10]):
        ws.write("bob", [("receipt", {"message": m["id"], "recipient": "bob",
                                      "state": ("read", "acked")[i % 2]})], "receipt")
    ws.write("alice", [("tombstone", {"target": sent[3]["id"]})], "delete")
    ws.write("alice", [("task", {"title": "t", "priority": "low", "status": "backlog"})], "task")
    ws.close()
    # the first message's line again, and a conflict marker, appended to the last segment
    ws = Workspace.open(repo)
    segments = sorted(boundary.segments(ws.writer, ws.writer.head(), ws.limits))
    first_line = git(repo, "show", f"beadsmail:.beads/log/{segments[0]}").splitlines()[0]
    work = repo.parent / "edit"
    git(repo, "worktree", "add", "-q", str(work), "beadsmail")
    with open(work / ".beads" / "log" / segments[-1], "a") as fh:
        fh.write(first_line + "\n<<<<<<< HEAD\n")
    git(work, "commit", "-q", "-am", "hand edit")
    git(work, "checkout", "-q", "--detach")
    ws.close()


def _built(repo: Path) -> tuple:
    ws = Workspace.open(repo)
    ws.rebuild_index()
    conn = ws.index.conn
    state = (ws.index.fingerprint(), ws.index.counts(), ws.index.bad_lines(),
             [r["id"] for _, r in ws.index.arrived_after(0)],
             conn.execute("SELECT * FROM segments ORDER BY path").fetchall(),
             conn.execute("SELECT id, path, line FROM records ORDER BY id").fetchall())
    ws.close()
    return state


def test_a_build_split_with_a_child_process_equals_one_read_in_one(repo: Path,
                                                                    monkeypatch) -> None:
    from beadsmail import buildparts as workspace_mod

    _rich_store(repo)
    serial = _built(repo)
    assert len(serial[4]) > 10 and serial[2], "many segments and a bad line"
    monkeypatch.setattr(workspace_mod, "SPLIT_SEGMENTS", 2)
    monkeypatch.setattr(workspace_mod, "_can_fork", lambda: True)
    forked = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forked.append(1) or real_fork())
    opened = repo.parent / "child-fds.txt"
    real_load_part = Index.load_part

    def load_part(self, items):  # (in the child) note what it has open
        fds = Path("/proc/self/fd")
        if fds.exists():
            opened.write_text("\n".join(os.path.realpath(p) for p in fds.iterdir()))
        real_load_part(self, items)

    monkeypatch.setattr(Index, "load_part", load_part)
    assert _built(repo) == serial
    assert forked == [1]
    if opened.exists():  # not the store's or the build's lock: a killed parent frees them
        assert not any(name.endswith(("write.lock", "index.sqlite3.build"))
                       for name in opened.read_text().splitlines())
    # a child that fails, or a fork that fails: the building process reads them itself
    monkeypatch.setattr(Index, "load_part", lambda self, items: 1 / 0)
    assert _built(repo) == serial
    assert forked == [1, 1]

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _built(repo) == serial
    assert set(_generation_files(repo)) <= {os.readlink(repo / ".git" / "beadsmail" /
                                                        "index.sqlite3") + s
                                            for s in ("", "-wal", "-shm")}
