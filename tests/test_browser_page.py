"""The page's first impression in a real headless Chromium: no alert until something went
wrong, a compose box that offers only addresses that exist, long text that wraps in every
panel at desktop and phone widths, and agents alive as long as they act."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from test_browser import browser  # noqa: F401 (fixture)

from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace

pytestmark = pytest.mark.browser

PROJECT = "proj"
LONG_WORD = "x" * 400
LONG_URL = "https://example.com/" + "segment/" * 60
LONG_SUBJECT = "Subject" * 40
LONG_AGENT = "worker-" + "z" * 57
VIEWPORTS = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}

# Every element of the page that is shown must stay inside its panel and inside the
# viewport, and nothing but a form field may be wider than its own box (a box that scrolls
# sideways, or text that runs out of it, is what a reader cannot read).
OVERFLOW = """() => {
  const bad = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width + 1)
    bad.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.split(" ")[0] : "");
  for (const panel of document.querySelectorAll("header, main > section")) {
    const box = panel.getBoundingClientRect();
    if (box.right > width + 1) bad.push(`${name(panel)} ends at ${box.right} > ${width}`);
    for (const e of [panel, ...panel.querySelectorAll("*")]) {
      const r = e.getBoundingClientRect();
      if (!r.width || !e.getClientRects().length) continue;
      if (r.right > box.right + 1 || r.left < box.left - 1)
        bad.push(`${name(e)} sticks out of ${name(panel)}`);
      if (!["INPUT", "TEXTAREA", "SELECT"].includes(e.tagName) &&
          e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)
        bad.push(`${name(e)} is wider than its box: ${e.scrollWidth} > ${e.clientWidth}`);
    }
  }
  return [...new Set(bad)].slice(0, 15);
}"""


@pytest.fixture
def team(repo: Path, bd) -> Path:
    """A store with a roster (lead manages, alice and bob work) and a channel #dev that alice
    is in, as a project has it before anyone starts ``bd serve``."""
    assert bd(repo, "init").code == 0
    for agent, role in (("lead", "manager"), ("alice", "worker"), ("bob", "worker")):
        assert bd(repo, "agent", "register", "--id", agent, "--role", role,
                  "--identity", "lead").code == 0
    assert bd(repo, "channel", "create", "dev", "--identity", "lead").code == 0
    assert bd(repo, "channel", "join", "dev", "--identity", "alice").code == 0
    return repo


@contextlib.contextmanager
def serving(repo: Path, identity: str):
    ws = Workspace.open(repo)
    try:
        with Background(ws, identity=identity, projects=[PROJECT]) as bg:
            yield bg
    finally:
        ws.close()


def open_page(browser, url: str, viewport: dict):  # noqa: F811
    """The page, loaded and live; ``errors`` collects uncaught errors and console errors
    (a failed request, the favicon's too, is one)."""
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    page.wait_for_selector("#live.on", timeout=20_000)
    page.wait_for_selector("#agents li", timeout=20_000)
    return page, errors


def offered_addresses(page) -> set[str]:
    """Every address the page offers: the compose suggestions and the filters' choices."""
    return set(page.evaluate("""() => [
        ...[...document.querySelectorAll('#c-to-list option')].map(o => o.value),
        ...[...document.querySelectorAll('#f-channel option')].map(o => o.value && '#' + o.value),
        ...[...document.querySelectorAll('#f-agent option')].map(o => o.value),
      ].filter(Boolean)"""))


def test_empty_store_says_what_to_do(browser, repo, bd) -> None:  # noqa: F811
    assert bd(repo, "init").code == 0
    with serving(repo, "human") as served:  # nobody registered: the server creates #proj
        page, errors = open_page(browser, served.url, VIEWPORTS["desktop"])
        page.wait_for_selector("#log .empty")
        assert "bd mail send" in page.inner_text("#log")
        assert "no agents" in page.inner_text("#agents")
        assert not page.is_visible("#banner")
        page.wait_for_function("document.querySelector('#c-to').value !== ''", timeout=10_000)
        assert page.input_value("#c-to") == f"#{PROJECT}"
        assert f"#{PROJECT}" in offered_addresses(page)
        # the first message replaces the hint without a reload
        sent = bd(repo, "mail", "send", f"#{PROJECT}", "-s", "hello", "-m", "first",
                  "--identity", "human", "--json").json()
        page.wait_for_selector(f'.msg[data-id="{sent["id"]}"]')
        assert page.locator("#log .empty").count() == 0
        # a time on another day shows its date, not only the time of day
        assert bd(repo, "reserve", "docs/**", "--ttl", "3d", "--identity", "human").code == 0
        page.wait_for_selector('#reservations li[data-id]', timeout=20_000)
        until = page.evaluate("new Date(Date.now() + 3 * 86400e3).getFullYear()")
        assert str(until) in page.inner_text("#reservations")
        assert errors == []


def test_no_alert_until_an_error_and_compose_offers_only_what_exists(browser, team,  # noqa: F811
                                                                    bd) -> None:
    # mail to a typo and to a channel nobody created: stored as dead letters
    assert bd(team, "mail", "send", "carl", "#nope", "-s", "lost", "-m", "hello?",
              "--identity", "bob").code == 0
    # alice serves: a worker may not create the project channel, so #proj does not exist
    with serving(team, "alice") as served:
        page, errors = open_page(browser, served.url, VIEWPORTS["desktop"])
        assert not page.is_visible("#banner"), page.inner_text("#banner")

        # the compose box starts at the first channel the viewer is in, never at one that
        # does not exist; the page offers real addresses only
        page.wait_for_function("document.querySelector('#c-to').value !== ''", timeout=10_000)
        assert page.input_value("#c-to") == "#dev"
        existing = {"lead", "alice", "bob", "*", "#dev", "#review-queue", "#review-log"}
        offered = offered_addresses(page)
        assert {"#dev", "bob", "*"} <= offered and offered <= existing, offered

        # a viewer in no channel gets an empty box that says what to type
        page.fill("#identity", "bob")
        page.dispatch_event("#identity", "change")
        page.wait_for_function("document.querySelector('#c-to').value === ''", timeout=10_000)
        assert "agent" in page.get_attribute("#c-to", "placeholder")
        page.fill("#identity", "alice")
        page.dispatch_event("#identity", "change")
        page.wait_for_function("document.querySelector('#c-to').value === '#dev'",
                               timeout=10_000)

        # a send to a typo is stored, and the alert says so and what to do
        page.fill("#c-to", "alcie")
        page.fill("#c-body", "are you there?")
        page.click("#compose button[type=submit]")
        page.wait_for_selector("#banner", state="visible", timeout=10_000)
        text = page.inner_text("#banner-text")
        assert "alcie" in text and "did you mean alice" in text and "dlq" in text, text
        page.click("#banner-close")
        page.wait_for_selector("#banner", state="hidden")
        assert errors == []


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_long_text_wraps_in_every_panel(browser, team, bd, viewport) -> None:  # noqa: F811
    assert bd(team, "agent", "register", "--id", LONG_AGENT, "--role", "worker",
              "--identity", "lead").code == 0
    root = bd(team, "mail", "send", "bob", "-s", LONG_SUBJECT, "-m",
              "needle " + "word " * 80 + LONG_WORD + " " + LONG_URL, "--identity", "alice",
              "--json").json()
    assert bd(team, "mail", "reply", root["id"], "-m", "see " + LONG_URL + " " + LONG_WORD,
              "--identity", "bob").code == 0
    assert bd(team, "channel", "post", "dev", "-s", "deploy " + LONG_WORD, "-m",
              "all green\n" + LONG_URL, "--identity", "alice").code == 0
    assert bd(team, "task", "create", "--title", "Fix " + LONG_WORD, "--assign", LONG_AGENT,
              "--identity", "lead").code == 0
    assert bd(team, "task", "create", "--title", "Write the parser " * 12,
              "--identity", "lead").code == 0
    assert bd(team, "reserve", "src/" + "deep/" * 60 + "file.py", "--identity", "alice").code == 0
    with serving(team, "lead") as served:
        page, errors = open_page(browser, served.url, VIEWPORTS[viewport])
        page.wait_for_selector(".msg >> nth=2")
        page.wait_for_selector(".card >> nth=1")
        page.locator(f'.msg[data-id="{root["id"]}"] .thread-toggle').click()
        page.wait_for_selector(f'.msg[data-id="{root["id"]}"] .thread-item >> nth=1')
        page.fill("#s-q", "needle")
        page.click("#search button[type=submit]")
        page.wait_for_selector(f'#results .hit[data-id="{root["id"]}"]')
        assert page.evaluate(OVERFLOW) == []
        assert errors == []


@pytest.fixture
def clock(monkeypatch):
    """Move bd's clock (the server's too: it runs in this process) forward by
    ``clock.shift`` seconds, so no test waits for real time."""
    from datetime import datetime, timedelta

    from beadsmail import agents, records

    class Shifted(datetime):
        shift = 0.0

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=cls.shift)

    monkeypatch.setattr(agents, "datetime", Shifted)
    monkeypatch.setattr(records, "datetime", Shifted)
    return Shifted


def test_an_agent_that_only_sends_mail_is_alive(browser, team, bd, clock) -> None:  # noqa: F811
    with serving(team, "lead") as served:
        clock.shift = 301  # agents.stalled_after is 300 s: nobody has acted since registering
        page, errors = open_page(browser, served.url, VIEWPORTS["desktop"])
        alice = page.locator('#agents li[data-agent="alice"] .liveness')
        page.wait_for_selector('#agents li[data-agent="alice"] .liveness.stalled')
        assert "min ago" in alice.get_attribute("title")
        # alice never runs 'bd agent heartbeat'; she only sends mail, and is alive at once
        assert bd(team, "mail", "send", "bob", "-s", "progress", "-m", "parser done",
                  "--identity", "alice").code == 0
        page.wait_for_selector('#agents li[data-agent="alice"] .liveness.alive', timeout=10_000)
        assert "s ago" in alice.get_attribute("title")
        assert page.locator('#agents li[data-agent="bob"] .liveness').inner_text() == "stalled"
        assert errors == []
