"""The index: a cache that refreshes incrementally and rebuilds silently."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import faults
from conftest import fsck, git
from helpers import message_fields, write_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beadsmail import boundary
from beadsmail import index as index_mod
from beadsmail.workspace import Workspace


def _counts(path: Path) -> dict:
    ws = Workspace.open(path)
    ws.refresh()
    try:
        return ws.index.counts()
    finally:
        ws.close()


def test_deleted_garbage_and_old_index_rebuild_silently(repo: Path, bd) -> None:
    ws = Workspace.open(repo)
    for i in range(5):
        write_message(ws, subject=f"s{i}")
    ws.close()
    index_file = repo / ".git" / "beadsmail" / "index.sqlite3"
    index_file.unlink()
    assert _counts(repo) == {"message": 5}
    for suffix in ("-wal", "-shm"):
        Path(str(index_file) + suffix).unlink(missing_ok=True)
    index_file.write_bytes(b"this is not a database" * 100)
    result = bd(repo, "where", "--json")
    assert result.code == 0, result.err
    assert result.json()["records"] == {"message": 5}
    conn = sqlite3.connect(index_file)
    conn.execute(f"PRAGMA user_version={index_mod.SCHEMA_VERSION + 100}")
    conn.commit()
    conn.close()
    assert _counts(repo) == {"message": 5}


def test_refresh_parses_only_appended_lines(repo: Path, tmp_path: Path, monkeypatch) -> None:
    from beadsmail import records
    from beadsmail.index import Index

    a = Workspace.open(repo)
    for i in range(5):
        write_message(a, subject=f"s{i}")
    b = Workspace.open(repo)
    b._index = Index(tmp_path / "other-index.sqlite3")  # a second, separate cache
    assert b.refresh() == 5
    assert b.refresh() == 0
    parsed = []
    real = records.parse_line
    monkeypatch.setattr(records, "parse_line", lambda raw: parsed.append(raw) or real(raw))
    write_message(a, subject="new")
    assert b.refresh() == 1
    assert len(parsed) == 1, "only the appended line is parsed"
    assert b.index.fingerprint() == a.index.fingerprint()


def test_rebuild_ends_with_the_same_schema_counts_and_arrival_order(repo: Path) -> None:
    """A rebuild loads into an empty index without its indexes and triggers, then builds them."""
    ws = Workspace.open(repo)
    sent = [write_message(ws, subject=f"s{i}") for i in range(4)]
    ws.write("alice", [("tombstone", {"target": sent[0]["id"]})], "t")

    def state() -> tuple:
        conn = ws.index.conn
        return (conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                             "ORDER BY name").fetchall(), ws.index.counts(),
                [r["id"] for _, r in ws.index.arrived_after(0)], ws.index.fingerprint())

    incremental = state()
    ws.index.reset()
    assert ws.refresh() == 5
    assert state() == incremental
    ws.close()


def _commit_segment_line(repo: Path, line: bytes, path: str | None = None) -> str:
    """Append a raw line to this replica's segment with the git CLI (a hand edit); or, with
    ``path``, write it as a new segment there (another replica's, as an old version wrote)."""
    ws = Workspace.open(repo)
    content = line
    if path is None:
        path = next(iter(boundary.segments(ws.writer, ws.writer.head(), ws.limits)))
        content = git(repo, "show", f"beadsmail:.beads/log/{path}").encode() + line
    work = repo.parent / "edit"
    if not work.exists():
        git(repo, "worktree", "add", "-q", str(work), "beadsmail")
    else:
        git(work, "checkout", "-q", "beadsmail")
    (work / ".beads" / "log" / path).parent.mkdir(exist_ok=True)
    (work / ".beads" / "log" / path).write_bytes(content)
    git(work, "add", ".beads/log")
    git(work, "commit", "-q", "-am", "hand edit")
    git(work, "checkout", "-q", "--detach")
    return f"{path}"


def test_bad_line_is_reported_and_rest_stays_usable(repo: Path, bd) -> None:
    ws = Workspace.open(repo)
    write_message(ws, subject="before")
    ws.close()
    path = _commit_segment_line(repo, b"<<<<<<< HEAD\n")
    ws = Workspace.open(repo)
    write_message(ws, subject="after")
    ws.close()
    result = bd(repo, "where", "--json")
    assert result.code == 0 and result.json()["records"] == {"message": 2}
    assert result.json()["bad_lines"] == 1
    doctor = bd(repo, "doctor", "--json")
    assert doctor.code == 1
    bad = doctor.json()["bad_lines"]
    assert bad == [{"path": path, "line": 3, "error": bad[0]["error"], "text": "<<<<<<< HEAD",
                    "ref": "refs/heads/beadsmail", "commit": bad[0]["commit"]}]
    assert len(bad[0]["commit"]) == 40
    assert "JSON" in bad[0]["error"]
    text = bd(repo, "doctor")
    assert f"{path}:3:" in text.out
    fixed = bd(repo, "doctor", "--fix", "--json")
    assert fixed.json()["ok"] and not fixed.json()["bad_lines"]
    # doctor --fix never deletes the bad line: it moves it aside, inside the store
    assert "<<<<<<< HEAD" not in git(repo, "show", f"beadsmail:.beads/log/{path}")
    assert git(repo, "show", f"beadsmail:.beads/quarantine/{path}") == "<<<<<<< HEAD\n"
    assert bd(repo, "index", "rebuild", "--json").json()["records"] == {"message": 2}
    fsck(repo)


def test_schema_invalid_line_reported(repo: Path, bd) -> None:
    ws = Workspace.open(repo)
    good = write_message(ws)
    ws.close()
    bad = dict(good, id="bd-zzzz000000000", priority=9)
    import json

    _commit_segment_line(repo, json.dumps(bad).encode() + b"\n")
    result = bd(repo, "doctor", "--json")
    assert result.json()["bad_lines"][0]["line"] == 3  # (line 1: the feed's key record)
    assert "priority" in result.json()["bad_lines"][0]["error"]
    assert bd(repo, "where", "--json").json()["records"] == {"message": 1}


def test_message_with_the_old_reply_to_name_is_read_as_replies_to(repo: Path, bd) -> None:
    import json

    ws = Workspace.open(repo)
    root = write_message(ws, subject="root")
    ws.close()
    old = {k: v for k, v in root.items() if k not in ("replies_to", "seq", "prev", "sig")}
    old.update(id="bd-old0000000000", subject="old reply", reply_to=root["id"],
               thread_id=root["thread_id"], to=["alice"], clock=root["clock"] + 1,
               replica="0ldc10ne0000", actor="bob")
    old["from"] = "bob"
    # (as a version before signing wrote it, in its own replica's segment)
    _commit_segment_line(repo, json.dumps(old).encode() + b"\n", "0ldc10ne0000/2026-01-01-000.jsonl")
    for _ in range(2):  # incrementally, then after a rebuild
        shown = bd(repo, "mail", "read", "bd-old0", "--peek", "--json",
                   env={"BEADS_IDENTITY": "alice"}).json()
        assert shown["replies_to"] == root["id"] and "reply_to" not in shown
        thread = bd(repo, "show", root["id"], "--thread", "--json",
                    env={"BEADS_IDENTITY": "alice"}).json()
        assert [m["id"] for m in thread] == [root["id"], "bd-old0000000000"]
        assert bd(repo, "doctor", "--json").json()["bad_lines"] == []
        bd(repo, "index", "rebuild")


def test_stale_ref_lock_is_broken(repo: Path) -> None:
    import os

    ws = Workspace.open(repo)
    write_message(ws)
    lock = repo / ".git" / "refs" / "heads" / "beadsmail.lock"
    lock.write_text("0" * 40 + "\n")
    old = time.time() - 60
    os.utime(lock, (old, old))
    write_message(ws, subject="after a crash")
    assert not lock.exists()
    ws.refresh()
    assert ws.index.counts() == {"message": 2}


def test_loose_objects_are_packed_in_background(repo: Path) -> None:
    ws = Workspace.open(repo)
    ws.config["store"]["pack_after"] = 0
    objects = repo / ".git" / "objects"
    for i in range(100):  # ~600 loose objects: the sampled estimate is then well above 0
        write_message(ws, subject=f"s{i}")
    faults.wait_packers(repo / ".git")  # the writes started it; it ends on its own
    packs = list((objects / "pack").glob("*.pack"))
    assert packs, "a background repack should have run"
    write_message(ws, subject="after packing")
    ws.index.reset()
    ws.refresh()
    assert ws.index.counts() == {"message": 101}
    fsck(repo)


OPS = st.lists(st.one_of(
    st.tuples(st.just("message"), st.sampled_from(["alice", "bob", "carol"]), st.integers(0, 4)),
    st.tuples(st.just("receipt"), st.sampled_from(["read", "acked", "delivered"]), st.integers(0, 30)),
    st.tuples(st.just("tombstone"), st.just(""), st.integers(0, 30)),
    st.tuples(st.just("agent"), st.sampled_from(["register", "unregister"]), st.integers(0, 2)),
    st.tuples(st.just("rebuild_reader"), st.just(""), st.just(0)),
), min_size=1, max_size=25)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_incremental_index_equals_rebuild(tmp_path_factory, ops) -> None:
    from conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("prop") / "repo")
    writer = Workspace.open(repo)
    reader = Workspace.open(repo)
    sent: list[str] = []
    for kind, arg, n in ops:
        if kind == "message":
            sent.append(writer.write(arg, [("message", message_fields(arg, priority=n))], "m")
                        .records[0]["id"])
        elif kind == "receipt" and sent:
            writer.write("bob", [("receipt", {"message": sent[n % len(sent)], "recipient": "bob",
                                              "state": arg})], "r")
        elif kind == "tombstone" and sent:
            writer.write("alice", [("tombstone", {"target": sent[n % len(sent)]})], "t")
        elif kind == "agent":
            writer.write("alice", [("agent", {"op": arg, "agent": f"agent{n}", "role": "tester",
                                              "tier": 2, "status": "active"})], "a")
        else:
            reader.refresh()
    reader.refresh()
    incremental = reader.index.fingerprint()
    assert incremental == writer.index.fingerprint()
    reader.index.reset()
    reader.refresh()
    assert reader.index.fingerprint() == incremental
