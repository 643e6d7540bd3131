"""The agent registry: register/update/unregister/list/show/status/heartbeat/retire, liveness."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import git
from helpers import error, ok, store_commits

from beadsmail import records
from beadsmail.index import Index
from beadsmail.workspace import Workspace

BOSS = {"BEADS_IDENTITY": "boss"}





def configure(repo: Path, text: str) -> None:
    (repo / ".beads" / "config.yaml").write_text(text)


@pytest.fixture
def team(repo: Path, bd) -> Path:
    """A store with a manager (tier 1) and two agents in two groups."""
    ok(bd(repo, "init", "--json"))
    ok(bd(repo, "agent", "register", "--id", "boss", "--role", "manager", "--tier", "1",
          "--group", "core", "--json", env=BOSS))
    ok(bd(repo, "agent", "register", "--id", "w1", "--role", "tester", "--group", "core",
          "--json", env=BOSS))
    ok(bd(repo, "agent", "register", "--id", "w2", "--role", "project", "--group", "ui",
          "--model", "opus", "--name", "Worker Two", "--json", env=BOSS))
    return repo


def test_register_list_show_in_json_and_text(team: Path, bd) -> None:
    listed = ok(bd(team, "agent", "list", "--json"))
    assert [a["id"] for a in listed] == ["boss", "w1", "w2"]
    w2 = next(a for a in listed if a["id"] == "w2")
    assert (w2["role"], w2["group"], w2["tier"], w2["model"], w2["name"]) == \
        ("project", "ui", 2, "opus", "Worker Two")
    assert w2["status"] == "active" and w2["liveness"] == "alive" and w2["unread"] == 0
    shown = ok(bd(team, "agent", "show", "w2", "--json"))
    assert shown["id"] == "w2" and shown["channels"] == [] and shown["contacts"] == []
    text = ok(bd(team, "agent", "list"))
    assert "w2" in text and "project" in text and "alive" in text
    assert "Worker Two" in ok(bd(team, "agent", "show", "w2"))
    assert ok(bd(team, "agent", "list", "--group", "core", "--json"))[1]["id"] == "w1"
    assert len(ok(bd(team, "agent", "list", "--group", "core", "--json"))) == 2


def test_register_bad_input_is_refused_and_writes_nothing(team: Path, bd) -> None:
    before = store_commits(team)
    cases = [
        (("--id", "w3", "--role", "wizard"), "invalid_input", "unknown role"),
        (("--id", "w3", "--role", "tester", "--tier", "3"), "invalid_input", "tier"),
        (("--id", "w 3", "--role", "tester"), "invalid_input", "agent id"),
        (("--id", "w3", "--role", "tester", "--group", "a/b"), "invalid_input", "group"),
        (("--id", "w1", "--role", "tester"), "conflict", "--update"),
        (("--id", "w9", "--role", "tester", "--update"), "not_found", "not a registered agent"),
        (("--id", "w3"), "invalid_input", "--role"),
    ]
    for args, kind, words in cases:
        err = error(bd(team, "agent", "register", *args, "--json", env=BOSS), kind)
        assert err["type"] == kind and words in err["message"], (args, err)
    result = bd(team, "agent", "register", "--id", "w3", "--role", "tester", "--tier", "x")
    assert result.code == 2 and "tier" in result.err
    assert store_commits(team) == before
    assert "known groups are core, ui" in error(
        bd(team, "agent", "list", "--group", "nope", "--json"), "invalid_input")["message"]
    assert "did you mean w1" in error(bd(team, "agent", "show", "w11", "--json"),
                                      "not_found")["message"]


def test_update_keeps_the_rest_of_the_profile(team: Path, bd) -> None:
    updated = ok(bd(team, "agent", "register", "--id", "w2", "--group", "core", "--update",
                    "--json", env=BOSS))
    assert (updated["group"], updated["role"], updated["model"], updated["name"]) == \
        ("core", "project", "opus", "Worker Two")
    assert "updated w2" in ok(bd(team, "agent", "register", "--id", "w2", "--tier", "1",
                                 "--update", env=BOSS))


def test_status_permissions_follow_the_role_matrix(team: Path, bd) -> None:
    err = error(bd(team, "agent", "status", "w2", "stopped", "--json", env={"BEADS_IDENTITY": "w1"}),
                "permission_denied")
    assert "agent.status.others" in err["message"]
    mine = ok(bd(team, "agent", "status", "w1", "sleeping", "--json", env={"BEADS_IDENTITY": "w1"}))
    assert mine["status"] == "sleeping" and mine["liveness"] == "sleeping"
    theirs = ok(bd(team, "agent", "status", "w2", "stopped", "--json", env=BOSS))
    assert theirs["status"] == "stopped" and theirs["liveness"] == "stopped"
    assert "w2 is active" in ok(bd(team, "agent", "status", "w2", "active", env=BOSS))
    assert error(bd(team, "agent", "status", "w2", "dead", "--json", env=BOSS),
                 "invalid_input")["message"].startswith("unknown status")
    err = error(bd(team, "agent", "register", "--id", "w5", "--role", "tester", "--json",
                   env={"BEADS_IDENTITY": "w1"}), "permission_denied")
    assert "agent.register.others" in err["message"]
    err = error(bd(team, "agent", "register", "--id", "w1", "--role", "manager", "--update",
                   "--json", env={"BEADS_IDENTITY": "w1"}), "permission_denied")
    assert "manager role" in err["message"]


def test_unregister_and_list_all(team: Path, bd) -> None:
    err = error(bd(team, "agent", "unregister", "w2", "--json", env={"BEADS_IDENTITY": "w1"}),
                "permission_denied")
    assert "agent.register.others" in err["message"]
    assert ok(bd(team, "agent", "unregister", "w1", "--json", env={"BEADS_IDENTITY": "w1"}))[
        "unregistered"]
    assert [a["id"] for a in ok(bd(team, "agent", "list", "--json"))] == ["boss", "w2"]
    everyone = ok(bd(team, "agent", "list", "--all", "--json"))
    assert [(a["id"], a["liveness"]) for a in everyone][1] == ("w1", "unregistered")
    assert error(bd(team, "agent", "unregister", "w1", "--json", env=BOSS), "not_found")
    again = ok(bd(team, "agent", "register", "--id", "w1", "--role", "reviewer", "--json", env=BOSS))
    assert again["registered"] and again["role"] == "reviewer"
    assert "unregistered w2" in ok(bd(team, "agent", "unregister", "w2", env=BOSS))


def test_heartbeat_is_local_until_the_interval_then_committed(team: Path, bd, worktrees) -> None:
    w1 = {"BEADS_IDENTITY": "w1"}
    before = store_commits(team)
    beats = [ok(bd(team, "agent", "heartbeat", "--json", env=w1)) for _ in range(3)]
    assert not any(b["committed"] for b in beats), "register already committed a last_seen"
    assert store_commits(team) == before
    # visible at once, from another worktree too
    other = ok(bd(worktrees[1], "agent", "show", "w1", "--json"))
    assert other["last_seen"] == beats[-1]["last_seen"]
    configure(team, "agents:\n  heartbeat_interval: 0\n")
    beat = ok(bd(team, "agent", "heartbeat", "--identity", "w1", "--json"))
    assert beat["committed"] and beat["record"]
    assert store_commits(team)[0] == "agent: heartbeat w1"
    assert "alive" in ok(bd(team, "agent", "heartbeat", "--identity", "w1"))
    err = error(bd(team, "agent", "heartbeat", "--identity", "w11", "--json"), "not_found")
    assert "did you mean w1" in err["message"]


def test_heartbeat_reaches_another_clone_only_when_committed(team: Path, bd, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(team), str(clone))

    def seen_in_clone() -> str:
        git(clone, "fetch", "-q", "origin", "+refs/heads/beadsmail:refs/remotes/origin/beadsmail")
        return ok(bd(clone, "agent", "show", "w1", "--json"))["last_seen"]

    registered = seen_in_clone()
    local = ok(bd(team, "agent", "heartbeat", "--identity", "w1", "--json"))
    assert not local["committed"] and seen_in_clone() == registered
    configure(team, "agents:\n  heartbeat_interval: 0\n")
    committed = ok(bd(team, "agent", "heartbeat", "--identity", "w1", "--json"))
    # (the clone sees the heartbeat record's own time: a moment after the one it carries)
    assert committed["committed"] and seen_in_clone() >= committed["last_seen"]


@pytest.fixture
def clock(monkeypatch):
    """Move bd's clock forward by ``clock.shift`` seconds (no test waits for real time)."""
    from datetime import datetime, timedelta

    from beadsmail import agents as agents_module

    class Shifted(datetime):
        shift = 0.0

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=cls.shift)

    monkeypatch.setattr(agents_module, "datetime", Shifted)
    monkeypatch.setattr(records, "datetime", Shifted)
    return Shifted


def test_stalled_after_threshold_and_heartbeat_revives(team: Path, bd, clock) -> None:
    assert ok(bd(team, "agent", "show", "w1", "--json"))["liveness"] == "alive"
    clock.shift = 301  # agents.stalled_after is 300 s
    listed = {a["id"]: a for a in ok(bd(team, "agent", "list", "--json"))}
    assert listed["w1"]["stalled"] and listed["w1"]["liveness"] == "stalled"
    ok(bd(team, "agent", "heartbeat", "--identity", "w1"))
    listed = {a["id"]: a for a in ok(bd(team, "agent", "list", "--json"))}
    assert listed["w1"]["liveness"] == "alive" and listed["w2"]["liveness"] == "stalled"
    # boss runs `bd status` itself: that is a sign of life
    assert ok(bd(team, "status", "--json", env=BOSS))["stalled"] == ["w2"]


def test_retire_stale_agents(team: Path, bd) -> None:
    assert ok(bd(team, "agent", "retire", "--stale", "1h", "--json", env=BOSS))["retired"] == []
    dry = ok(bd(team, "agent", "retire", "--stale", "0s", "--dry-run", "--json", env=BOSS))
    assert dry == {"retired": ["w1", "w2"], "dry_run": True, "records": []}
    assert len(ok(bd(team, "agent", "list", "--json"))) == 3
    err = error(bd(team, "agent", "retire", "--stale", "0s", "--json", env={"BEADS_IDENTITY": "w1"}),
                "permission_denied")
    assert "agent.register.others" in err["message"]
    assert error(bd(team, "agent", "retire", "--stale", "soon", "--json", env=BOSS),
                 "invalid_input")["message"].startswith("invalid --stale duration")
    done = ok(bd(team, "agent", "retire", "--stale", "0", "--json", env=BOSS))
    assert done["retired"] == ["w1", "w2"] and len(done["records"]) == 2
    assert [a["id"] for a in ok(bd(team, "agent", "list", "--json"))] == ["boss"]
    assert "nobody" in ok(bd(team, "agent", "retire", "--stale", "0", env=BOSS))


def _agent(agent: str, op: str, clock: int, **profile) -> dict:
    base = {"name": agent, "role": "tester", "group": "g", "tier": 2, "model": None,
            "status": "active", "last_seen": None}
    base.update(profile)
    return records.make("agent", agent, clock, "aaaaaaaaaaaa", "bd-", op=op, agent=agent, **base)


def _rec(kind: str, clock: int, **fields) -> dict:
    return records.make(kind, "boss", clock, "aaaaaaaaaaaa", "bd-", **fields)


def test_registry_fold_is_order_independent(tmp_path: Path) -> None:
    """Any arrival order gives the same rows; a heartbeat written by a clone that had not
    seen a status change never undoes it."""
    recs = [
        _agent("w1", "register", 1, last_seen="2026-01-01T00:00:00.000000Z"),
        _agent("w1", "update", 3, status="stopped", last_seen="2026-01-01T00:00:00.000000Z"),
        _agent("w1", "heartbeat", 4, last_seen="2026-01-02T00:00:00.000000Z"),
        _agent("w2", "heartbeat", 2, last_seen="2026-01-03T00:00:00.000000Z"),
        _agent("w2", "register", 1, role="reviewer", last_seen="2026-01-01T00:00:00.000000Z"),
        _rec("channel", 1, op="create", name="ops"), _rec("channel", 5, op="delete", name="ops"),
        _rec("membership", 2, op="join", channel="ops", agent="w1"),
        _rec("membership", 6, op="leave", channel="ops", agent="w1"),
        _rec("contact", 2, op="allow", a="w1", b="w2"), _rec("contact", 3, op="revoke", a="w1", b="w2"),
        _rec("dead_letter", 7, op="resolve", message="bd-0000000000001", recipient="ghost"),
        _rec("dead_letter", 8, op="resolve", message="bd-0000000000001", recipient="ghost"),
    ]
    rng = random.Random(7)
    prints = []
    for n in range(12):
        order = recs[:] if n == 0 else rng.sample(recs, len(recs))
        index = Index(tmp_path / f"i{n}.sqlite3")
        for r in order:
            with index.transaction():
                index.ingest([(r, records.dumps(r).decode(), None, None)])
        prints.append(index.fingerprint())
        rows = {r[0]: r for r in index.conn.execute("SELECT id, status, role, last_seen FROM agents")}
        assert rows["w1"][1:] == ("stopped", "tester", "2026-01-02T00:00:00.000000Z")
        assert rows["w2"][1:] == ("active", "reviewer", "2026-01-03T00:00:00.000000Z")
        assert index.conn.execute("SELECT active FROM channels").fetchall() == [(0,)]
        assert index.conn.execute("SELECT joined FROM memberships").fetchall() == [(0,)]
        assert index.conn.execute("SELECT allowed FROM contacts").fetchall() == [(0,)]
        assert index.conn.execute("SELECT rid FROM dead_resolved").fetchall() == [(recs[-2]["id"],)]
        index.close()
    assert all(p == prints[0] for p in prints)


def test_profiles_are_filled_under_the_lock(team: Path) -> None:
    """A status change carries the profile as stored, not as the caller last saw it."""
    from beadsmail import agents

    ws = Workspace.open(team)
    agents.register(ws, "boss", "w2", group="core", update=True)
    changed = agents.set_status(ws, "boss", "w2", "sleeping")
    assert (changed["group"], changed["model"], changed["status"]) == ("core", "opus", "sleeping")
    ws.close()
