"""bttask's ``review_queue_count``: a reviewer's attention score (10 points per task in
review, at most 50) in ``bd agent list``, ``bd agent show``, ``bd status``, the page's
API and btmsg's agent views."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import pytest
from helpers import ok

from beadsmail.cli import compat
from beadsmail.workspace import Workspace

BOSS = {"BEADS_IDENTITY": "boss"}


@pytest.fixture
def board(repo: Path, bd) -> Path:
    """A manager, reviewers in groups core and ui and one without a group, a tester; two
    core tasks and one ui task in review, one core task in progress."""
    ok(bd(repo, "init", "--json"))
    ok(bd(repo, "agent", "register", "--id", "boss", "--role", "manager", "--tier", "1",
          "--json", env=BOSS))
    for agent, role, group in (("rev-core", "reviewer", "core"), ("rev-ui", "reviewer", "ui"),
                               ("rev-all", "reviewer", None), ("tester", "tester", "core")):
        ok(bd(repo, "agent", "register", "--id", agent, "--role", role,
              *(("--group", group) if group else ()), "--json", env=BOSS))
    for title, group, status in (("a", "core", "review"), ("b", "core", "review"),
                                 ("c", "ui", "review"), ("d", "core", "in_progress")):
        ok(bd(repo, "task", "create", "--title", title, "--group", group, "--status", status,
              "--json", env=BOSS))
    return repo


EXPECTED = {"boss": (None, None), "rev-core": (2, 20), "rev-ui": (1, 10), "rev-all": (3, 30),
            "tester": (None, None)}


def scores(rows: list[dict]) -> dict[str, tuple]:
    return {r["id"]: (r["review_queue_count"], r["attention_score"]) for r in rows}


def test_agent_list_show_and_status(board: Path, bd) -> None:
    assert scores(ok(bd(board, "agent", "list", "--json"))) == EXPECTED
    assert scores(ok(bd(board, "status", "--json", env=BOSS))["agents"]) == EXPECTED
    shown = ok(bd(board, "agent", "show", "rev-core", "--json"))
    assert (shown["review_queue_count"], shown["attention_score"]) == (2, 20)
    text = ok(bd(board, "agent", "list")).splitlines()
    assert "REVIEW (ATTENTION)" in text[0]
    line = next(t for t in text if t.startswith("rev-core "))
    assert line.split()[-3:-1] == ["2", "(20)"]  # (REVIEW (ATTENTION), then SIGNED)
    assert next(t for t in text if t.startswith("tester ")).split()[-2] == "-"
    assert any(t.startswith("rev-all ") and t.split()[-3:-1] == ["3", "(30)"]
               for t in ok(bd(board, "status", env=BOSS)).splitlines())
    assert "attention score 20" in ok(bd(board, "agent", "show", "rev-core"))


def test_the_score_is_capped_at_50(board: Path, bd) -> None:
    for i in range(4):
        ok(bd(board, "task", "create", "--title", f"more {i}", "--group", "core", "--status",
              "review", "--json", env=BOSS))
    rows = scores(ok(bd(board, "agent", "list", "--json")))
    assert rows["rev-core"] == (6, 50) and rows["rev-all"] == (7, 50)


def test_page_api(board: Path) -> None:
    from beadsmail.server.runner import Background

    ws = Workspace.open(board)
    with Background(ws, identity="boss", projects=["proj"]) as bg:
        client = httpx.Client(timeout=120, base_url=bg.url, headers={"X-Beads-Identity": "boss"})
        listed = client.get("/api/agents").json()
        status = client.get("/api/status").json()
    ws.close()
    assert scores(listed) == EXPECTED and scores(status["agents"]) == EXPECTED


def test_btmsg_status_shows_it(board: Path, monkeypatch) -> None:
    monkeypatch.chdir(board)
    monkeypatch.setenv("BTMSG_AGENT_ID", "boss")
    out = io.StringIO()
    with redirect_stdout(out):
        assert compat.btmsg_main(["status", "--json"]) == 0
    assert {r["id"]: (r["review_queue_count"], r["attention_score"])
            for r in json.loads(out.getvalue())} == EXPECTED
    out = io.StringIO()
    with redirect_stdout(out):
        assert compat.btmsg_main(["status"]) == 0
    line = next(t for t in out.getvalue().splitlines() if "rev-ui" in t)
    assert line.endswith("review 1 (attention 10)")
