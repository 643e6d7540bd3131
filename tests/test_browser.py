"""The live page in a real headless Chromium (Debian's ``chromium``) driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PROJECT = "proj"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def served(repo: Path, bd):
    assert bd(repo, "init").code == 0
    ws = Workspace.open(repo)
    with Background(ws, identity="human", projects=[PROJECT]) as bg:
        yield bg
    ws.close()


def test_page_shows_live_mail_moves_tasks_and_reports_conflicts(browser, served, repo, bd,
                                                               tmp_path) -> None:
    for agent, role in (("human", "manager"), ("alice", "worker")):
        assert bd(repo, "agent", "register", "--id", agent, "--role", role, "--identity",
                  "human").code == 0
    task = bd(repo, "task", "create", "--title", "Write the server docs", "--identity", "human",
              "--json").json()["task"]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/")
    page.wait_for_selector("#live.on", timeout=10_000)
    card = page.locator(f'.card[data-task="{task["id"]}"]')
    card.wait_for()
    assert card.locator("xpath=ancestor::div[@data-status]").get_attribute("data-status") == \
        "backlog"

    # a message sent from the CLI appears without a reload
    sent = bd(repo, "mail", "send", f"#{PROJECT}", "-s", "Deploy finished", "-m",
              "all green on main", "--type", "status", "--identity", "alice", "--json").json()
    item = page.locator(f'.msg[data-id="{sent["id"]}"]')
    item.wait_for(timeout=5_000)
    assert "Deploy finished" in item.inner_text() and "alice" in item.inner_text()
    reply = bd(repo, "mail", "reply", sent["id"], "-m", "thanks", "--identity", "bob",
               "--json").json()
    page.locator(f'.msg[data-id="{reply["id"]}"]').wait_for(timeout=5_000)
    item.locator(".thread-toggle").click()
    page.wait_for_selector(f'.msg[data-id="{sent["id"]}"] .thread-item >> nth=1')

    # a filter by type hides what does not match
    page.select_option("#f-type", "response")
    page.wait_for_selector(f'.msg[data-id="{sent["id"]}"]', state="detached")
    page.select_option("#f-type", "")
    item.wait_for()

    # move the task between columns on the board
    card.locator("select").select_option("in_progress")
    page.wait_for_selector(f'.column[data-status="in_progress"] .card[data-task="{task["id"]}"]')
    shown = bd(repo, "task", "show", task["id"], "--json").json()["task"]
    assert shown["status"] == "in_progress" and shown["version"] == 2

    # the page holds a stale version (someone moved the task meanwhile): the conflict is shown
    moved = page.locator(f'.card[data-task="{task["id"]}"]')
    # (in one step: a live reload of the board between the two would bring version 2 back)
    moved.evaluate("card => { card.dataset.version = '1'; const s = card.querySelector('select');"
                   " s.value = 'review'; s.dispatchEvent(new Event('change')); }")
    page.wait_for_selector("#banner:not([hidden])")
    banner = page.inner_text("#banner-text")
    assert "conflict" in banner.lower() and "version 2" in banner
    assert bd(repo, "task", "show", task["id"], "--json").json()["task"]["status"] == \
        "in_progress"

    page.wait_for_selector('#agents li[data-agent="alice"] .liveness.alive')
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert not errors, errors
