"""The page shows a reviewer's review queue and attention score beside its liveness."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_browser import PROJECT, browser, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_agents_panel_shows_review_queue_and_attention(browser, served, repo: Path,  # noqa: F811
                                                       bd) -> None:
    boss = {"BEADS_IDENTITY": "human"}
    assert bd(repo, "agent", "register", "--id", "human", "--role", "manager", env=boss).code == 0
    assert bd(repo, "agent", "register", "--id", "rev", "--role", "reviewer", env=boss).code == 0
    for title in ("one", "two"):
        assert bd(repo, "task", "create", "--title", title, "--status", "review",
                  env=boss).code == 0
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/")
    reviewer = page.locator('#agents li[data-agent="rev"] .attention')
    reviewer.wait_for(timeout=60_000)
    assert reviewer.inner_text().strip() == "· review 2 · attention 20"
    assert page.locator('#agents li[data-agent="human"] .attention').count() == 0
    assert errors == []


def test_the_page_marks_signed_and_unsigned_records_in_words(browser, served,  # noqa: F811
                                                             repo: Path, bd) -> None:
    """Each message and each agent's profile carries its signature status as a word (not
    colour alone): a record written before signing says ``unverified``."""
    import json

    from beadsmail.workspace import Workspace

    boss = {"BEADS_IDENTITY": "human"}
    assert bd(repo, "agent", "register", "--id", "human", "--role", "manager", env=boss).code == 0
    signed = bd(repo, "mail", "send", f"#{PROJECT}", "-s", "signed", "-m", "x", "--json",
                env=boss).json()
    task = bd(repo, "task", "create", "--title", "signed task", "--json", env=boss).json()["task"]
    ws = Workspace.open(repo)
    old = {"v": 1, "id": "bd-0000000000007", "kind": "message", "actor": "elder",
           "created_at": "2026-01-01T00:00:00.000000Z", "clock": 1, "replica": ws.replica,
           "from": "elder", "to": [f"#{PROJECT}"], "subject": "from before signing", "body": "x",
           "priority": 2, "type": "status", "thread_id": "bd-0000000000007",
           "replies_to": None, "ephemeral": False, "metadata": {}, "action_requested": "none"}
    ws.writer.append(ws.replica, [json.dumps(old, sort_keys=True, separators=(",", ":"))
                                  .encode()], "old", "elder", "2026-01-01", 1 << 20)
    ws.close()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/")
    mark = page.locator(f'.msg[data-id="{signed["id"]}"] .badge.sig')
    mark.wait_for(timeout=60_000)
    assert mark.inner_text().strip() == "\u2713 verified"
    assert "signed by replica" in mark.get_attribute("title")
    elder = page.locator('.msg[data-id="bd-0000000000007"] .badge.sig')
    elder.wait_for(timeout=60_000)
    assert elder.inner_text().strip() == "unverified"
    agent = page.locator('#agents li[data-agent="human"] .badge.sig')
    agent.wait_for(timeout=60_000)
    assert agent.inner_text().strip() == "\u2713 verified"
    card = page.locator(f'.card[data-task="{task["id"]}"] .badge.sig')
    card.wait_for(timeout=60_000)
    assert card.inner_text().strip() == "\u2713 verified"
    assert errors == []
