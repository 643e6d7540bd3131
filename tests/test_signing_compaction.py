"""Compaction of a signed feed through a real bare remote: the owner's cleanup is taken
and verified everywhere; a compaction forged by anyone else is refused, never a fork."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git
from test_signing import _replica, fresh_clone, view
from test_signing import world as world  # (the fixture)
from test_sync import do_sync

from beadsmail import cleanup, mail
from beadsmail.signing import feed
from beadsmail.store.writer import Writer
from beadsmail.workspace import Workspace


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
    mallory = _replica(clones[2])
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



# -- the owner's compaction, and one forged by another clone ------------------------------


def segment_holding(clone: Path, record_id: str, replica: str) -> str:
    """``<replica>/<segment>`` of the store branch's segment holding ``record_id``'s line."""
    for name in git(clone, "ls-tree", "-r", "--name-only", "beadsmail").split():
        if name.startswith(f".beads/log/{replica}/") and \
                f'"id":"{record_id}"' in git(clone, "show", f"beadsmail:{name}"):
            return name.removeprefix(".beads/log/")
    raise AssertionError(record_id)


def bindings_forks(clone: Path) -> dict:
    path = clone / ".git" / "beadsmail" / "bindings.json"
    return json.loads(path.read_text()).get("forks", {}) if path.exists() else {}


def signature_problems(clone: Path, bd) -> list[dict]:
    found = bd(clone, "doctor", "--json").json()
    return found["signatures"]


def test_the_owners_cleanup_is_taken_and_verified_on_old_and_fresh_clones(world, tmp_path,
                                                                          bd) -> None:
    remote, clones, msg = world
    ws = Workspace.open(clones[1])
    mail.ack(ws, "bob", [msg["id"]])
    ws.close()
    do_sync(clones[1])
    do_sync(clones[0])
    ws = Workspace.open(clones[0])
    done = cleanup.cleanup(ws, "alice", force=True)
    ws.close()
    assert done["count"] == 1 and done["compacted_segments"], done
    do_sync(clones[0])
    report = do_sync(clones[1])
    assert not [w for w in report["warnings"] if "neither is an append" in w], report
    path = segment_holding(clones[0], msg["id"], _replica(clones[0]))
    held = git(clones[1], "show", f"beadsmail:.beads/log/{path}")
    assert held == git(clones[0], "show", f"beadsmail:.beads/log/{path}")  # (taken as it is)
    marker = [json.loads(x) for x in held.splitlines() if '"kind":"compaction"' in x][-1]
    assert marker["removed"] == [msg["id"]] and "sig" in marker and marker["hashes"]
    fresh = fresh_clone(remote, tmp_path / "fresh")
    for clone in (clones[1], fresh):
        assert bd(clone, "index", "rebuild").code == 0
        box, problems = view(clone)
        assert msg["id"] not in box and problems == [], problems
        assert signature_problems(clone, bd) == [] and bindings_forks(clone) == {}


def forge_compaction(clones, record: dict, key=None) -> str:
    """On the attacker's clone: replace the line of ``record_id`` in its owner's segment
    by its ``dropped`` stub and append a compaction marker naming the owner (unsigned, or
    signed with ``key``); push it inside the attacker's own feed ref."""
    record_id = record["id"]
    path = segment_holding(clones[2], record_id, _replica(clones[0]))
    owner, name = path.split("/")
    lines = git(clones[2], "show", f"beadsmail:.beads/log/{path}").encode().splitlines()
    out = [feed.stub(x) if record_id.encode() in x else x for x in lines]
    last = json.loads(lines[-1])
    removed = [x for x in lines if record_id.encode() in x]
    marker = {"v": 1, "id": "bd-0000000000zzz", "kind": "compaction", "actor": last["actor"],
              "created_at": last["created_at"], "clock": last["clock"], "replica": owner,
              "segment": name, "removed": [record_id]}
    if key is not None:  # (as the owner's cleanup writes it, with the forger's key)
        marker["hashes"] = [feed.line_hash(x) for x in removed]
        feed.seal_marker(marker, key)
    out.append(json.dumps(marker, sort_keys=True, separators=(",", ":")).encode())
    put_segment(clones[2], path, b"".join(x + b"\n" for x in out))
    mallory = _replica(clones[2])
    git(clones[2], "push", "-q", "--force", "origin",
        f"beadsmail:refs/heads/beadsmail.feeds/{mallory}")
    return path


@pytest.mark.parametrize("signer", ["unsigned", "the forger's key"])
def test_a_forged_compaction_drops_nothing_and_is_no_fork(world, tmp_path, bd, signer) -> None:
    remote, clones, msg = world
    ws = Workspace.open(clones[0])
    second = mail.send(ws, "alice", ["bob"], "second", "signed after the first")
    ws.close()
    for clone in clones:
        do_sync(clone)
    key = None
    if signer != "unsigned":
        ws = Workspace.open(clones[2])
        key = ws.signer.key
        ws.close()
    path = forge_compaction(clones, msg, key)
    report = do_sync(clones[1])
    assert not [w for w in report["warnings"] if "compacted by its owner" in w], report
    assert msg["id"] in git(clones[1], "show", f"beadsmail:.beads/log/{path}")
    fresh = fresh_clone(remote, tmp_path / "fresh")
    for clone in (clones[1], fresh):
        for _ in range(2):  # (the incremental fold, then a rebuild)
            box, _ = view(clone)
            assert {msg["id"], second["id"]} <= set(box), clone
            assert bindings_forks(clone) == {}
            assert bd(clone, "index", "rebuild").code == 0
        whys = [p["why"] for p in signature_problems(clone, bd) if p["path"] == path]
        assert any("did not sign" in w for w in whys), whys
        assert any("no compaction signed by this feed's key" in w for w in whys), whys
        assert not any("fork" in w for w in whys), whys
    # alice writes on: her later mail reaches the victim too
    ws = Workspace.open(clones[0])
    later = mail.send(ws, "alice", ["bob"], "later", "x")
    ws.close()
    do_sync(clones[0])
    do_sync(clones[1])
    box, _ = view(clones[1])
    assert {msg["id"], second["id"], later["id"]} <= set(box)
    # nor does the forged marker get into the owner's own segment when she merges it
    own = git(clones[0], "show", f"beadsmail:.beads/log/{path}")
    assert "bd-0000000000zzz" not in own and '"kind":"dropped"' not in own
