"""The store: a dedicated ref written with dulwich, seen from every worktree."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import fsck, git
from helpers import write_message

from beadsmail.workspace import Workspace


def test_init_creates_store_ref_without_touching_user_branch(repo: Path, bd) -> None:
    head_before = git(repo, "rev-parse", "HEAD")
    result = bd(repo, "init", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["created_store"] is True and data["ref"] == "refs/heads/beadsmail"
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert bd(repo, "init", "--json").json()["created_store"] is False
    fsck(repo)


def test_init_in_plain_directory_creates_repository(tmp_path: Path, bd) -> None:
    target = tmp_path / "plain"
    target.mkdir()
    result = bd(target, "init", "--json")
    assert result.code == 0, result.err
    assert result.json()["created_repository"] is True
    assert (target / ".git").is_dir()


def test_outside_a_repository_is_one_line_error(tmp_path: Path, bd) -> None:
    result = bd(tmp_path, "where")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "bd init" in result.err
    result = bd(tmp_path, "where", "--json")
    assert result.json()["error"]["type"] == "not_a_repository"


def test_staged_user_file_stays_staged_and_out_of_store(repo: Path) -> None:
    (repo / "staged.txt").write_text("work in progress\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("x\n")
    ws = Workspace.open(repo)
    for i in range(3):
        write_message(ws, subject=f"s{i}")
    status = git(repo, "status", "--porcelain")
    assert "A  staged.txt" in status and "?? untracked.txt" in status
    for commit in git(repo, "rev-list", "beadsmail").split():
        files = git(repo, "ls-tree", "-r", "--name-only", commit).split()
        assert all(f.startswith(".beads/") for f in files), files
    log = git(repo, "log", "--format=%s", "beadsmail")
    assert "mail: alice -> bob" in log
    fsck(repo)


def test_worktrees_and_subdirectories_share_one_store(worktrees: list[Path]) -> None:
    main, wt1, wt2 = worktrees
    (wt2 / "sub" / "deeper").mkdir(parents=True)
    ids = []
    for where in (main, wt1, wt2 / "sub" / "deeper"):
        ws = Workspace.open(where)
        ids.append(write_message(ws)["id"])
        ws.close()
    for where in (main, wt1, wt2 / "sub"):
        ws = Workspace.open(where)
        ws.refresh()
        assert ws.loc.common == (main / ".git").resolve()
        assert ws.index.counts() == {"message": 3}
        assert {ws.index.record(i)["id"] for i in ids} == set(ids)
        ws.close()
    assert len(list((main / ".git" / "beadsmail").glob("index.sqlite3"))) == 1
    fsck(main)


def test_segments_are_per_replica_and_roll(repo: Path) -> None:
    ws = Workspace.open(repo)
    ws.config["store"]["segment_bytes"] = 2000
    for i in range(12):
        write_message(ws, subject=f"s{i}", body="x" * 300)
    files = git(repo, "ls-tree", "-r", "--name-only", "beadsmail").split()
    segments = [f for f in files if f.startswith(".beads/log/")]
    assert len(segments) > 1
    assert {Path(f).parent.name for f in segments} == {ws.replica}
    for f in segments:
        assert len(git(repo, "show", f"beadsmail:{f}").encode()) <= 2000
    ws.index.reset()
    ws.refresh()
    assert ws.index.counts() == {"message": 12}


def test_canonical_bytes_and_ids(repo: Path) -> None:
    ws = Workspace.open(repo)
    record = write_message(ws)
    line = git(repo, "show", f"beadsmail:.beads/log/{ws.replica}/"
               + git(repo, "ls-tree", "--name-only", f"beadsmail:.beads/log/{ws.replica}/").split()[0])
    from beadsmail import records

    # (the feed's first line is its key record: see signing.feed)
    assert line.strip().splitlines()[-1].encode() == records.dumps(record)
    assert record["id"].startswith("bd-") and len(record["id"]) == 16


def test_id_prefix_resolution(repo: Path) -> None:
    from beadsmail.errors import Ambiguous, InvalidInput, NotFound

    ws = Workspace.open(repo)
    rec = write_message(ws)
    rid = rec["id"]
    assert ws.index.resolve(rid, ws.prefix) == rid
    assert ws.index.resolve(rid[:7], ws.prefix) == rid
    assert ws.index.resolve(rid[3:9], ws.prefix) == rid
    for bad in ("bd-ab", "x"):
        try:
            ws.index.resolve(bad, ws.prefix)
        except InvalidInput:
            pass
        else:
            raise AssertionError("short prefix accepted")
    try:
        ws.index.resolve("bd-zzzzzzzz", ws.prefix)
    except NotFound as exc:
        assert "bd-zzzzzzzz" in exc.message
    # force two ids sharing a prefix
    ws.write("alice", [("message", {**_fields(), "id": "bd-aaaa000000001"}),
                       ("message", {**_fields(), "id": "bd-aaaa000000002"})], "two")
    try:
        ws.index.resolve("bd-aaaa", ws.prefix)
    except Ambiguous as exc:
        assert "bd-aaaa000000001" in exc.message and "bd-aaaa000000002" in exc.message
    else:
        raise AssertionError("ambiguous prefix accepted")


def _fields() -> dict:
    from helpers import message_fields

    return message_fields()


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from beadsmail.workspace import Workspace
    from helpers import write_message
    ws = Workspace.open(sys.argv[1])
    for i in range(int(sys.argv[2])):
        write_message(ws, subject=sys.argv[3] + str(i))
""")


def test_concurrent_writers_across_worktrees(worktrees: list[Path]) -> None:
    main, wt1, wt2 = worktrees
    code = WRITER.format(tests=str(Path(__file__).parent))
    places = [main, wt1, wt2, wt1]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p), "100", f"p{n}-"])
             for n, p in enumerate(places)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    ws = Workspace.open(main)
    ws.refresh()
    assert ws.index.counts() == {"message": 400}
    subjects = [r["subject"] for r in ws.index.all_records()]
    assert len(set(subjects)) == 400
    incremental = ws.index.fingerprint()
    ws.index.reset()
    ws.refresh()
    assert ws.index.fingerprint() == incremental
    assert int(git(main, "rev-list", "--count", "beadsmail")) == 400
    fsck(main)
