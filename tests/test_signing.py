"""Signed feeds: keys, the hash chain, verification and what it refuses (beadsmail/signing)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import git
from helpers import write_message

from beadsmail.index import feeds as feeds_index
from beadsmail.signing import feed
from beadsmail.workspace import Workspace


def lines_of(repo: Path) -> list[dict]:
    out = []
    for name in git(repo, "ls-tree", "-r", "--name-only", "beadsmail").split():
        if name.endswith(".jsonl"):
            out += [json.loads(x) for x in git(repo, "show", f"beadsmail:{name}").splitlines()]
    return out


def problems(ws: Workspace) -> list[dict]:
    ws.refresh()
    return feeds_index.problems(ws.index.conn)


# (the key file tests are in test_signing_core.py)


# -- the chain on write -------------------------------------------------------------------


def test_writes_form_a_signed_chain_that_starts_with_the_key(repo: Path) -> None:
    ws = Workspace.open(repo)
    write_message(ws, subject="one")
    ws.write("alice", [("message", _fields("two")), ("message", _fields("three"))], "two")
    stored = lines_of(repo)
    assert [r["seq"] for r in stored] == [1, 2, 3, 4]
    assert stored[0]["kind"] == "key" and stored[0]["op"] == "publish" and stored[0]["prev"] is None
    assert stored[0]["key"] == ws.signer.key.openssh_public
    assert ["sig" in r for r in stored] == [True, True, False, True]  # key, each write's last
    raw = [line.encode() for name in git(repo, "ls-tree", "-r", "--name-only", "beadsmail").split()
           if name.endswith(".jsonl") for line in git(repo, "show", f"beadsmail:{name}").splitlines()]
    assert [r["prev"] for r in stored[1:]] == [feed.line_hash(x) for x in raw[:-1]]
    assert (ws.loc.state_dir / "signing_key").stat().st_mode & 0o777 == 0o600
    assert problems(ws) == []
    fresh = Workspace.open(repo)
    fresh.rebuild_index()
    assert problems(fresh) == []
    assert {m["verified"] for m in _inbox(fresh, "bob")} == {"verified"}


def _fields(subject: str) -> dict:
    from helpers import message_fields

    return message_fields(subject=subject)


def _inbox(ws: Workspace, me: str) -> list[dict]:
    from beadsmail import mail

    return mail.inbox(ws, me)


def test_records_from_before_signing_are_unverified_never_forged(repo: Path) -> None:
    ws = Workspace.open(repo)
    old = {"v": 1, "id": "bd-0000000000001", "kind": "message", "actor": "alice",
           "created_at": "2026-01-01T00:00:00.000000Z", "clock": 1, "replica": ws.replica,
           **_fields("old")}
    ws.writer.append(ws.replica, [json.dumps(old, sort_keys=True, separators=(",", ":")).encode()],
                     "old", "alice", "2026-01-01", 1 << 20)
    write_message(ws, subject="new")
    ws.close()
    ws = Workspace.open(repo)
    ws.rebuild_index()
    seen = {m["subject"]: m["verified"] for m in _inbox(ws, "bob")}
    assert seen == {"old": "unverified", "new": "verified"}
    assert problems(ws) == []


# -- forgeries through a real bare remote --------------------------------------------------
#
# clone0: alice (a manager) and bob; clone1: the victim's old clone (reads as bob);
# clone2: a forger with push access, writing with a bd that skips every check.

from test_sync import do_sync, make_clones  # noqa: E402

from beadsmail import agents, mail  # noqa: E402


@pytest.fixture
def world(tmp_path: Path):
    remote, clones, _ = make_clones(tmp_path, n=3)
    alice = Workspace.open(clones[0])
    agents.register(alice, "alice", "alice", role="manager")
    agents.register(alice, "alice", "bob", role="worker")
    msg = mail.send(alice, "alice", ["bob"], "from alice", "the real one")
    alice.close()
    for c in clones:
        do_sync(c)
    forger = Workspace.open(clones[2])
    agents.register(forger, "mallory", "mallory", role="worker")
    forger.close()
    do_sync(clones[2])
    return remote, clones, msg


def fresh_clone(remote: Path, where: Path, policy: str | None = None) -> Path:
    git(where.parent, "clone", "-q", str(remote), str(where))
    if policy:
        require(where, policy)
    do_sync(where)
    return where


def require(clone: Path, policy: str = "require") -> None:
    (clone / ".beads").mkdir(exist_ok=True)
    (clone / ".beads" / "config.yaml").write_text(f"security:\n  signatures: {policy}\n")
    if policy == "off":  # (turning verification off takes this clone's approval)
        from conftest import run_bd

        assert run_bd(clone, "hooks", "trust", "config.yaml").code == 0


def view(clone: Path, me: str = "bob") -> tuple[dict[str, dict], list[dict]]:
    ws = Workspace.open(clone)
    try:
        ws.refresh()
        box = {m["id"]: m for m in mail.inbox(ws, me)}
        return box, feeds_index.problems(ws.index.conn)
    finally:
        ws.close()


def forge(clones, actor: str, items: list, msg="forged") -> dict:
    ws = Workspace.open(clones[2])
    ws.signer.may_write = lambda actor: None  # (a bd that skips its own clone's bindings)
    try:
        return ws.write(actor, items, msg).records[-1]
    finally:
        ws.close()


def push_and_pull(clones) -> None:
    do_sync(clones[2])
    do_sync(clones[1])


def assert_shown(problems: list[dict], record_id: str, words: str) -> dict:
    found = [p for p in problems if p["id"] == record_id]
    assert found, problems
    assert words in found[0]["why"] and found[0]["status"] in ("forged", "broken"), found
    assert found[0]["path"].endswith(".jsonl") and found[0]["line"] > 0
    assert found[0]["replica"] == found[0]["path"].split("/")[0]
    return found[0]


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_forged_sender_is_refused_on_old_and_fresh_clones(world, tmp_path, policy) -> None:
    remote, clones, msg = world
    require(clones[1], policy)
    fake = forge(clones, "alice", [("message", {**mail.compose(
        Workspace.open(clones[2]), "alice", ["bob"], "from alice?", "forged"),
        "thread_id": "bd-0000000000000", "replies_to": None})])
    push_and_pull(clones)
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh", policy)):
        box, found = view(clone)
        assert msg["id"] in box and fake["id"] not in box
        assert box[msg["id"]]["verified"] == "verified"
        assert_shown(found, fake["id"], "is not bound to alice")


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_forged_tombstone_and_a_role_the_writer_lacks_change_nothing(world, tmp_path,
                                                                    policy) -> None:
    remote, clones, msg = world
    require(clones[1], policy)
    as_alice = forge(clones, "alice", [("tombstone", {"target": msg["id"]})])
    as_itself = forge(clones, "mallory", [("tombstone", {"target": msg["id"]})])
    push_and_pull(clones)
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh", policy)):
        box, found = view(clone)
        assert msg["id"] in box
        assert_shown(found, as_alice["id"], "is not bound to alice")
        assert_shown(found, as_itself["id"], "lacks the role")


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_duplicate_id_with_other_text_keeps_the_original(world, tmp_path, policy) -> None:
    remote, clones, msg = world
    require(clones[1], policy)
    ws = Workspace.open(clones[2])
    fields = {**mail.compose(ws, "mallory", ["bob"], "from alice", "other text"),
              "id": msg["id"], "thread_id": msg["id"], "replies_to": None}
    ws.close()
    forge(clones, "mallory", [("message", fields)])
    push_and_pull(clones)
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh", policy)):
        box, found = view(clone)
        assert box[msg["id"]]["body"] == "the real one" and box[msg["id"]]["from"] == "alice"
        assert box[msg["id"]]["verified"] == "verified"
        assert "conflicting_copies" in _flags(clone, msg["id"])  # (index.copies)


def _flags(clone: Path, record_id: str) -> list[str]:
    ws = Workspace.open(clone)
    try:
        shown = mail.show(ws, record_id)
        assert shown["verified"] == "verified"
        return shown["flags"]
    finally:
        ws.close()


def _replica(clone: Path) -> str:
    ws = Workspace.open(clone)
    try:
        return ws.replica
    finally:
        ws.close()

def split_rebuild(clone: Path, monkeypatch) -> None:
    """Forget the clone's bindings and rebuild its index split with a child process
    (``buildparts``), as a large store's build is."""
    import os

    from beadsmail import buildparts

    (clone / ".git" / "beadsmail" / "bindings.json").unlink()
    monkeypatch.setattr(buildparts, "SPLIT_SEGMENTS", 2)
    monkeypatch.setattr(buildparts, "_can_fork", lambda: True)
    forked = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forked.append(1) or real_fork())
    ws = Workspace.open(clone)
    ws.rebuild_index()
    ws.close()
    assert forked, "the build did not split"



def test_a_duplicate_id_resolves_the_same_whatever_arrives_first(world, tmp_path) -> None:
    """Two signed copies of one id: every clone keeps the same one (``index.copies``'
    rule), whether it saw one first or both at once."""
    remote, clones, msg = world
    a = Workspace.open(clones[0])
    original = mail.send(a, "alice", ["bob"], "new from alice", "the real one")
    a.close()
    ws = Workspace.open(clones[2])
    fields = {**mail.compose(ws, "mallory", ["bob"], "dup", "other text"),
              "id": original["id"], "thread_id": original["id"], "replies_to": None}
    ws.close()
    forge(clones, "mallory", [("message", fields)])
    push_and_pull(clones)  # clone1 holds the forger's copy first
    do_sync(clones[0])
    do_sync(clones[1])
    seen = []
    for clone in (clones[0], clones[1], fresh_clone(remote, tmp_path / "fresh")):
        box, found = view(clone)
        seen.append((box[original["id"]]["body"], _flags(clone, original["id"])))
    assert seen[0] == seen[1] == seen[2] and "conflicting_copies" in seen[0][1], seen


def test_a_verified_copy_beats_an_unsigned_one(world, tmp_path) -> None:
    """An unsigned copy of a signed record's id (as an old version, or a hand, writes it)
    never wins, whatever its text sorts as."""
    remote, clones, msg = world
    ws = Workspace.open(clones[2])
    copy = {k: v for k, v in msg.items() if k not in ("seq", "prev", "sig")}
    copy.update(body="AAA an unsigned copy", actor="mallory", replica=ws.replica)
    copy["from"] = "mallory"
    ws.writer.append(ws.replica, [json.dumps(copy, sort_keys=True, separators=(",", ":"))
                                  .encode()], "copy", "mallory", "2026-01-01", 1 << 20)
    ws.close()
    push_and_pull(clones)
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh")):
        box, _ = view(clone)
        assert box[msg["id"]]["body"] == "the real one" and box[msg["id"]]["verified"] == "verified"


def _segments_of(owner: Path, clone: Path) -> list[str]:
    """The segments of ``owner``'s replica on ``clone``'s store branch."""
    ws = Workspace.open(owner)
    replica = ws.replica
    ws.close()
    return [n for n in git(clone, "ls-tree", "-r", "--name-only", "beadsmail").split()
            if n.startswith(f".beads/log/{replica}/")]


def _rewrite(clone: Path, path: str, keep) -> None:
    """Rewrite the store branch's segment ``path`` (as a hostile push would)."""
    from beadsmail.store.writer import Writer

    ws = Workspace.open(clone)
    lines = git(clone, "show", f"beadsmail:{path}").splitlines()
    replica, name = path.split("/")[-2:]
    kept = [x for n, x in enumerate(lines) if keep(n, x)]
    Writer(ws.loc.common, ws.ref).replace_segments(
        replica, {name: "".join(x + "\n" for x in kept).encode()}, "rewrite", "mallory")
    ws.close()


def test_lines_deleted_from_the_middle_of_a_feed_are_shown_on_a_fresh_clone(world, tmp_path) -> None:
    remote, clones, msg = world
    ws = Workspace.open(clones[0])
    second = mail.send(ws, "alice", ["bob"], "second", "x")
    third = mail.send(ws, "alice", ["bob"], "third", "x")
    ws.close()
    do_sync(clones[0])
    do_sync(clones[2])
    paths = _segments_of(clones[0], clones[2])
    _rewrite(clones[2], paths[0], lambda n, x: second["id"] not in x)
    alice = paths[0].split("/")[2]
    # the rewritten history, pushed over the store branch and over alice's feed ref
    git(clones[2], "push", "-q", "--force", "origin", "beadsmail",
        f"beadsmail:refs/heads/beadsmail.feeds/{alice}")
    box, found = view(fresh_clone(remote, tmp_path / "fresh"))
    assert third["id"] in box and second["id"] not in box
    broken = assert_shown(found, third["id"], "lines missing before seq")
    assert broken["status"] == "broken"


def _drop_path(clone: Path, path: str) -> str:
    """A commit of the store branch without ``path`` (a hostile rewrite), as git makes it."""
    import os

    env = {**os.environ, "GIT_INDEX_FILE": str(clone / ".git" / "forge-index")}
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=clone, env=env, capture_output=True,
                              text=True, check=True).stdout.strip()
    run("read-tree", "beadsmail")
    run("rm", "--cached", "-q", path)
    tree = run("write-tree")
    return run("-c", "user.name=m", "-c", "user.email=m@x", "commit-tree", tree, "-m", "drop")


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_a_rewritten_history_dropping_a_segment_is_shown_and_loses_nothing(world, tmp_path,
                                                                          policy) -> None:
    remote, clones, msg = world
    require(clones[1], policy)
    (clones[0] / ".beads").mkdir(exist_ok=True)
    (clones[0] / ".beads" / "config.yaml").write_text("store:\n  segment_bytes: 1\n")
    ws = Workspace.open(clones[0])
    sent = [mail.send(ws, "alice", ["bob"], f"n{i}", "x") for i in range(3)]
    ws.close()
    do_sync(clones[0])
    do_sync(clones[1])  # the old clone holds every record
    do_sync(clones[2])
    paths = _segments_of(clones[0], clones[2])
    victim = next(p for p in paths if sent[1]["id"] in git(clones[2], "show", f"beadsmail:{p}"))
    assert victim != paths[-1]
    forged = _drop_path(clones[2], victim)
    alice = victim.split("/")[2]
    git(clones[2], "push", "-q", "--force", "origin", f"{forged}:refs/heads/beadsmail.feeds/{alice}",
        f"{forged}:refs/heads/beadsmail")
    box, found = view(fresh_clone(remote, tmp_path / "fresh", policy))
    assert sent[1]["id"] not in box and sent[2]["id"] in box
    broken = assert_shown(found, sent[2]["id"], "lines missing before seq")
    assert broken["status"] == "broken"
    do_sync(clones[1])
    box, found = view(clones[1])
    assert {s["id"] for s in sent} <= set(box)  # (append-only: nothing it held is lost)


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_a_fork_of_a_feed_is_refused_on_both_branches_everywhere(world, tmp_path, policy) -> None:
    remote, clones, msg = world
    require(clones[1], policy)
    twin = tmp_path / "twin"
    shutil.copytree(clones[0], twin, symlinks=True)  # the same replica id and key
    a = Workspace.open(clones[0])
    on_a = mail.send(a, "alice", ["bob"], "on the original", "x")
    a.close()
    b = Workspace.open(twin)
    on_b = mail.send(b, "alice", ["bob"], "on the twin", "x")
    b.close()
    do_sync(clones[0])
    do_sync(twin)
    do_sync(clones[1])
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh", policy)):
        box, found = view(clone)
        assert msg["id"] in box and on_a["id"] not in box and on_b["id"] not in box
        assert_shown(found, on_b["id"], "fork")
        assert_shown(found, on_a["id"], "fork")


def test_under_require_unsigned_records_wait_and_stay_visible_to_doctor(world, tmp_path) -> None:
    remote, clones, msg = world
    require(clones[1])
    ws = Workspace.open(clones[2])
    old = {"v": 1, "id": "bd-0000000000002", "kind": "message", "actor": "mallory",
           "created_at": "2026-01-01T00:00:00.000000Z", "clock": 99, "replica": ws.replica,
           **_fields("unsigned")}
    old["from"] = "mallory"
    # (as an older version of bd writes: no seq, prev or sig)
    ws.writer.append(ws.replica, [json.dumps(old, sort_keys=True, separators=(",", ":"))
                                      .encode()], "old", "mallory", "2026-01-01", 1 << 20)
    ws.close()
    push_and_pull(clones)
    box, found = view(clones[1])
    assert old["id"] not in box
    assert [p for p in found if p["id"] == old["id"] and p["status"] == "unverified"]
    from beadsmail.maintenance import doctor

    ws = Workspace.open(clones[1])
    report = doctor(ws)
    ws.close()
    assert any(p["id"] == old["id"] for p in report["signatures"])
    box, _ = view(fresh_clone(remote, tmp_path / "fresh"))  # under warn: folded, unverified
    assert box[old["id"]]["verified"] == "unverified"


# -- a property: honest clones agree whatever a forging clone does -------------------------

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, rule  # noqa: E402

from beadsmail import sync as sync_mod  # noqa: E402

HONEST = (0, 1)


class ForgingClone(RuleBasedStateMachine):
    """clone0 (alice, a manager) and clone1 (bob) write honestly; clone2 forges: as alice,
    tombstones it may not write, ids of others' messages. Identities are first used (and
    so bound) before the forger starts, as trust on first use requires."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="beadsmail-forge-"))
        self.remote, self.clones, _ = make_clones(self.root, n=3)
        for i, (me, role) in enumerate((("alice", "manager"), ("bob", "worker"),
                                        ("mallory", "worker"))):
            ws = Workspace.open(self.clones[i])
            agents.register(ws, me, me, role=role)
            ws.close()
        for _ in range(2):
            for c in self.clones:
                do_sync(c)
        self.ids: list[str] = []

    def teardown(self) -> None:
        try:
            for _ in range(2):
                for c in self.clones:
                    do_sync(c)
            prints = []
            for i in HONEST:
                ws = Workspace.open(self.clones[i])
                ws.refresh()
                fp = ws.index.fingerprint()
                prints.append({k: fp[k] for k in ("messages", "message_to", "receipts",
                                                  "deleted", "agents", "records")})
                ws.close()
            assert prints[0] == prints[1]
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @rule(i=st.sampled_from(HONEST), to=st.sampled_from(("alice", "bob", "*")))
    def honest_send(self, i: int, to: str) -> None:
        ws = Workspace.open(self.clones[i])
        self.ids.append(mail.send(ws, ("alice", "bob")[i], [to], "s", "b")["id"])
        ws.close()

    @rule(i=st.sampled_from((0, 1, 2)))
    def sync(self, i: int) -> None:
        ws = Workspace.open(self.clones[i])
        sync_mod.sync(ws)
        ws.close()

    @rule(as_alice=st.booleans(), pick=st.integers(min_value=0))
    def forge_tombstone(self, as_alice: bool, pick: int) -> None:
        if self.ids:
            forge(self.clones, "alice" if as_alice else "mallory",
                  [("tombstone", {"target": self.ids[pick % len(self.ids)]})])

    @rule()
    def forge_sender(self) -> None:
        ws = Workspace.open(self.clones[2])
        fields = {**mail.compose(ws, "alice", ["bob"], "forged", "x"),
                  "thread_id": "bd-0000000000000", "replies_to": None}
        ws.close()
        forge(self.clones, "alice", [("message", fields)])

    @rule(pick=st.integers(min_value=0))
    def forge_duplicate(self, pick: int) -> None:
        if self.ids:
            ws = Workspace.open(self.clones[2])
            rid = self.ids[pick % len(self.ids)]
            fields = {**mail.compose(ws, "mallory", ["bob"], "dup", "other"), "id": rid,
                      "thread_id": rid, "replies_to": None}
            ws.close()
            forge(self.clones, "mallory", [("message", fields)])


TestForgingClone = ForgingClone.TestCase
TestForgingClone.settings = settings(max_examples=3, stateful_step_count=8, deadline=None,
                                     suppress_health_check=list(HealthCheck))


@pytest.mark.slow
class TestForgingCloneMore(ForgingClone.TestCase):
    settings = settings(max_examples=25, stateful_step_count=20, deadline=None,
                        suppress_health_check=list(HealthCheck))


# -- keys, trust and rotation through the CLI ------------------------------------------------


def test_agent_keys_shows_pins_and_rotates(world, tmp_path, bd) -> None:
    remote, clones, msg = world
    mine = bd(clones[0], "agent", "keys", "--json").json()
    assert mine["key"].startswith("ssh-ed25519 AAAA") and mine["fingerprint"].startswith("SHA256:")
    assert mine["policy"] == "warn"
    feeds = {f["replica"]: f for f in mine["feeds"]}
    assert feeds[mine["replica"]]["key"] == mine["key"] and "alice" in feeds[mine["replica"]]["agents"]
    rotated = bd(clones[0], "agent", "keys", "--rotate", "--identity", "alice", "--json").json()
    assert rotated["old"] == mine["fingerprint"] and rotated["new"] != mine["fingerprint"]
    ws = Workspace.open(clones[0])
    after = mail.send(ws, "alice", ["bob"], "after rotation", "x")
    ws.close()
    do_sync(clones[0])
    box, found = view(fresh_clone(remote, tmp_path / "fresh"))
    assert box[after["id"]]["verified"] == "verified" and found == []
    other = bd(clones[1], "agent", "keys", "--json").json()["replica"]
    wrong = Workspace.open(clones[2])
    wrong_key = wrong.signer.key.openssh_public
    wrong.close()
    pinned = bd(clones[1], "agent", "keys", "--pin", mine["replica"], "--key", wrong_key, "--json")
    assert pinned.json()["pinned"] == wrong_key
    box, found = view(clones[1])
    assert msg["id"] not in box  # (alice's feed no longer publishes the pinned key)
    assert [p for p in found if "pinned" in p["why"]]
    assert bd(clones[1], "agent", "keys", "--pin", mine["replica"], "--key", "nope").code == 1
    assert bd(clones[1], "agent", "keys", "--unpin", mine["replica"], "--json").code == 0
    box, _ = view(clones[1])
    assert msg["id"] in box and other


def test_trust_add_publish_and_manager_revoke_apply_on_every_clone(world, tmp_path, bd) -> None:
    remote, clones, msg = world
    second = _replica(clones[2])  # alice also works from the forger's clone, say
    refused = bd(clones[2], "mail", "send", "bob", "-s", "alice from her laptop", "-m", "x",
                 "--identity", "alice")
    assert refused.code == 1 and "nothing was written" in refused.err
    assert f"bd agent trust alice --add {second} --publish" in refused.err
    shown = bd(clones[0], "agent", "trust", "alice", "--add", second, "--publish",
               "--identity", "alice", "--json").json()
    assert second in [r["replica"] for r in shown["bindings"][0]["replicas"]] and shown["record"]
    do_sync(clones[0])
    do_sync(clones[2])
    ws = Workspace.open(clones[2])
    from_there = mail.send(ws, "alice", ["bob"], "alice from her laptop", "x")
    ws.close()
    push_and_pull(clones)
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh")):
        box, found = view(clone)
        assert box[from_there["id"]]["verified"] == "verified", found
    # a manager (alice) revokes mallory's replica for mallory: everything it wrote as mallory goes
    mallory = bd(clones[0], "agent", "trust", "mallory", "--revoke", second, "--publish",
                 "--identity", "alice", "--json").json()
    assert mallory["record"]
    do_sync(clones[0])
    do_sync(clones[1])
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh2")):
        shown = bd(clone, "agent", "trust", "mallory", "--json").json()
        assert shown and second in shown[0]["revoked"], shown
    assert bd(clones[0], "agent", "trust", "alice", "--add", "NOT-A-REPLICA").code == 1


def test_records_bd_serve_writes_say_via_serve_and_are_signed_by_its_replica(repo: Path) -> None:
    ws = Workspace.open(repo)
    ws.via = "serve"  # (what bd serve sets on its workspace: beadsmail/server/__init__.py)
    sent = mail.send(ws, "alice", ["bob"], "through the server", "x")
    ws.close()
    fresh = Workspace.open(repo)
    fresh.rebuild_index()
    shown = mail.show(fresh, sent["id"])
    assert shown["via"] == "serve" and shown["verified"] == "verified"
    assert shown["signed_by"] == fresh.replica
    fresh.close()


def test_writing_as_an_identity_bound_elsewhere_is_refused_and_changes_nothing(world) -> None:
    """Every clone would refuse the record (this one too, on a rebuild), so the write is
    refused before anything is stored, and each clone's index stays equal to a fresh fold."""
    from beadsmail import maintenance
    from beadsmail.errors import PermissionDenied

    remote, clones, msg = world
    before = git(clones[2], "rev-parse", "beadsmail")
    ws = Workspace.open(clones[2])
    with pytest.raises(PermissionDenied, match="bound to replica"):
        mail.send(ws, "alice", ["bob"], "alice from elsewhere", "x")
    ws.close()
    assert git(clones[2], "rev-parse", "beadsmail") == before
    for clone in clones:
        ws = Workspace.open(clone)
        try:
            failed = [c for c in maintenance.doctor(ws)["checks"] if not c["ok"]]
        finally:
            ws.close()
        assert failed == [], (clone, failed)


def test_task_and_agent_views_say_whether_they_are_signed(repo: Path, bd) -> None:
    """A task is verified only when every record that shaped it is; each move, comment
    and agent profile says who signed it, in text and --json."""
    assert bd(repo, "init").code == 0
    assert bd(repo, "agent", "register", "--id", "alice", "--role", "manager",
              "--identity", "alice").code == 0
    task = bd(repo, "task", "create", "--title", "t", "--identity", "alice", "--json").json()["task"]
    assert bd(repo, "task", "comment", task["id"], "-m", "note", "--identity", "alice").code == 0
    shown = bd(repo, "task", "show", task["id"], "--json").json()
    replica = _replica(repo)
    assert shown["task"]["verified"] == "verified"
    assert {(h["verified"], h["signed_by"]) for h in shown["history"]} == {("verified", replica)}
    assert bd(repo, "task", "list", "--json").json()[0]["verified"] == "verified"
    assert bd(repo, "task", "list").out.rstrip().endswith("[verified]")
    assert shown["comments"][0]["verified"] == "verified"
    text = bd(repo, "task", "show", task["id"]).out
    assert "signed: verified" in text and text.count("[verified]") == 2
    agent = bd(repo, "agent", "show", "alice", "--json").json()
    assert (agent["verified"], agent["signed_by"]) == ("verified", replica)
    assert "profile signed: verified" in bd(repo, "agent", "show", "alice").out
    listed = bd(repo, "agent", "list", "--json").json()
    assert [a["verified"] for a in listed] == ["verified"]
    assert "SIGNED" in bd(repo, "agent", "list").out
    # a move written without signing (an older version): the task is no longer all verified
    ws = Workspace.open(repo)
    move = {"v": 1, "id": "bd-0000000000009", "kind": "task_event", "actor": "alice",
            "created_at": "2026-12-01T00:00:00.000000Z", "clock": 10_000, "replica": ws.replica,
            "task": task["id"], "op": "status", "expected_version": 1, "status": "todo"}
    ws.writer.append(ws.replica, [json.dumps(move, sort_keys=True, separators=(",", ":"))
                                  .encode()], "old", "alice", "2026-12-01", 1 << 20)
    ws.close()
    shown = bd(repo, "task", "show", task["id"], "--json").json()
    assert shown["task"]["verified"] == "unverified", shown
    assert [h["verified"] for h in shown["history"]][-1] == "unverified"
    assert "[UNVERIFIED]" in bd(repo, "task", "show", task["id"]).out
    listed = bd(repo, "task", "list", "--json").json()
    assert [t["verified"] for t in listed] == ["unverified"]
    assert bd(repo, "task", "list").out.rstrip().endswith("[UNVERIFIED]")
    require(repo, "off")
    shown = bd(repo, "task", "show", task["id"], "--json").json()
    assert shown["task"]["verified"] == "unchecked"


def test_a_split_build_keeps_a_binding_met_in_its_second_half(world, tmp_path, monkeypatch,
                                                              bd) -> None:
    """A build split with a child process (``buildparts``) ends with the bindings and the
    verdicts of one read in one piece, wherever the trust record falls."""


    remote, clones, msg = world
    (clones[0] / ".beads").mkdir(exist_ok=True)
    (clones[0] / ".beads" / "config.yaml").write_text("store:\n  segment_bytes: 300\n")
    ws = Workspace.open(clones[0])
    for n in range(6):  # (a segment each)
        mail.send(ws, "alice", ["bob"], f"filler {n}", "x")
    ws.close()
    second = _replica(clones[2])
    assert bd(clones[0], "agent", "trust", "alice", "--add", second, "--publish",
              "--identity", "alice").code == 0
    do_sync(clones[0])
    do_sync(clones[2])
    ws = Workspace.open(clones[2])
    there = mail.send(ws, "alice", ["bob"], "alice from her laptop", "x")
    ws.close()
    do_sync(clones[2])
    fresh = fresh_clone(remote, tmp_path / "fresh")
    whole = bd(fresh, "agent", "trust", "alice", "--json").json()
    box, found = view(fresh)
    assert box[there["id"]]["verified"] == "verified" and found == []
    split_rebuild(fresh, monkeypatch)  # (bindings decided again, in two processes)
    assert bd(fresh, "agent", "trust", "alice", "--json").json() == whole
    box, found = view(fresh)
    assert box[there["id"]]["verified"] == "verified" and found == []


def test_a_pulled_config_that_weakens_signing_waits_for_approval(world, tmp_path, bd) -> None:
    """``.beads/config.yaml`` comes with whatever anyone pushes to the working branch:
    ``security.signatures: off`` and ``security.key`` take effect only once approved."""
    remote, clones, msg = world
    fake = forge(clones, "alice", [("message", {**mail.compose(
        Workspace.open(clones[2]), "alice", ["bob"], "from alice?", "forged"),
        "thread_id": "bd-0000000000000", "replies_to": None})])
    push_and_pull(clones)
    (clones[1] / ".beads").mkdir(exist_ok=True)
    (clones[1] / ".beads" / "config.yaml").write_text(
        "security:\n  signatures: off\n  key: /tmp/someone-elses-key\n")
    keys = bd(clones[1], "agent", "keys", "--json")
    assert keys.code == 0 and keys.json()["policy"] == "warn"
    assert keys.json()["key_file"].endswith("signing_key")
    assert "security.key, security.signatures" in keys.err and "bd hooks trust" in keys.err
    box, found = view(clones[1])
    assert fake["id"] not in box and box[msg["id"]]["verified"] == "verified"
    listed = bd(clones[1], "hooks", "status", "--json").json()
    assert listed["settings"]["state"] != "approved"
    (clones[1] / ".beads" / "config.yaml").write_text("security:\n  signatures: off\n")
    assert bd(clones[1], "hooks", "trust", "config.yaml").code == 0
    assert bd(clones[1], "agent", "keys", "--json").json()["policy"] == "off"
    box, _ = view(clones[1])
    assert box[msg["id"]]["verified"] == "unchecked"
    # require is stricter than the default: it needs nobody's approval
    (clones[1] / ".beads" / "config.yaml").write_text("security:\n  signatures: require\n")
    assert bd(clones[1], "agent", "keys", "--json").json()["policy"] == "require"


def test_a_trust_file_keeps_a_backdated_claim_from_binding_a_new_clone(world, tmp_path,
                                                                       bd) -> None:
    """First use on a fresh clone goes to the earliest claim, and a forger can backdate
    its clock: the clash is listed, and a trust file from a clone the user trusts,
    imported before the first fold, binds the identity to the right replica."""
    remote, clones, msg = world
    ws = Workspace.open(clones[1])
    honest = mail.send(ws, "dave", ["bob"], "dave here", "x")
    honest_clock = ws.index.record(honest["id"])["clock"]
    ws.close()
    do_sync(clones[1])
    do_sync(clones[2])
    ws = Workspace.open(clones[2])
    ws.signer.may_write = lambda actor: None
    ws.refresh()
    ws.index.max_clock = lambda: 0  # (the forger's clock: before everyone's)
    fields = {**mail.compose(ws, "dave", ["bob"], "dave, earlier", "forged"),
              "thread_id": "bd-0000000000000", "replies_to": None}
    fake = ws.write("dave", [("message", fields)], "forged").records[-1]
    ws.close()
    assert fake["clock"] < honest_clock
    do_sync(clones[2])
    exported = bd(clones[1], "agent", "trust", "--export")
    assert exported.code == 0
    (tmp_path / "trust.json").write_text(exported.out)
    # a new clone that trusts first use: the forger's claim is earlier, and binds dave;
    # the clash shows, as the honest record refused for a replica not bound to dave
    plain = fresh_clone(remote, tmp_path / "plain")
    box, found = view(plain)
    assert fake["id"] in box and honest["id"] not in box
    assert_shown(found, honest["id"], "is not bound to dave")
    # a new clone that imports the trust file first: dave is the honest replica's
    careful = tmp_path / "careful"
    git(tmp_path, "clone", "-q", str(remote), str(careful))
    imported = bd(careful, "agent", "trust", "--import", str(tmp_path / "trust.json"), "--json")
    assert imported.code == 0, imported.err
    do_sync(careful)
    box, found = view(careful)
    assert honest["id"] in box and box[honest["id"]]["verified"] == "verified"
    assert fake["id"] not in box
    assert_shown(found, fake["id"], "is not bound to dave")
    # a damaged file changes nothing
    (tmp_path / "bad.json").write_text('{"format": "beadsmail-trust", "v": 1, "agents": '
                                       '{"eve": {"replicas": ["NOPE"]}}, "keys": {}}')
    before = bd(careful, "agent", "trust", "--json").json()
    bad = bd(careful, "agent", "trust", "--import", str(tmp_path / "bad.json"))
    assert bad.code == 1 and "not a replica id" in bad.err
    assert bd(careful, "agent", "trust", "--json").json() == before


def _forger(clones):
    ws = Workspace.open(clones[2])
    ws.signer.may_write = lambda actor: None  # (a bd that skips every write-time check)
    return ws


@pytest.mark.parametrize("policy", ["warn", "require"])
def test_a_worker_cannot_make_itself_manager_and_act_as_one(world, tmp_path, bd,
                                                           policy) -> None:
    """Role checks on agent records at fold time: a worker's signed records that make it a
    manager, change another's profile, bind alice to its replica and delete her mail
    change nothing on any clone, alice's own included, and each is listed."""
    remote, clones, msg = world
    for clone in clones[:2]:
        require(clone, policy)
    second = _replica(clones[2])
    ws = _forger(clones)
    promote = ws.write("mallory", [("agent", {"op": "update", "agent": "mallory",
                                              "role": "manager", "name": "mallory", "tier": 2,
                                              "status": "active"})], "x").records[-1]
    demote = ws.write("mallory", [("agent", {"op": "update", "agent": "bob", "role": "worker",
                                             "name": "bob", "tier": 2, "status": "stopped"})],
                      "x").records[-1]
    bind = ws.write("mallory", [("key", {"op": "bind", "agent": "alice",
                                         "target": second})], "x").records[-1]
    tomb = ws.write("mallory", [("tombstone", {"target": msg["id"]})], "x").records[-1]
    ws.close()
    push_and_pull(clones)
    do_sync(clones[0])
    for clone in (clones[0], clones[1], fresh_clone(remote, tmp_path / "fresh", policy)):
        box, found = view(clone)
        assert msg["id"] in box, clone
        roles = {a["id"]: (a["role"], a["status"])
                 for a in bd(clone, "agent", "list", "--json").json()}
        assert roles["mallory"] == ("worker", "active") and roles["bob"][1] == "active"
        bound = bd(clone, "agent", "trust", "alice", "--json").json()[0]["replicas"]
        assert second not in [r["replica"] for r in bound]
        assert_shown(found, promote["id"], "may not give itself the manager role")
        assert_shown(found, demote["id"], "lacks the role to change agent bob")
        assert_shown(found, tomb["id"], "lacks the role to delete")
        assert_shown(found, bind["id"], "neither bound to alice nor a registered manager")
        ws = Workspace.open(clone)
        from beadsmail import maintenance

        failed = [c["check"] for c in maintenance.doctor(ws)["checks"] if not c["ok"]]
        ws.close()
        assert "index" not in failed, failed


def test_an_unsigned_claim_of_a_bound_identity_is_refused_from_any_folder(world,
                                                                          tmp_path) -> None:
    """Under warn an unsigned record still folds, unless it claims an identity bound to
    other replicas: a new folder with no key cannot delete alice's mail as alice."""
    remote, clones, msg = world
    ws = Workspace.open(clones[2])
    stray = "zzzzzzzzzzzz"
    lines = []
    for n, (kind, fields) in enumerate((("tombstone", {"target": msg["id"]}),
                                        ("agent", {"op": "register", "agent": "mallory",
                                                   "role": "manager", "name": "m", "tier": 2,
                                                   "status": "active"}))):
        record = {"v": 1, "id": f"bd-00000000000u{n}", "kind": kind, "actor": "alice",
                  "created_at": "2026-12-01T00:00:00.000000Z", "clock": 100 + n,
                  "replica": stray, **fields}
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    ws.writer.append(stray, lines, "stray", "alice", "2026-12-01", 1 << 20)
    mine = ws.replica
    ws.close()
    # (pushed in the forger's own feed ref, as a hostile git push does)
    git(clones[2], "push", "-q", "--force", "origin",
        f"beadsmail:refs/heads/beadsmail.feeds/{mine}")
    do_sync(clones[1])
    for clone in (clones[1], fresh_clone(remote, tmp_path / "fresh")):
        box, found = view(clone)
        assert msg["id"] in box
        shown = [p for p in found if p["id"] == "bd-00000000000u0"]
        assert shown and "unsigned, claiming alice" in shown[0]["why"], found
        assert shown[0]["status"] == "unverified"  # (never forged: it waits to be trusted)
