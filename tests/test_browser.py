"""End to end: `streamlit run app.py` driven by Debian's Chromium through Playwright.

Skips cleanly when /usr/bin/chromium or the playwright package is missing. Never
runs `playwright install`. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import time

import pytest

from helpers import browser as B
from helpers import dash_fixtures as F

pytestmark = pytest.mark.slow

B.playwright()  # skips this module without /usr/bin/chromium or playwright
server, page = B.server, B.page  # pytest fixtures, used here by name
ARTIFACTS = B.ARTIFACTS
sql = F.sql


def code_block(pg, text: str):
    return pg.locator("code").filter(has_text=text)


def test_rationales_next_in_a_browser(server, page):
    base, run = server
    rows = sql(
        run, "SELECT id, question FROM samples WHERE iteration=2 AND phase='sample' AND decision='wrong' ORDER BY id"
    )
    n = len(rows)
    assert n >= 2
    page.goto(f"{base}/rationales?run=alpha&it=2&phase=sample&decision=wrong", wait_until="domcontentloaded")
    page.get_by_text(f"Sample 1 of {n}", exact=True).wait_for(timeout=60_000)
    code_block(page, rows[0][1]).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "browser_rationales_1.png"), full_page=True)
    assert page.get_by_text("Page not found").count() == 0
    page.get_by_role("button", name="Next").click()
    page.get_by_text(f"Sample 2 of {n}", exact=True).wait_for(timeout=30_000)
    code_block(page, rows[1][1]).first.wait_for(timeout=30_000)
    assert code_block(page, rows[0][1]).count() == 0 or rows[0][1] in rows[1][1]
    page.wait_for_function(f"() => window.location.search.includes('sid={rows[1][0]}')", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "browser_rationales_2.png"), full_page=True)
    # the URL opens that exact rationale in a fresh page
    url = page.url
    page.goto("about:blank")
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text(f"Sample 2 of {n}", exact=True).wait_for(timeout=60_000)


def test_untrusted_text_stays_text_in_a_browser(server, page):
    base, run = server
    sid = sql(run, "SELECT id FROM samples WHERE question_id=? AND phase='eval'", F.PAYLOAD_QID)[0][0]
    page.goto(f"{base}/rationales?run=alpha&sid={sid}", wait_until="domcontentloaded")
    code_block(page, "RATIONALE <script>alert(1)</script>").first.wait_for(timeout=60_000)
    assert code_block(page, "**bold** $x$ [link](javascript:alert(1))").count() >= 1
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    rz = sql(run, "SELECT id FROM samples WHERE question_id=? AND phase='rationalize'", F.PAYLOAD_QID)[0][0]
    page.goto(f"{base}/rationalizations?run=alpha&sid={rz}", wait_until="domcontentloaded")
    page.locator("mark").first.wait_for(timeout=60_000)
    assert page.locator("mark").first.inner_text().strip() == "<b>(CORRECT)</b>"
    page.get_by_text("Hint leak", exact=False).first.wait_for(timeout=30_000)
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "browser_rationalization_leak.png"), full_page=True)
    time.sleep(0.5)
    assert page.dialogs == []  # no alert() ever ran


def test_clicking_a_decision_bar_opens_those_samples(server, page):
    from urllib.parse import parse_qs, urlparse

    base, run = server
    page.goto(f"{base}/decisions?run=alpha", wait_until="domcontentloaded")
    page.get_by_text("Decisions per iteration", exact=True).wait_for(timeout=60_000)
    chart = page.locator(".js-plotly-plot").nth(1)  # after the Sankey
    chart.locator("g.point path").first.wait_for(timeout=30_000)
    chart.scroll_into_view_if_needed()
    bars = chart.locator("g.point path")
    boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
    bb = max((b for b in boxes if b), key=lambda b: b["height"])  # the tallest segment
    page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("() => window.location.pathname.endsWith('/rationales')", timeout=30_000)
    page.wait_for_function("() => window.location.search.includes('decision=')", timeout=30_000)
    q = {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}
    n = sql(
        run,
        "SELECT count(*) FROM samples WHERE iteration=? AND phase=? AND decision=?",
        int(q["it"]),
        q["phase"],
        q["decision"],
    )[0][0]
    page.get_by_text(f"Sample 1 of {n}", exact=True).wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "browser_bar_click.png"), full_page=True)


def test_bad_run_link_in_a_browser(server, page):
    base, _ = server
    page.goto(f"{base}/accuracy?run=../../etc", wait_until="domcontentloaded")
    page.get_by_text("not a run folder inside", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "browser_bad_run.png"), full_page=True)
