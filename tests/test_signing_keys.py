"""A feed's key is remembered like a pin, and a segment put in front of a feed is refused.

The hostile collaborator (clone2 of ``world``) writes a new segment into alice's replica
directory that sorts before her real ones: a fresh key's ``publish`` (seq 1) and a
message "from alice", both signed with that new key, and pushes it inside its own feed
ref. A clone that verified alice's feed before keeps it, before and after a rebuild.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git
from test_signing import _replica, fresh_clone, split_rebuild, view
from test_signing import world as world  # (the fixture: alice, the old clone, the forger)
from test_sync import do_sync

from beadsmail import agents, mail
from beadsmail import records as rec
from beadsmail.signing import feed, keys
from beadsmail.workspace import Workspace

EARLY = "2000-01-01-000.jsonl"


def _prepended(clone: Path, replica: str) -> tuple[dict, bytes]:
    """A self-consistent feed start for ``replica`` under a new key: its publish and a
    message from alice (the record and the segment's bytes)."""
    ws = Workspace.open(clone)
    fields = {**mail.compose(ws, "alice", ["bob"], "PREPENDED", "forged"),
              "thread_id": "bd-00000000000p1", "replies_to": None, "id": "bd-00000000000p1"}
    ws.close()
    msg = rec.make("message", "alice", 1, replica, "bd-", **fields)
    _, lines = feed.seal([msg], None, keys.SigningKey.generate(),
                         lambda f: rec.make("key", "alice", 1, replica, "bd-", **f))
    return msg, b"".join(line + b"\n" for line in lines)


def _put_early_segment(clone: Path, replica: str) -> dict:
    """Write the prepended segment into ``clone``'s store branch (not its own directory)."""
    from beadsmail.store.writer import Writer

    msg, data = _prepended(clone, replica)
    ws = Workspace.open(clone)
    Writer(ws.loc.common, ws.ref).replace_segments(replica, {EARLY: data}, "prepend", "mallory")
    ws.close()
    return msg


def _inbox_and_agents(clone: Path) -> tuple[dict, list[dict], set[str]]:
    box, found = view(clone)
    ws = Workspace.open(clone)
    try:
        return box, found, {a["id"] for a in agents.list_agents(ws)}
    finally:
        ws.close()


def _keys_seen(clone: Path) -> dict[str, str]:
    path = clone / ".git" / "beadsmail" / "bindings.json"
    return json.loads(path.read_text()).get("keys_seen", {})


def _assert_alice_kept(clone: Path, msg: dict, fake: dict, alice: str) -> list[dict]:
    box, found, registered = _inbox_and_agents(clone)
    assert box[msg["id"]]["verified"] == "verified" and box[msg["id"]]["signed_by"] == alice
    assert fake["id"] not in box
    assert {"alice", "bob"} <= registered
    # nothing of alice's real feed is blamed: only lines of the early segment, if any
    assert all(p["path"] == f"{alice}/{EARLY}" for p in found), found
    return found


def test_a_segment_put_in_front_of_a_feed_is_refused_by_the_merge_and_the_fold(
        world, tmp_path, bd) -> None:
    remote, clones, msg = world
    alice, mallory = _replica(clones[0]), _replica(clones[2])
    fake = _put_early_segment(clones[2], alice)
    git(clones[2], "push", "-q", "--force", "origin",
        f"beadsmail:refs/heads/beadsmail.feeds/{mallory}")
    report = do_sync(clones[1])
    refused = [w for w in report["warnings"] if f"{alice}/{EARLY}" in w]
    assert refused and "sorts before" in refused[0], report["warnings"]
    held = git(clones[1], "ls-tree", "-r", "--name-only", "beadsmail").split()
    assert f".beads/log/{alice}/{EARLY}" not in held
    _assert_alice_kept(clones[1], msg, fake, alice)
    doctor = bd(clones[1], "doctor", "--json")
    assert doctor.code == 0, doctor.out
    assert doctor.json()["ok"], doctor.json()["checks"]
    rejected = [r for r in doctor.json()["rejected"] if r["path"] == f"{alice}/{EARLY}"]
    assert rejected and "sorts before" in rejected[0]["error"], doctor.json()["rejected"]
    assert bd(clones[1], "index", "rebuild").code == 0
    _assert_alice_kept(clones[1], msg, fake, alice)
    assert bd(clones[1], "doctor", "--json").json()["ok"]
    # the next honest write of alice still arrives
    ws = Workspace.open(clones[0])
    later = mail.send(ws, "alice", ["bob"], "later", "x")
    ws.close()
    do_sync(clones[0])
    do_sync(clones[1])
    box, _, _ = _inbox_and_agents(clones[1])
    assert box[later["id"]]["verified"] == "verified"


def test_a_clone_keeps_the_key_it_verified_even_when_a_prepended_segment_is_held(
        world, tmp_path, bd) -> None:
    """The second layer alone: the early segment sits in the victim's own store branch
    (as a merge before this rule took it), and the index is built anew."""
    remote, clones, msg = world
    alice = _replica(clones[0])
    view(clones[1])
    fake = _put_early_segment(clones[1], alice)
    _assert_alice_kept(clones[1], msg, fake, alice)  # (its message: not alice's key)
    for _ in range(2):
        assert bd(clones[1], "index", "rebuild").code == 0
        found = _assert_alice_kept(clones[1], msg, fake, alice)
        assert any("a second key for replica" in p["why"] and "verified before" in p["why"]
                   for p in found), found
    assert bd(clones[1], "doctor", "--json").json()["ok"]
    assert _keys_seen(clones[1])[alice] == _alice_key(clones[0])
    # a fresh clone cannot tell which key is right, unless it imports a trust file
    exported = bd(clones[1], "agent", "trust", "--export")
    (tmp_path / "trust.json").write_text(exported.out)
    assert json.loads(exported.out)["keys"][alice] == _alice_key(clones[0])
    do_sync(clones[1])
    careful = tmp_path / "careful"
    git(tmp_path, "clone", "-q", str(remote), str(careful))
    assert bd(careful, "agent", "trust", "--import", str(tmp_path / "trust.json")).code == 0
    do_sync(careful)
    _assert_alice_kept(careful, msg, fake, alice)


def _alice_key(clone: Path) -> str:
    ws = Workspace.open(clone)
    try:
        return ws.signer.key.openssh_public
    finally:
        ws.close()


def test_the_remembered_key_is_the_first_not_a_rotated_one(world, tmp_path, bd) -> None:
    remote, clones, msg = world
    alice = _replica(clones[0])
    first = _alice_key(clones[0])
    assert bd(clones[0], "agent", "keys", "--rotate").code == 0
    ws = Workspace.open(clones[0])
    after = mail.send(ws, "alice", ["bob"], "after rotation", "x")
    ws.close()
    do_sync(clones[0])
    do_sync(clones[1])
    fresh = fresh_clone(remote, tmp_path / "fresh")
    for clone in (clones[1], fresh):
        box, found = view(clone)
        assert box[after["id"]]["verified"] == "verified" and found == []
        assert _keys_seen(clone)[alice] == first
        assert bd(clone, "index", "rebuild").code == 0
        assert view(clone)[1] == []
    exported = bd(fresh, "agent", "trust", "--export")
    assert json.loads(exported.out)["keys"][alice] == first  # (pins the feed's seq-1 key)
    (tmp_path / "trust.json").write_text(exported.out)
    careful = tmp_path / "careful"
    git(tmp_path, "clone", "-q", str(remote), str(careful))
    assert bd(careful, "agent", "trust", "--import", str(tmp_path / "trust.json")).code == 0
    do_sync(careful)
    box, found = view(careful)
    assert box[after["id"]]["verified"] == "verified" and found == []


def test_a_split_build_remembers_keys_verified_by_its_child(world, tmp_path, monkeypatch) -> None:
    """A build split with a child process (``buildparts``) remembers the keys of feeds
    whose start the child verified, as a build in one piece does."""


    remote, clones, msg = world
    # many segments for the replica that sorts first, so that the later one's feed
    # starts in the half the child reads
    early, late = sorted([clones[0], clones[2]], key=_replica)
    who = "alice" if early == clones[0] else "mallory"
    (early / ".beads").mkdir(exist_ok=True)
    (early / ".beads" / "config.yaml").write_text("store:\n  segment_bytes: 300\n")
    ws = Workspace.open(early)
    for n in range(6):  # (a segment each)
        mail.send(ws, who, ["bob"], f"filler {n}", "x")
    ws.close()
    do_sync(early)
    fresh = fresh_clone(remote, tmp_path / "fresh")
    view(fresh)
    whole = _keys_seen(fresh)
    assert set(whole) == {_replica(early), _replica(late)}
    split_rebuild(fresh, monkeypatch)  # (keys learned again, in two processes)
    assert _keys_seen(fresh) == whole


def test_a_clock_set_back_never_names_a_segment_before_the_newest(repo: Path) -> None:
    """Other clones refuse a new segment that sorts before one they hold of its replica,
    so a writer whose clock went back keeps appending under its newest segment's date."""
    from helpers import write_message

    ws = Workspace.open(repo)
    write_message(ws, subject="today")
    later = ws.writer.append(ws.replica, [b'{"x":1}'], "later", "alice", "2999-01-01", 1 << 20)
    back = ws.writer.append(ws.replica, [b'{"x":2}'], "back", "alice", "2000-01-01", 1 << 20)
    ws.close()
    assert later[1] == back[1] == f"{ws.replica}/2999-01-01-000.jsonl"
