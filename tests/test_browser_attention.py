"""The page shows a reviewer's review queue and attention score beside its liveness."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_browser import browser, served  # noqa: F401 (fixtures)

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
