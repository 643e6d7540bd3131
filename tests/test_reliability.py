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
import subprocess
import sys
import time
from pathlib import Path

import faults
import pytest
import workloads
from conftest import fsck, git, run_bd_proc
from helpers import approve_hooks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beadsmail.workspace import Workspace


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
        stored = json.loads(content.splitlines()[-1])
        line = json.dumps(dict(stored, id="bd-zzzzzzzzzzzzz", priority=9)).encode() + b"\n"
    faults.commit_segment(store, path, content + line)
    second = send(bd, store, "second")  # written after the damage: must not be swallowed by it
    assert inbox_ids(bd, store) == {first["id"], second["id"]}
    report = doctor(bd, store)
    assert set(failed(report)) == {"records"}
    bad = report["bad_lines"]
    assert [(b["path"], b["line"]) for b in bad] == [(path, 3)], bad  # (1: the feed's key)
    assert words in bad[0]["error"]
    text = bd(store, "doctor")
    assert text.code == 1 and f"{path}:3:" in text.out
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



def drop_index(store: Path) -> None:
    """Remove the index (every generation of it), as a user clearing a cache would; the
    replica id and signing key beside it stay (removing those makes the clone a new writer)."""
    for path in (store / ".git" / "beadsmail").glob("index.sqlite3*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

def test_missing_object_is_named_and_the_rest_stays_readable_and_writable(store: Path,
                                                                          bd) -> None:
    faults.configure(store, segment_bytes=200)  # one message per segment
    zeroth = send(bd, store, "zeroth")  # (with the feed's key record: see below)
    first = send(bd, store, "first")
    second = send(bd, store, "second")
    lost_path, kept_path = faults.segments(store)[1:3]
    lost = faults.blob_id(store, lost_path)
    obj = faults.object_file(store, lost)
    saved = obj.read_bytes()
    obj.unlink()
    drop_index(store)  # a fresh index must fold around the hole
    assert inbox_ids(bd, store) == {zeroth["id"], second["id"]}
    report = doctor(bd, store)
    # (the hole also shows in the signed feed: lines missing before the second message)
    assert set(failed(report)) == {"objects", "records", "signatures"}
    assert report["missing_objects"] == [{"object": lost, "path": lost_path,
                                          "head": "refs/heads/beadsmail", "what": "segment"}]
    assert lost in failed(report)["objects"]
    assert [(b["path"], b["line"]) for b in report["bad_lines"]] == [(lost_path, 0)]
    third = send(bd, store, "third")
    assert inbox_ids(bd, store) == {zeroth["id"], second["id"], third["id"]}
    assert not doctor(bd, store, "--fix")["ok"], "a missing object cannot be made up"
    obj.parent.mkdir(exist_ok=True)
    obj.write_bytes(saved)  # brought back, e.g. from another clone
    fixed = doctor(bd, store, "--fix")
    assert fixed["ok"], failed(fixed)
    assert inbox_ids(bd, store) == {zeroth["id"], first["id"], second["id"], third["id"]}
    assert kept_path in faults.segments(store)
    fsck(store)


def test_missing_commit_is_one_clear_error_naming_it(store: Path, bd) -> None:
    send(bd, store)
    head = git(store, "rev-parse", "beadsmail").strip()
    (store / ".git" / "refs" / "heads" / "beadsmail").write_text("2" * 40 + "\n")
    drop_index(store)
    result = bd(store, "mail", "inbox", "--json", "--identity", "bob")
    assert result.code == 1 and "2222222222" in result.json()["error"]["message"]
    assert "Traceback" not in result.err
    report = doctor(bd, store)
    assert report["missing_objects"][0]["object"] == "2" * 40
    (store / ".git" / "refs" / "heads" / "beadsmail").write_text(head + "\n")
    assert doctor(bd, store, "--fix")["ok"]


def test_a_stuck_lock_holder_makes_writers_give_up_naming_it(store: Path, bd) -> None:
    before = send(bd, store, "before")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nsys.argv = ['bd', 'index', 'rebuild']\n"
         "from beadsmail.workspace import Workspace\nws = Workspace.open('.')\n"
         "with ws.lock():\n    print('held', flush=True)\n    time.sleep(600)"],
        cwd=store, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (store / ".beads" / "config.yaml").write_text("store:\n  lock_timeout: 0.3\n")
        head = git(store, "rev-parse", "refs/heads/beadsmail")
        started = time.monotonic()
        result = run_bd_proc(store, "mail", "send", "bob", "-s", "blocked", "-m", "x",
                             "--identity", "alice")
        assert time.monotonic() - started < 300  # it gave up long before the holder let go
        assert result.code == 1 and result.out == ""
        assert result.err.splitlines() == [result.err.strip()]
        assert result.err.startswith(f"error: the store is locked by pid {holder.pid} "
                                     "(bd index rebuild, for "), result.err
        assert "store.lock_timeout" in result.err
        assert git(store, "rev-parse", "refs/heads/beadsmail") == head
    finally:
        holder.kill()
        holder.wait()
    assert send(bd, store, "after")["id"] != before["id"]  # released by the kernel
    for bad in ("0", "-1", "soon", "true"):
        (store / ".beads" / "config.yaml").write_text(f"store:\n  lock_timeout: {bad}\n")
        result = bd(store, "mail", "send", "bob", "-s", "x", "-m", "x", "--identity", "alice")
        assert result.code == 1 and "store.lock_timeout" in result.err, (bad, result.err)
    fsck(store)


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
    assert {(lk["path"], lk["blocks"]) for lk in report["locks"]} == {
        (str(ref_lock), True), (str(obj_lock), False)}
    after = send(bd, store, "after the crash")  # the writer breaks the stale ref lock itself
    assert not ref_lock.exists()
    report = doctor(bd, store)
    assert report["ok"] and [lk["path"] for lk in report["locks"]] == [str(obj_lock)], \
        "an object's lock file is only litter: mentioned, not a failure"
    fixed = doctor(bd, store, "--fix")
    assert fixed["ok"] and not obj_lock.exists()
    assert [r["path"] for r in fixed["repairs"]] == [str(obj_lock)]
    assert inbox_ids(bd, store) == {sent["id"], after["id"]}
    from beadsmail.store.pack import sweep_object_locks

    obj_lock.write_bytes(b"")
    os.utime(obj_lock, (time.time() - 120, time.time() - 120))
    assert sweep_object_locks(store / ".git") == 1 and not obj_lock.exists()


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
        # a real process: in this one, older connections would still see the old file
        result = run_bd_proc(store, "doctor", "--json")
        report = result.json()
        assert result.code == 0 and report["ok"], (damage, report)
        detail = {c["check"]: c["detail"] for c in report["checks"]}["index"]
        assert damage == "truncate" or "rebuilt" in detail, (damage, detail)
        listing = run_bd_proc(store, "mail", "inbox", "--identity", "bob", "--json")
        assert {m["id"] for m in listing.json()} == ids
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
    # (line 1 is the feed's key record)
    edited = lines[2].replace(b'"subject":"second"', b'"subject":"forged"')
    faults.commit_segment(store, path, lines[0] + lines[1] + edited)  # 3 changed, 4 removed
    shown = bd(store, "show", second["id"], "--json")
    assert shown.json()["subject"] == "second", "the index keeps the copy first stored"
    report = doctor(bd, store)
    # (the changed line's signature no longer holds: the signed feed says so too)
    assert failed(report).keys() == {"edits", "index", "signatures"}
    assert sorted(report["edits"], key=lambda e: e["line"]) == [
        {"id": second["id"], "path": path, "line": 3, "change": "changed"},
        {"id": third["id"], "path": path, "line": 4, "change": "removed"}]
    assert f"{path}:3: record {second['id']} was changed" in failed(report)["edits"]
    fixed = doctor(bd, store, "--fix")
    assert fixed["ok"], fixed
    assert faults.segment_bytes(store, path, top="quarantine") == edited
    assert bd(store, "show", second["id"], "--json").json()["subject"] == "second"
    assert inbox_ids(bd, store) == {first["id"], second["id"], third["id"]}
    drop_index(store)
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
    workloads.crash_loop(store, rnd, 16, tally, max_delay=0.18, ledger=ledger)
    assert tally.kills >= 4, tally  # most runs are cut short
    faults.verify_store(store, ledger.ids())
    assert workloads.check_ledger(store, ledger) >= 3


# -- hostile input ------------------------------------------------------------------------

CANARY = "pwned"


def examples(n: int) -> int:
    """Hypothesis examples; the torture run multiplies them (BEADS_HOSTILE_SCALE)."""
    return max(1, int(n * float(os.environ.get("BEADS_HOSTILE_SCALE", "1"))))


NASTY = st.sampled_from([
    "../../x", "../../../etc/passwd", "/etc/passwd", "..", ".", "-", "--json", "-rf",
    f"$(touch {CANARY})", f"`touch {CANARY}`", f"; touch {CANARY}", f"| touch {CANARY}",
    f"&& touch {CANARY}", "' OR 1=1 --", '"; DROP TABLE messages; --', "%s%n%x", "\\x00",
    "\x00", "\x1b[2J\x1b[31mred", "\r\nInjected: header", "\u202e\u0645\u0631\u062d\u0628\u0627",
    "\ud7ff\ue000\U0010ffff", "bd-", "bd-zzzz", "bd-" + "z" * 13, "#", "@", "*", "#Chan", "a" * 70,
    "x" * 70000, "{}", "[]", "null", '{"__proto__": {"x": 1}}', '{"a": ' * 50 + "1" + "}" * 50,
])
TEXT = st.one_of(NASTY, st.text(max_size=80), st.text(
    alphabet=st.characters(max_codepoint=0x20, blacklist_categories=()), max_size=20))


def _tree(root: Path) -> set[str]:
    """Every path under ``root`` except git's own object and ref machinery (not walked at
    all: the background repack may remove an object directory meanwhile)."""
    skip = {"objects", "refs", "logs", "beadsmail", "worktrees"}
    out = set()
    for top, dirs, files in os.walk(root):
        rel = Path(top).relative_to(root)
        if rel.name == ".git":
            dirs[:] = [d for d in dirs if d not in skip]
        out.update(str(rel / name) for name in dirs + files)
    return out


def _canaries(root: Path) -> list[str]:
    """Files an injected shell command would have made, anywhere under ``root``."""
    return [p for p in _tree(root) if Path(p).name == CANARY]


def _one_clean_line(result, args) -> None:
    assert result.code in (0, 1, 2), (args, result.code, result.err)
    assert "Traceback" not in result.err + result.out, (args, result.err)
    assert "internal error" not in result.err + result.out, (args, result.err)
    if result.code == 1:
        if "--json" in args:
            doc = json.loads(result.out)  # one error object; 'mail ack' lists one per id
            assert set(doc) == {"error"} or (args[:2] == ("mail", "ack") and doc["errors"]), \
                (args, result.out)
        else:  # one line; 'mail ack' of several ids says one line per id it could not ack
            lines = result.err.splitlines()
            assert lines and all(line.startswith("error: ") for line in lines), (args, lines)
            assert len(lines) == 1 or args[:2] == ("mail", "ack"), (args, lines)


COMMANDS = [
    lambda a, b, c: ("mail", "send", a, "-s", b, "-m", c, "--identity", "alice", "--json"),
    lambda a, b, c: ("mail", "send", "bob", "-s", a, "-m", b, "--identity", c, "--json"),
    lambda a, b, c: ("mail", "send", "bob", "-s", "s", "-m", "m", "--metadata", a, "--context",
                     b, "--identity", "alice", "--json"),
    lambda a, b, c: ("mail", "read", a, "--identity", "bob", "--json"),
    lambda a, b, c: ("mail", "ack", a, b, "--identity", "bob"),
    lambda a, b, c: ("show", a, "--json"),
    lambda a, b, c: ("task", "create", "--title", a, "--description", b, "--identity", "alice"),
    lambda a, b, c: ("task", "status", a, b, "--version", "1", "--identity", "alice", "--json"),
    lambda a, b, c: ("channel", "create", a, "--identity", "alice", "--json"),
    lambda a, b, c: ("agent", "register", a, "--role", "worker", "--identity", a, "--json"),
    lambda a, b, c: ("mail", "inbox", "--identity", a, "--from", b, "--json"),
    lambda a, b, c: ("init", a),
]


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    from conftest import make_repo, run_bd

    root = tmp_path_factory.mktemp("hostile")
    repo = make_repo(root / "deep" / "er" / "repo")
    assert run_bd(repo, "init").code == 0
    hooks = repo / ".beads" / "hooks"
    hooks.mkdir(parents=True)
    return repo


@settings(max_examples=examples(80), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.integers(0, len(COMMANDS) - 1), a=TEXT, b=TEXT, c=TEXT)
def test_hostile_cli_input_never_tracebacks_or_writes_outside_the_store(
        hostile_store: Path, bd, which: int, a: str, b: str, c: str) -> None:
    repo = hostile_store
    root = repo.parent.parent.parent
    before = _tree(root)
    args = COMMANDS[which](a, b, c)
    result = bd(repo, *args)
    _one_clean_line(result, args)
    if args[0] == "init" and result.code == 0:
        return  # init may create a repository where it was asked to; checked below
    assert _tree(root) == before, (args, _tree(root) ^ before)
    assert not _canaries(root) and not (repo / CANARY).exists()
    if result.code == 0 and args[:2] == ("mail", "send"):
        stored = bd(repo, "show", result.json()["id"], "--json").json()
        assert (stored["subject"], stored["body"]) == (result.json()["subject"],
                                                      result.json()["body"])


def test_init_with_traversal_creates_only_where_asked(tmp_path: Path, bd) -> None:
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    result = bd(start, "init", "../../x/../y", "--json")
    assert result.code == 0, result.err
    assert Path(result.json()["repository"]) == (tmp_path / "y").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "y"]


@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sender=TEXT, to=st.lists(TEXT, max_size=3), subject=TEXT, body=TEXT,
       metadata=st.dictionaries(TEXT, st.recursive(st.none() | st.booleans() | st.integers()
                                                   | st.floats(allow_nan=True) | TEXT,
                                                   lambda inner: st.lists(inner, max_size=3)
                                                   | st.dictionaries(TEXT, inner, max_size=3),
                                                   max_leaves=10), max_size=3),
       token=TEXT)
def test_hostile_python_api_input_is_refused_with_a_domain_error(
        hostile_store: Path, sender, to, subject, body, metadata, token) -> None:
    from beadsmail import mail, tasks
    from beadsmail.errors import BeadsError

    ws = Workspace.open(hostile_store)
    try:
        for call in (lambda: mail.send(ws, sender, to, subject, body, metadata=metadata),
                     lambda: tasks.create(ws, sender, subject, body),
                     lambda: ws.index.resolve(token, ws.prefix),
                     lambda: mail.read(ws, "bob", token)):
            try:
                stored = call()
            except BeadsError as exc:
                assert exc.message and "\n" not in exc.message.strip()
                continue
            if isinstance(stored, dict) and stored.get("subject") is not None:
                again = ws.index.record(stored["id"])
                assert again["subject"] == stored["subject"] and again["body"] == stored["body"]
    finally:
        ws.close()
    assert not _canaries(hostile_store.parent)


@settings(max_examples=examples(12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(subject=NASTY.filter(lambda s: s.strip() and len(s) < 500 and s.isprintable()),
       body=TEXT.filter(lambda s: s.strip() and len(s) < 60000))
def test_hooks_get_shell_metacharacters_as_plain_argv_and_stdin(hostile_store: Path, bd,
                                                                subject: str, body: str) -> None:
    repo = hostile_store
    record = repo.parent / "hook-record.json"
    hook = repo / ".beads" / "hooks" / "on_message"
    hook.write_text("#!" + sys.executable + "\nimport json, sys\n"
                    f"open({str(record)!r}, 'w').write(json.dumps("
                    "{'argv': sys.argv[1:], 'stdin': sys.stdin.read()}))\n")
    hook.chmod(0o755)
    approve_hooks(repo)
    try:
        result = bd(repo, "mail", "send", "bob", "-s", subject, "-m", body, "--identity",
                    "alice", "--json")
        _one_clean_line(result, ("--json",))
        if result.code != 0:
            return
        sent = result.json()
        seen = json.loads(record.read_text())
        assert seen["argv"] == [sent["id"], "message"], "exactly two arguments, never split"
        payload = json.loads(seen["stdin"])
        assert (payload["subject"], payload["body"]) == (sent["subject"], sent["body"])
        assert not _canaries(repo.parent)
    finally:
        hook.unlink()
        record.unlink(missing_ok=True)


# -- disk and environment faults -----------------------------------------------------------

def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "beadsmail").strip()


def test_full_disk_is_a_clear_error_and_nothing_is_half_written(tmp_path: Path, bd) -> None:
    from conftest import make_repo

    with faults.tmpfs(tmp_path / "disk", "4m") as disk:
        repo = make_repo(disk / "repo")
        assert bd(repo, "init").code == 0
        kept = {send(bd, repo, f"before {i}")["id"] for i in range(3)}
        for leave in (0, 8192, 40000, 100000):
            faults.fill(disk, leave)
            try:
                before = _head(repo)
                result = run_bd_proc(repo, "mail", "send", "bob", "-s", "big", "-m", "x" * 60000,
                                     "--identity", "alice", "--json")
                _one_clean_line(result, ("--json",))
                assert "Exception ignored" not in result.err, result.err
                if result.code == 0:  # it fitted: then it is stored, index or not
                    kept.add(result.json()["id"])
                else:
                    error = result.json()["error"]["message"]
                    assert "free some space" in error, error
                    assert _head(repo) == before, "the ref moved though the write failed"
                listing = bd(repo, "mail", "inbox", "--identity", "bob", "--json")
                _one_clean_line(listing, ("--json",))
            finally:
                faults.unfill(disk)
        kept.add(send(bd, repo, "after")["id"])
        assert inbox_ids(bd, repo) == kept
        faults.verify_store(repo, kept)


def test_read_only_repository_is_a_clear_error_and_writes_nothing(store: Path, bd) -> None:
    sent = send(bd, store)
    before = _head(store)
    with faults.read_only(store / ".git"):
        for args in (("mail", "send", "bob", "-s", "s", "-m", "m", "--identity", "alice"),
                     ("mail", "inbox", "--identity", "bob"), ("task", "create", "--title", "t",
                                                              "--identity", "alice")):
            result = bd(store, *args, "--json")
            _one_clean_line(result, ("--json",))
            if result.code == 1:
                assert ".git directory" in result.json()["error"]["message"], result.out
            else:
                assert args[1] == "inbox"  # reading may work from an up-to-date index
    assert _head(store) == before
    assert inbox_ids(bd, store) == {sent["id"]}
    faults.verify_store(store, {sent["id"]})


NO_PASSWD_ENTRY = (  # this uid has no entry in the user database, as in a bare container
    "import pwd, runpy, sys\n"
    "def missing(uid):\n    raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
    "pwd.getpwuid = missing\n"
    "sys.argv[0] = 'bd'\n"
    "runpy.run_module('beadsmail', run_name='__main__', alter_sys=True)\n")


def _without_a_user(shared: Path) -> list[list[str]]:
    """Ways to run ``bd`` with no user name at all: always this uid with its user database
    entry gone; also, as root, a real uid without an entry when that uid can reach this
    interpreter (a checkout inside a private home is out of its reach)."""
    ways = [[sys.executable, "-c", NO_PASSWD_ENTRY]]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefix = ["setpriv", "--reuid=54321", "--regid=54321", "--clear-groups"]
        probe = subprocess.run([*prefix, sys.executable, "-c", "import beadsmail, dulwich"],
                               cwd=shared, capture_output=True)
        if probe.returncode == 0:
            ways.append([*prefix, *faults.BD])
    return ways


def test_missing_home_and_user(store: Path) -> None:
    bare_env = {"PATH": os.environ["PATH"]}
    run = subprocess.run([*faults.BD, "mail", "send", "bob", "-s", "s", "-m", "m",
                          "--identity", "alice", "--json"], cwd=store, env=bare_env,
                         capture_output=True, text=True)
    assert run.returncode == 0 and json.loads(run.stdout)["from"] == "alice", run.stderr
    import tempfile

    from conftest import make_repo

    shared = Path(tempfile.mkdtemp(prefix="beadsmail-nouser-"))  # reachable by any uid
    try:
        repo = make_repo(shared / "repo")
        assert subprocess.run([*faults.BD, "init"], cwd=repo, env=faults.env(),
                              capture_output=True).returncode == 0
        head = git(repo, "rev-parse", "beadsmail")
        subprocess.run(["chmod", "-R", "a+rwX", str(shared)], check=True)
        for way in _without_a_user(shared):
            for args in (("whoami", "--json"), ("mail", "send", "bob", "-s", "s", "-m", "m",
                                                "--json"), ("mail", "inbox", "--json")):
                nobody = subprocess.run([*way, *args], cwd=repo, env=bare_env,
                                        capture_output=True, text=True)
                assert nobody.returncode == 1, (way, nobody.stdout + nobody.stderr)
                error = json.loads(nobody.stdout)["error"]["message"]
                assert error == "no identity: pass --identity NAME or set BEADS_IDENTITY", error
                assert "Traceback" not in nobody.stderr
        assert git(repo, "rev-parse", "beadsmail") == head, "nothing was written"
    finally:
        shutil.rmtree(shared)


# -- concurrency --------------------------------------------------------------------------------

def test_eight_agents_across_worktrees_exact_counts_and_one_winner_per_version(
        worktrees: list[Path], bd) -> None:
    assert bd(worktrees[0], "init").code == 0
    ledger = workloads.Ledger()
    workloads.create_tasks(worktrees[0], ledger, 2)  # few tasks: many movers race on each
    out = workloads.concurrent_mix(worktrees, 1.8, sorted(ledger.tasks), seed=7,
                                   until=lambda o: len(o.sent) >= 3 and len(o.wins) >= 2)
    print(f"sent={len(out.sent)} acked={len(out.acked)} wins={len(out.wins)} "
          f"conflicts={out.conflicts}")
    assert len(out.sent) >= 3 and len(out.wins) >= 2, out
    checked = workloads.check_outcome(worktrees[1], out)
    assert checked >= 5
    faults.verify_store(worktrees[2], set(out.sent))


# -- sync ------------------------------------------------------------------------------------

def test_push_blocked_by_a_dead_process_lock_on_the_remote_names_the_file(store: Path,
                                                                          bd) -> None:
    remote = workloads.bare_remote(store)
    send(bd, store, "before")
    first = bd(store, "sync", "origin", "--json")
    assert first.code == 0
    feed = first.json()["feed"]
    sent = send(bd, store, "while the remote is locked")
    lock = remote / (feed + ".lock")  # this clone's feed ref, the only one it pushes
    lock.write_text("")
    result = bd(store, "sync", "origin", "--json")
    assert result.code == 1
    assert f"locked by {lock}" in result.json()["error"]["message"]
    assert sent["id"] not in git(remote, "show", f"{feed}:.beads/log/" + own_segment(store))
    lock.unlink()
    assert bd(store, "sync", "origin", "--json").json()["pushed"] is True
    assert sent["id"] in git(remote, "show", f"{feed}:.beads/log/" + own_segment(store))
