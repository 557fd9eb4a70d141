"""The inspector in a real browser (Debian's Chromium through Playwright): J/K and the arrow keys move through
samples on the Rationales and Compare pages, and not while typing in a text box.

Uses the server and page fixtures of helpers/browser.py (a streamlit server on a synthetic run, Chromium without
`playwright install`); skips where they skip.
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


def _wait(pg, text: str) -> None:
    pg.get_by_text(text, exact=True).wait_for(timeout=30_000)


def _press(pg, key: str) -> None:
    pg.locator("h1").first.click()  # focus on the page, outside any text box
    pg.keyboard.press(key)


def test_keys_move_through_rationales(server, page):
    base, run = server
    rows = sql(run, "SELECT id FROM samples WHERE iteration=2 AND phase='sample' AND decision='wrong' ORDER BY id")
    n = len(rows)
    assert n >= 3
    page.goto(f"{base}/rationales?run=alpha&it=2&phase=sample&decision=wrong", wait_until="domcontentloaded")
    _wait(page, f"Sample 1 of {n}")
    page.wait_for_function("() => document.body.dataset.starKeys === 'on'", timeout=30_000)  # the key listener is live
    _press(page, "j")
    _wait(page, f"Sample 2 of {n}")
    page.wait_for_function(f"() => window.location.search.includes('sid={rows[1][0]}')", timeout=30_000)
    _press(page, "ArrowRight")
    _wait(page, f"Sample 3 of {n}")
    _press(page, "k")
    _wait(page, f"Sample 2 of {n}")
    _press(page, "ArrowLeft")
    _wait(page, f"Sample 1 of {n}")
    box = page.get_by_label("Search text")
    box.click()
    box.press("j")  # typing a j in a text box is not a move
    page.wait_for_timeout(1500)
    assert page.get_by_text(f"Sample 1 of {n}", exact=True).count() == 1
    page.screenshot(path=str(ARTIFACTS / "browser_keys_rationales.png"), full_page=True)


def test_keys_move_through_compare(server, page):
    base, run = server
    page.goto(
        f"{base}/compare?run=alpha&ra=alpha&ia=0&rb=alpha&ib=2&task=arithmetic&phase=eval",
        wait_until="domcontentloaded",
    )
    page.get_by_text("Question 1 of", exact=False).first.wait_for(timeout=60_000)
    total = page.get_by_text("Question 1 of", exact=False).first.inner_text().split(" of ")[1].strip()
    page.wait_for_function("() => document.body.dataset.starKeys === 'on'", timeout=30_000)  # the key listener is live
    _press(page, "j")
    _wait(page, f"Question 2 of {total}")
    _press(page, "ArrowLeft")
    _wait(page, f"Question 1 of {total}")
    page.locator("pre.star-diff").first.wait_for(timeout=30_000)
    assert page.locator("pre.star-diff").count() == 2
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "browser_compare.png"), full_page=True)
    assert page.dialogs == []


def test_number_keys_label_the_rationale(server, page):
    from star_core.annotations import LABELS, Annotations

    base, run = server
    sid = sql(run, "SELECT id FROM samples WHERE iteration=1 AND phase='sample' ORDER BY id LIMIT 1")[0][0]
    page.goto(f"{base}/rationales?run=alpha&sid={sid}", wait_until="domcontentloaded")
    page.wait_for_function("() => document.body.dataset.starKeys === 'on'", timeout=60_000)
    for n, label in ((2, list(LABELS)[1]), (3, list(LABELS)[2]), (1, list(LABELS)[0])):
        _press(page, str(n))
        t0 = time.time()
        while Annotations(run).get(sid)["label"] != label and time.time() - t0 < 30:
            time.sleep(0.2)
        assert Annotations(run).get(sid)["label"] == label
    box = page.get_by_label("Search text")
    box.click()
    box.press("2")  # typing a digit in a text box is not a label
    page.wait_for_timeout(1500)
    assert Annotations(run).get(sid)["label"] == list(LABELS)[0]
