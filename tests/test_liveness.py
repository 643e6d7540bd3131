"""Liveness: any command an agent runs is a sign of life, in every view of the roster.

The clock is moved forward in-process (``clock``); no test waits for real time.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import git
from helpers import ok, store_commits

from beadsmail import agents as agents_module
from beadsmail import records
from beadsmail.cli import compat
from beadsmail.workspace import Workspace

BOSS = {"BEADS_IDENTITY": "boss"}
W1 = {"BEADS_IDENTITY": "w1"}
STALL = 301  # agents.stalled_after is 300 s


@pytest.fixture
def clock(monkeypatch):
    """Move bd's clock forward by ``clock.shift`` seconds."""

    class Shifted(datetime):
        shift = 0.0

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=cls.shift)

    monkeypatch.setattr(agents_module, "datetime", Shifted)
    monkeypatch.setattr(records, "datetime", Shifted)
    return Shifted


@pytest.fixture
def team(repo: Path, bd) -> Path:
    ok(bd(repo, "init", "--json"))
    ok(bd(repo, "agent", "register", "--id", "boss", "--role", "manager", "--tier", "1",
          "--json", env=BOSS))
    for agent in ("w1", "w2"):
        ok(bd(repo, "agent", "register", "--id", agent, "--role", "tester", "--json", env=BOSS))
    return repo


def liveness(bd, repo: Path) -> dict[str, str]:
    return {a["id"]: a["liveness"] for a in ok(bd(repo, "agent", "list", "--json"))}


def compat_json(repo: Path, monkeypatch, main, *args: str) -> object:
    """A compat script's ``--json`` output, run in-process (so the moved clock holds)."""
    monkeypatch.chdir(repo)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(*args) == 0
    return json.loads(out.getvalue())


def test_an_agent_that_sends_mail_without_heartbeats_is_not_stalled(team: Path, bd, clock,
                                                                    monkeypatch) -> None:
    clock.shift = STALL
    assert liveness(bd, team)["w1"] == "stalled"
    ok(bd(team, "mail", "send", "w2", "-s", "progress", "-m", "halfway", "--json", env=W1))
    assert liveness(bd, team) == {"boss": "stalled", "w1": "alive", "w2": "stalled"}
    status = ok(bd(team, "status", "--json", env={"BEADS_IDENTITY": "w2"}))
    assert status["stalled"] == ["boss"]  # w2 is alive by running `bd status` itself
    monkeypatch.setenv("BTMSG_AGENT_ID", "w1")
    rows = compat_json(team, monkeypatch, compat.btmsg_main, ["status", "--json"])
    assert {r["id"]: r["stalled"] for r in rows} == {"boss": True, "w1": False, "w2": False}
    instances = compat_json(team, monkeypatch, compat.mb_main, "mb-list", ["--json"])
    assert {r["instance_id"]: r["liveness"] for r in instances}["w1"] == "alive"


def test_the_page_api_shows_the_same_liveness(team: Path, bd, clock) -> None:
    from beadsmail.server.runner import Background

    clock.shift = STALL
    ok(bd(team, "mail", "send", "boss", "-s", "deploy", "-m", "now", "--json", env=W1))
    ws = Workspace.open(team)
    with Background(ws, identity="human", projects=["proj"]) as bg:
        client = httpx.Client(timeout=120, base_url=bg.url,
                              headers={"X-Beads-Identity": "human"})
        rows = {a["id"]: a for a in client.get("/api/agents").json()}
        status = client.get("/api/status").json()
    ws.close()
    assert rows["w1"]["liveness"] == "alive" and not rows["w1"]["stalled"]
    assert rows["w2"]["liveness"] == "stalled" and "w1" not in status["stalled"]


def test_records_an_agent_wrote_reach_other_clones_without_a_heartbeat(
        team: Path, bd, clock, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(team), str(clone))
    clock.shift = STALL
    before = len(store_commits(team))
    sent = ok(bd(team, "mail", "send", "w2", "-s", "hi", "-m", "there", "--json", env=W1))
    assert len(store_commits(team)) == before + 1, "the send is the sign of life: no heartbeat"
    git(clone, "fetch", "-q", "origin", "+refs/heads/beadsmail:refs/remotes/origin/beadsmail")
    shown = ok(bd(clone, "agent", "show", "w1", "--json"))
    assert shown["liveness"] == "alive" and shown["last_seen"] == sent["created_at"]
    # a rebuilt index knows it too
    ok(bd(clone, "index", "rebuild", "--json"))
    assert ok(bd(clone, "agent", "show", "w1", "--json"))["last_seen"] == sent["created_at"]


def test_a_read_only_command_commits_at_most_one_heartbeat_per_interval(team: Path, bd,
                                                                         clock) -> None:
    clock.shift = STALL
    before = store_commits(team)
    ok(bd(team, "mail", "inbox", "--json", env=W1))
    assert store_commits(team) == ["agent: heartbeat w1", *before]
    for _ in range(3):
        ok(bd(team, "mail", "inbox", "--json", env=W1))
        ok(bd(team, "task", "list", "--json", env=W1))
    assert store_commits(team) == ["agent: heartbeat w1", *before]
    assert liveness(bd, team)["w1"] == "alive"
    clock.shift = STALL + 61  # agents.heartbeat_interval is 60 s
    ok(bd(team, "mail", "inbox", "--json", env=W1))
    assert store_commits(team)[:2] == ["agent: heartbeat w1", "agent: heartbeat w1"]


def test_a_refused_command_is_noted_locally_and_commits_nothing(team: Path, bd, clock) -> None:
    clock.shift = STALL
    before = store_commits(team)
    refused = bd(team, "mail", "send", "w2", "-s", "x", "-m", "y", "--priority", "9", "--json",
                 env=W1)
    assert refused.code == 1
    assert store_commits(team) == before
    assert liveness(bd, team)["w1"] == "alive"


def test_task_moves_and_unregistered_callers(team: Path, bd, clock) -> None:
    made = ok(bd(team, "task", "create", "--title", "ship it", "--json", env=BOSS))
    task = made.get("task", made)
    clock.shift = STALL
    ok(bd(team, "task", "comment", task["id"], "--content", "on it", "--json", env=W1))
    assert liveness(bd, team)["w1"] == "alive"
    before = store_commits(team)
    ok(bd(team, "mail", "inbox", "--json", env={"BEADS_IDENTITY": "stranger"}))
    assert store_commits(team) == before  # not an agent: nothing to commit
