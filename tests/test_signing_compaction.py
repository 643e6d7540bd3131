"""Compaction of a signed feed through a real bare remote: the owner's cleanup is taken
and verified everywhere; a compaction forged by anyone else is refused, never a fork."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git
from test_signing import view
from test_signing import world as world  # (the fixture)
from test_sync import do_sync

from beadsmail.store.writer import Writer
from beadsmail.workspace import Workspace


def replica_of(clone: Path) -> str:
    ws = Workspace.open(clone)
    try:
        return ws.replica
    finally:
        ws.close()


def put_segment(clone: Path, path: str, data: bytes) -> None:
    """Write ``.beads/log/<path>`` on the store branch as it is (a hostile hand edit)."""
    ws = Workspace.open(clone)
    replica, name = path.split("/")
    try:
        Writer(ws.loc.common, ws.ref).replace_segments(replica, {name: data}, "edit", "mallory")
    finally:
        ws.close()


def stub_line(replica: str, n: int) -> bytes:
    return json.dumps({"hash": f"{n:064d}", "id": f"bd-000000000000{n}", "kind": "dropped",
                       "prev": None, "replica": replica, "seq": 990 + n, "v": 1},
                      sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_a_rewritten_segment_of_stubs_never_stops_a_sync(world) -> None:
    remote, clones, _ = world
    mallory = replica_of(clones[2])
    path = f"{mallory}/2030-01-01-000.jsonl"
    feed = f"refs/heads/beadsmail.feeds/{mallory}"
    put_segment(clones[2], path, stub_line(mallory, 1))
    git(clones[2], "push", "-q", "--force", "origin", f"beadsmail:{feed}")
    do_sync(clones[1])
    put_segment(clones[2], path, stub_line(mallory, 2))  # another line at the same path
    git(clones[2], "push", "-q", "--force", "origin", f"beadsmail:{feed}")
    for _ in range(2):
        report = do_sync(clones[1])  # (raised KeyError: 'clock' in the merge)
        assert report["action"] in ("merged", "up to date"), report
    held = git(clones[1], "show", f"beadsmail:.beads/log/{path}")
    assert "bd-0000000000001" in held and "bd-0000000000002" in held  # nothing dropped
    box, _ = view(clones[1])
    assert box  # the victim still reads its mail


def test_the_union_of_lines_lacking_fields_keeps_the_line_over_its_stub() -> None:
    from beadsmail.boundary import Limits
    from beadsmail.signing import feed
    from beadsmail.store.merge import union_lines

    line = json.dumps({"v": 1, "id": "bd-0000000000007", "kind": "purge", "actor": "alice",
                       "created_at": "2026-01-01T00:00:00Z", "clock": 3, "replica": "a" * 12,
                       "targets": ["bd-0000000000009"], "seq": 4, "prev": None},
                      sort_keys=True, separators=(",", ":")).encode()
    stub = feed.stub(line)
    assert stub is not None
    for a, b in ((line + b"\n", stub + b"\n"), (stub + b"\n", line + b"\n")):
        merged = union_lines(a + stub_line("a" * 12, 1), b + stub_line("a" * 12, 2), Limits())
        assert merged.count(line) == 1 and stub not in merged
        assert merged.count(b'"kind":"dropped"') == 2
