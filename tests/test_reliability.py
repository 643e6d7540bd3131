"""Reliability, the short version: crashes, concurrency, corruption, hostile input, disk faults.

Each test does a real fault to a real repository (a SIGKILLed ``bd``, a segment
edited with git plumbing, a deleted object, a full tmpfs, a read-only git dir)
and then proves nothing reported as stored was lost, the damage is reported
precisely, and the store stays readable and writable. The long runs of the same
workloads are in ``tests/torture/`` (``make torture``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import faults
import pytest
import workloads
from conftest import fsck, git


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    return repo


def send(bd, repo: Path, subject: str = "hello", sender: str = "alice", to: str = "bob") -> dict:
    result = bd(repo, "mail", "send", to, "-s", subject, "-m", "body", "--identity", sender,
                "--json")
    assert result.code == 0, result.err
    return result.json()


def inbox_ids(bd, repo: Path, me: str = "bob") -> set[str]:
    result = bd(repo, "mail", "inbox", "--json", "--identity", me)
    assert result.code == 0, result.err
    return {m["id"] for m in result.json()}


def doctor(bd, repo: Path, *args: str) -> dict:
    result = bd(repo, "doctor", "--json", *args)
    assert result.code in (0, 1), result.err
    report = result.json()
    assert (result.code == 0) == report["ok"]
    return report


def failed(report: dict) -> dict[str, str]:
    return {c["check"]: c["detail"] for c in report["checks"] if not c["ok"]}


def own_segment(repo: Path) -> str:
    return faults.segments(repo)[-1]


# -- corruption ------------------------------------------------------------------------------

BAD_LINES = {
    "truncated": (b'{"v":1,"id":"bd-', "truncated line"),
    "conflict_marker": (b"<<<<<<< HEAD\n", "not JSON"),
    "invalid_utf8": (b'{"subject":"\xff\xfe"}\n', "not UTF-8"),
    "schema": (None, "priority"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_is_reported_with_file_and_line_and_fixed_without_loss(store: Path, bd,
                                                                       case: str) -> None:
    first = send(bd, store, "first")
    path = own_segment(store)
    content = faults.segment_bytes(store, path)
    line, words = BAD_LINES[case]
    if line is None:  # a record that fails its schema
        stored = json.loads(content.splitlines()[0])
        line = json.dumps(dict(stored, id="bd-zzzzzzzzzzzzz", priority=9)).encode() + b"\n"
    faults.commit_segment(store, path, content + line)
    second = send(bd, store, "second")  # written after the damage: must not be swallowed by it
    assert inbox_ids(bd, store) == {first["id"], second["id"]}
    report = doctor(bd, store)
    assert set(failed(report)) == {"records"}
    bad = report["bad_lines"]
    assert [(b["path"], b["line"]) for b in bad] == [(path, 2)], bad
    assert words in bad[0]["error"]
    text = bd(store, "doctor")
    assert text.code == 1 and f"{path}:2:" in text.out
    fixed = doctor(bd, store, "--fix")
    assert fixed["ok"], fixed
    assert [r["action"] for r in fixed["repairs"]] == ["quarantined"]
    kept = faults.segment_bytes(store, path, top="quarantine")
    assert kept == line.rstrip(b"\n") + b"\n", "the bad line is moved aside, byte for byte"
    assert doctor(bd, store)["ok"]
    assert inbox_ids(bd, store) == {first["id"], second["id"]}
    third = send(bd, store, "third")
    assert inbox_ids(bd, store) == {first["id"], second["id"], third["id"]}
    fsck(store)


def test_missing_object_is_named_and_the_rest_stays_readable_and_writable(store: Path,
                                                                          bd) -> None:
    faults.configure(store, segment_bytes=200)  # one message per segment
    first = send(bd, store, "first")
    second = send(bd, store, "second")
    lost_path, kept_path = faults.segments(store)[:2]
    lost = faults.blob_id(store, lost_path)
    obj = faults.object_file(store, lost)
    saved = obj.read_bytes()
    obj.unlink()
    shutil.rmtree(store / ".git" / "beadsmail")  # a fresh index must fold around the hole
    assert inbox_ids(bd, store) == {second["id"]}
    report = doctor(bd, store)
    assert set(failed(report)) == {"objects", "records"}
    assert report["missing_objects"] == [{"object": lost, "path": lost_path,
                                          "head": "refs/heads/beadsmail", "what": "segment"}]
    assert lost in failed(report)["objects"]
    assert [(b["path"], b["line"]) for b in report["bad_lines"]] == [(lost_path, 0)]
    third = send(bd, store, "third")
    assert inbox_ids(bd, store) == {second["id"], third["id"]}
    assert not doctor(bd, store, "--fix")["ok"], "a missing object cannot be made up"
    obj.parent.mkdir(exist_ok=True)
    obj.write_bytes(saved)  # brought back, e.g. from another clone
    assert doctor(bd, store, "--fix")["ok"]
    assert inbox_ids(bd, store) == {first["id"], second["id"], third["id"]}
    assert kept_path in faults.segments(store)
    fsck(store)


def test_missing_commit_is_one_clear_error_naming_it(store: Path, bd) -> None:
    send(bd, store)
    head = git(store, "rev-parse", "beadsmail").strip()
    (store / ".git" / "refs" / "heads" / "beadsmail").write_text("2" * 40 + "\n")
    shutil.rmtree(store / ".git" / "beadsmail")
    result = bd(store, "mail", "inbox", "--json", "--identity", "bob")
    assert result.code == 1 and "2222222222" in result.json()["error"]["message"]
    assert "Traceback" not in result.err
    report = doctor(bd, store)
    assert report["missing_objects"][0]["object"] == "2" * 40
    (store / ".git" / "refs" / "heads" / "beadsmail").write_text(head + "\n")
    assert doctor(bd, store, "--fix")["ok"]


def test_stale_locks_are_reported_broken_by_writers_and_removed_by_fix(store: Path, bd) -> None:
    sent = send(bd, store)
    ref_lock = store / ".git" / "refs" / "heads" / "beadsmail.lock"
    obj_lock = store / ".git" / "objects" / "ab" / ("c" * 38 + ".lock")
    obj_lock.parent.mkdir(exist_ok=True)
    for lock in (ref_lock, obj_lock):
        lock.write_bytes(b"")  # what a writer killed mid-write leaves
        os.utime(lock, (time.time() - 120, time.time() - 120))
    report = doctor(bd, store)
    assert failed(report).keys() == {"locks"}
    assert {lk["path"] for lk in report["locks"]} == {str(ref_lock), str(obj_lock)}
    after = send(bd, store, "after the crash")  # the writer breaks the stale ref lock itself
    assert not ref_lock.exists()
    fixed = doctor(bd, store, "--fix")
    assert fixed["ok"] and not obj_lock.exists()
    assert [r["path"] for r in fixed["repairs"]] == [str(obj_lock)]
    assert inbox_ids(bd, store) == {sent["id"], after["id"]}


def test_deleted_and_garbage_index_are_rebuilt_and_said_so(store: Path, bd) -> None:
    ids = {send(bd, store, f"s{i}")["id"] for i in range(3)}
    index = store / ".git" / "beadsmail" / "index.sqlite3"
    for damage in ("delete", "garbage", "truncate"):
        if damage == "delete":
            index.unlink()
        elif damage == "garbage":
            for suffix in ("-wal", "-shm"):
                Path(str(index) + suffix).unlink(missing_ok=True)
            index.write_bytes(os.urandom(8192))
        else:
            data = index.read_bytes()
            index.write_bytes(data[: len(data) // 3])
        report = doctor(bd, store)
        assert report["ok"], (damage, report)
        detail = {c["check"]: c["detail"] for c in report["checks"]}["index"]
        assert damage == "truncate" or "rebuilt" in detail, (damage, detail)
        assert inbox_ids(bd, store) == ids
    with sqlite3.connect(index) as conn:  # an index that lies: a message row removed
        conn.execute("DELETE FROM messages")
    assert failed(doctor(bd, store)).keys() == {"index"}
    assert doctor(bd, store, "--fix")["ok"]
    assert inbox_ids(bd, store) == ids


def test_record_changed_or_removed_by_hand_is_named_and_restored(store: Path, bd) -> None:
    first, second, third = (send(bd, store, s) for s in ("first", "second", "third"))
    assert inbox_ids(bd, store) == {first["id"], second["id"], third["id"]}  # index has folded
    path = own_segment(store)
    lines = faults.segment_bytes(store, path).splitlines(keepends=True)
    edited = lines[1].replace(b'"subject":"second"', b'"subject":"forged"')
    faults.commit_segment(store, path, lines[0] + edited)  # line 2 changed, line 3 removed
    shown = bd(store, "show", second["id"], "--json")
    assert shown.json()["subject"] == "second", "the index keeps the copy first stored"
    report = doctor(bd, store)
    assert failed(report).keys() == {"edits", "index"}
    assert sorted(report["edits"], key=lambda e: e["line"]) == [
        {"id": second["id"], "path": path, "line": 2, "change": "changed"},
        {"id": third["id"], "path": path, "line": 3, "change": "removed"}]
    assert f"{path}:2: record {second['id']} was changed" in failed(report)["edits"]
    fixed = doctor(bd, store, "--fix")
    assert fixed["ok"], fixed
    assert faults.segment_bytes(store, path, top="quarantine") == edited
    assert bd(store, "show", second["id"], "--json").json()["subject"] == "second"
    assert inbox_ids(bd, store) == {first["id"], second["id"], third["id"]}
    shutil.rmtree(store / ".git" / "beadsmail")
    assert inbox_ids(bd, store) == {first["id"], second["id"], third["id"]}
    assert bd(store, "show", second["id"], "--json").json()["subject"] == "second"
    fsck(store)


# -- crashes -----------------------------------------------------------------------------

def test_writers_killed_at_random_moments_lose_nothing(store: Path) -> None:
    """Sends, acks and task moves SIGKILLed mid-way, packers killed mid-repack."""
    faults.configure(store, pack_after=16)  # a background repack after almost every write
    rnd = faults.rng()
    tally = faults.Tally()
    ledger = workloads.Ledger()
    workloads.create_tasks(store, ledger, 3)
    workloads.crash_loop(store, rnd, 24, tally, ledger=ledger)
    assert tally.kills >= 5, tally  # most runs are cut short
    faults.verify_store(store, ledger.ids())
    assert workloads.check_ledger(store, ledger) >= 3
