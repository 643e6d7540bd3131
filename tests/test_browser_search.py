"""The page's search box and reserved-files list in a real headless Chromium."""

from __future__ import annotations

import pytest
from test_browser import PROJECT, browser, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_search_box_and_reservations(browser, served, repo, bd) -> None:  # noqa: F811
    sent = bd(repo, "mail", "send", f"#{PROJECT}", "-s", "Parser <b>crash</b>", "-m",
              "the lexer <img src=x onerror=alert(1)> fails on emoji", "--identity", "human",
              "--json").json()
    assert bd(repo, "reserve", "src/**", "-m", "refactor", "--identity", "alice").code == 0
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: errors.append("dialog: " + d.message))
    page.goto(served.url + "/")
    page.wait_for_selector("#live.on", timeout=10_000)
    page.locator("#reservations li[data-id]").first.wait_for()
    assert "src/**" in page.inner_text("#reservations") and "alice" in \
        page.inner_text("#reservations")
    page.fill("#s-q", "lexer")
    page.click("#search button[type=submit]")
    hit = page.locator(f'#results .hit[data-id="{sent["id"]}"]')
    hit.wait_for()
    assert hit.locator("mark").inner_text().lower() == "lexer"
    assert hit.locator("img").count() == 0 and "<img" in hit.inner_text()
    page.fill("#s-q", '"unclosed')
    page.click("#search button[type=submit]")
    page.wait_for_selector("#banner:not([hidden])")
    assert "quote" in page.inner_text("#banner-text")
    page.click("#s-clear")
    assert page.locator("#results").is_hidden()
    # a reservation made from the CLI appears without a reload
    assert bd(repo, "reserve", "docs/**", "--identity", "bob").code == 0
    page.wait_for_function("document.querySelector('#reservations').innerText.includes('docs/**')",
                           timeout=15_000)
    assert errors == []
