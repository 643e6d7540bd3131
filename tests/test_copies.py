"""Records met more than once (``beadsmail/index/copies.py``): one rule, every clone.

A peer publishes, in its own replica directory, another copy of a record id the
victim wrote (once claiming its own replica, once claiming the victim's), and a
record that names the victim's replica. Clones get these in different orders:
the victim (its own record first, the copies later), a clone that gets the copies
first and the victim's record later, one that gets both in one fetch; each then
rebuilds its index. All hold the same copy of every id, show the same flags in
the record's views (text and ``--json``) and list the same findings in
``bd doctor``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import faults
import hostile
import pytest
from conftest import git, make_repo, run_bd


def _send(repo: Path, sender: str, subject: str) -> str:
    result = run_bd(repo, "mail", "send", "bob", "-s", subject, "-m", "hi", "--identity", sender,
                    "--json")
    assert result.code == 0, result.err
    return result.json()["id"]


def _replica(repo: Path) -> str:
    return (repo / ".git" / "beadsmail" / "replica").read_text().strip()


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> dict:
    """origin (bare); the victim and the attacker sync through it; the attacker keeps
    in its repository a new root history holding only its forged lines."""
    root = tmp_path_factory.mktemp("copies")
    subprocess.run(["git", "init", "-q", "--bare", str(root / "origin.git")], check=True)
    victim = make_repo(root / "victim")
    attacker = make_repo(root / "attacker")
    for repo in (victim, attacker):
        git(repo, "remote", "add", "origin", "../origin.git")
    assert run_bd(victim, "init").code == 0
    original = _send(victim, "alice", "the original")
    second = _send(victim, "alice", "the second")
    assert run_bd(victim, "sync", "origin").code == 0
    assert run_bd(attacker, "sync", "origin").code == 0
    _send(attacker, "carol", "the attacker's own")
    a = hostile.Attacker(attacker, _replica(victim), _replica(attacker), [original])
    # (lines compare by their text: "actor":"carol" sorts after the victim's "alice", and
    # "actor":"a" before it, so one forgery loses to the original and one wins)
    lines = [a.record(id=original, subject="forged, in its own name"),
             a.record(id=original, replica=a.victim, subject="forged, in the victim's name"),
             a.record(id="bd-zzzzzzzzzzzzm", replica=a.victim, subject="claims the victim"),
             a.record(id=second, actor="a", subject="forged, and preferred")]
    a.parent = None  # a history of its own, with nothing of the victim's
    a.put("store.json", b'{"format":"beadsmail","v":1}\n')
    a.put(f"log/{a.own}/{hostile.DAY}-000.jsonl", b"".join(line + b"\n" for line in lines))
    a.commit()
    return {"root": root, "victim": victim, "attacker": attacker, "original": original,
            "second": second, "mismatch": "bd-zzzzzzzzzzzzm", "lines": lines, "a": a}


def _clone(root: Path, name: str) -> Path:
    repo = make_repo(root / name)
    assert run_bd(repo, "init").code == 0
    for remote, url in (("origin", "../origin.git"), ("evil", "../attacker")):
        git(repo, "remote", "add", remote, url)
    return repo


def _state(repo: Path, net: dict) -> dict:
    """What a clone shows: both records' views, their flags, doctor's findings, the index."""
    shown = {rid: run_bd(repo, "show", rid, "--json")
             for rid in (net["original"], net["second"], net["mismatch"])}
    assert all(r.code == 0 for r in shown.values()), {k: r.err for k, r in shown.items()}
    views = {rid: {k: v for k, v in r.json().items() if k != "receipts"}
             for rid, r in shown.items()}
    doctor = run_bd(repo, "doctor", "--json")
    assert doctor.code == 0 and doctor.json()["ok"], doctor.out
    return {"views": views, "copies": doctor.json()["copies"],
            "index": {k: v for k, v in faults.live_fingerprint(repo).items()}}


def test_every_clone_holds_the_same_copy_whatever_the_order(net: dict, tmp_path: Path) -> None:
    root = net["root"]
    states = {}
    # the victim: its own record first, the forged copies later (a plain git fetch)
    victim = net["victim"]
    git(victim, "remote", "add", "evil", "../attacker")
    assert run_bd(victim, "mail", "inbox", "--identity", "bob").code == 0
    git(victim, "fetch", "-q", "evil")
    states["victim"] = _state(victim, net)
    # the forged copies first, the victim's record later
    first = _clone(root, "forged-first")
    git(first, "fetch", "-q", "evil")
    assert run_bd(first, "mail", "inbox", "--identity", "bob", "--json").code == 0
    git(first, "fetch", "-q", "origin")
    states["forged-first"] = _state(first, net)
    # the victim's record first, as a fresh clone
    later = _clone(root, "original-first")
    git(later, "fetch", "-q", "origin")
    assert run_bd(later, "mail", "inbox", "--identity", "bob", "--json").code == 0
    git(later, "fetch", "-q", "evil")
    states["original-first"] = _state(later, net)
    # both in one fetch
    both = _clone(root, "both")
    git(both, "fetch", "-q", "--multiple", "origin", "evil")
    states["both"] = _state(both, net)
    for repo in (victim, first, later, both):
        assert run_bd(repo, "index", "rebuild").code == 0
        states[f"{repo.name} rebuilt"] = _state(repo, net)
    reference = states.pop("victim")
    for name, state in states.items():
        assert state["views"] == reference["views"], name
        assert state["copies"] == reference["copies"], name
        # (each clone's own store commit differs; the records and their fold do not)
        assert state["index"] == reference["index"], name

    views = reference["views"]
    # the record naming the victim's replica from the attacker's directory: held, flagged
    assert views[net["mismatch"]]["flags"] == ["replica_mismatch"]
    # the original's id: of the two copies in their own replica's directory, the smaller
    # line is held (the same rule the merge keeps); the one claiming the victim from the
    # attacker's directory never is
    original = json.loads(faults.segment_bytes(victim, next(
        p for p in faults.segments(victim) if p.startswith(_replica(victim) + "/"))).split(b"\n")[1])
    original = {k: v for k, v in original.items() if k not in ("seq", "prev", "sig")}
    own_forgery = json.loads(net["lines"][0])
    held = views[net["original"]]
    expected = min((json.dumps(original, separators=(",", ":"), sort_keys=True), original),
                   (net["lines"][0].decode(), own_forgery))[1]
    assert {k: held[k] for k in ("subject", "replica")} == \
        {k: expected[k] for k in ("subject", "replica")}
    assert held["flags"] == ["conflicting_copies"]
    assert held["subject"] == "the original"
    # the second: the forgery's line is the smaller one, but the victim's copy is signed
    # (verified beats unverified: index.copies), so that one is held everywhere, flagged
    assert views[net["second"]]["subject"] == "the second"
    assert views[net["second"]]["verified"] == "verified"
    # (that copy's sender is not the identity that wrote it: refused before it is folded,
    # and listed with the signature problems instead, so it is no copy the index holds)
    assert views[net["second"]]["flags"] == []
    found = {c["id"]: c for c in reference["copies"]}
    assert set(found) == {net["original"], net["mismatch"]}
    others = found[net["original"]]["copies"]
    assert len(others) == 2 and all(o["differs"] for o in others)
    assert {o["replica"] for o in others} | {found[net["original"]]["replica"]} == \
        {_replica(victim), _replica(net["attacker"])}


def test_the_record_views_show_the_flags_in_text(net: dict, tmp_path: Path) -> None:
    repo = _clone(net["root"], "text")
    git(repo, "fetch", "-q", "--multiple", "origin", "evil")
    shown = run_bd(repo, "show", net["original"])
    assert shown.code == 0 and "Flags:" in shown.out and "other copies" in shown.out
    read = run_bd(repo, "mail", "read", net["mismatch"], "--identity", "bob", "--json")
    assert read.code == 0 and read.json()["flags"] == ["replica_mismatch"]
    text = run_bd(repo, "mail", "read", net["mismatch"], "--identity", "bob", "--peek")
    assert text.code == 0 and "outside the directory of the replica it names" in text.out
    doctor = run_bd(repo, "doctor")
    assert doctor.code == 0 and f"record {net['original']} (conflicting_copies)" in doctor.out
    clean = run_bd(repo, "show", _send(repo, "dave", "plain"), "--json")
    assert clean.json()["flags"] == []


def test_a_rebuild_and_an_incremental_fold_agree_on_every_copy(net: dict, tmp_path: Path) -> None:
    """A build settles all copies at once; a fold that met them one by one agrees."""
    repo = _clone(net["root"], "rebuild")
    git(repo, "fetch", "-q", "evil")
    assert run_bd(repo, "where").code == 0
    git(repo, "fetch", "-q", "origin")
    live = faults.live_fingerprint(repo)
    assert live == faults.fresh_fingerprint(repo)
    assert live["copies"]


def test_a_split_build_settles_copies_across_its_parts(tmp_path: Path, monkeypatch) -> None:
    """A build that loads half the first head's segments in a child process settles copies
    found in both halves as one that loads them all itself does."""
    from beadsmail import buildparts as workspace

    repo = make_repo(tmp_path / "repo")
    assert run_bd(repo, "init").code == 0
    _send(repo, "alice", "template")
    own = _replica(repo)
    a = hostile.Attacker(repo, own, own, [])
    a.changes, a.parent = [], "beadsmail"
    home, other = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    ids = [f"bd-zzzzzzzzzz{n:03d}" for n in range(20)]
    # (unsigned lines, by an identity no replica is bound to: an unsigned claim of alice,
    # bound to this clone by its signed write, would be refused wherever it sits)
    mine = {"actor": "h", "from": "h"}
    for n, rid in enumerate(ids):
        a.put(f"log/{home}/{hostile.DAY}-{n:03d}.jsonl",
              a.record(id=rid, replica=home, **mine) + b"\n")
    copies = [a.record(id=rid, replica=home, **mine) for rid in ids[::3]]  # (same, misplaced)
    copies += [a.record(id=rid, replica=other, actor="a", subject="preferred", **{"from": "a"})
               for rid in ids[1::3]]
    a.put(f"log/{other}/{hostile.DAY}-000.jsonl", b"".join(c + b"\n" for c in copies))
    a.commit()
    assert run_bd(repo, "index", "rebuild").code == 0
    split = faults.live_fingerprint(repo)
    monkeypatch.setattr(workspace, "SPLIT_SEGMENTS", 10**9)
    whole = faults.fresh_fingerprint(repo)
    assert split == whole
    held = {rid: run_bd(repo, "show", rid, "--json").json() for rid in ids}
    assert all(held[rid]["subject"] == "preferred" for rid in ids[1::3])
    assert all(held[rid]["flags"] == ["conflicting_copies"] for rid in ids[1::3])
    assert all(held[rid]["flags"] == [] for rid in ids[::3])  # (the copy held is in place)
    assert len(split["copies"]) == len(copies)
    found = {c["id"]: c for c in run_bd(repo, "doctor", "--json").json()["copies"]}
    assert all(not found[rid]["copies"][0]["differs"] for rid in ids[::3])
