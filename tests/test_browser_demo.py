"""The demo in a real browser (Debian's Chromium through Playwright), on the recorded demo runs: the landing page
and its "start here", the tour's story choice on each recorded run, a deep link to a missing sample, the grouped
rejection reasons, and a launched run followed live through Stop and Resume to its end (the stale-after-Resume
case). Saves the README's screenshots when $STAR_SCREENSHOTS names a folder.

Uses helpers/browser.py's ``serve`` (streamlit on loopback) and ``chromium`` (without `playwright install`); skips
without them.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from helpers import FAKE_STAR_CLI, ROOT
from helpers import browser as B
from helpers import dash_fixtures as F
from star_core import queries as Q
from star_core.queries import tour as T
from star_dashboard import reasons as R

pytestmark = pytest.mark.slow

sync_api = B.playwright()  # skips this module without /usr/bin/chromium or playwright
ARTIFACTS = B.ARTIFACTS
sql = F.sql
DEMOS = ROOT / "sample_data" / "runs"
ORDER = (DEMOS / Q.ORDER_FILE).read_text().split()
SHOWCASE = ORDER[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    user = tmp_path_factory.mktemp("user_runs")
    extra: dict[str, str | None] = {
        "STAR_DEMO_RUNS": "1",
        "STAR_CLI": f"{sys.executable} {FAKE_STAR_CLI}",
        "STAR_FAKE_SECONDS": "120",
        "STAR_FAKE_RESUME_SECONDS": "6",
    }
    extra.update(dict.fromkeys(("STAR_DASHBOARD_LAUNCH", "STAR_DASHBOARD_TOKEN", "STAR_DASHBOARD_MAX_RUNS")))
    with B.serve(user, tmp_path_factory.mktemp("log"), **extra) as base:
        yield base, user


@pytest.fixture(scope="module")
def page(demo):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = B.chromium(p)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 900})
        finally:
            browser.close()


def _shot(pg, name: str) -> None:
    pg.wait_for_timeout(800)  # charts and fonts settle
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    folder = os.environ.get("STAR_SCREENSHOTS")  # the README's: STAR_SCREENSHOTS=docs/screenshots
    if folder:
        out = Path(folder) / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(out))
        try:  # small: 1080 px wide, 256 colours
            from PIL import Image
        except ImportError:
            return
        with Image.open(out) as im:
            small = im.convert("RGB").resize((1080, round(im.height * 1080 / im.width)), Image.LANCZOS)
        small.quantize(256).save(out, optimize=True)


def test_landing_page_starts_here_on_the_showcase(demo, page):
    base, _ = demo
    page.goto(base, wait_until="domcontentloaded")
    page.get_by_text("Start here", exact=False).first.wait_for(timeout=90_000)
    page.wait_for_function(f"() => window.location.search.includes('run={SHOWCASE}')", timeout=30_000)
    page.get_by_role("button", name="Open the showcase's tour").wait_for(timeout=30_000)
    _shot(page, "landing")
    page.get_by_role("button", name="Open the showcase's tour").click()
    page.wait_for_function("() => window.location.pathname.endsWith('/tour')", timeout=60_000)
    page.get_by_text("Story:", exact=False).first.wait_for(timeout=90_000)
    _shot(page, "tour")


@pytest.mark.parametrize("name", ORDER)
def test_the_tour_picks_an_audited_story_on_each_demo_run(demo, page, name):
    base, _ = demo
    pick = T.auto_pick(T.candidates(DEMOS / name))
    page.goto(f"{base}/tour?run={name}", wait_until="domcontentloaded")
    page.get_by_text(f"Story: {T.KIND_TAG[pick['kind']]}.", exact=False).first.wait_for(timeout=90_000)
    page.wait_for_function("() => window.location.search.includes('q=')", timeout=30_000)
    assert pick["question_id"] in page.url.replace("%3A", ":").replace("%2B", "+")
    learned = page.get_by_text("STaR has learned this question", exact=False).count()
    if pick["kind"] in ("learned", "self_learned"):
        assert learned == 1
    else:
        assert learned == 0  # nothing celebrated without audited reasoning
    if pick["kind"] == "answer_only":
        assert page.get_by_text("learned the answer, not the reasoning", exact=False).count() >= 1
    old = Q.run_brief(DEMOS / name)["audit_outdated"]
    assert (page.get_by_text("Audited under older rules", exact=False).count() > 0) == old


def test_a_deep_link_to_a_missing_sample(demo, page):
    base, _ = demo
    last = sql(DEMOS / SHOWCASE, "SELECT max(id) FROM samples")[0][0]
    page.goto(f"{base}/rationales?run={SHOWCASE}&sid={last + 5000}", wait_until="domcontentloaded")
    page.get_by_text(f"#{last + 5000}, which this run does not hold", exact=False).wait_for(timeout=90_000)
    page.get_by_role("button", name=f"Open the nearest sample, #{last}").click()
    page.wait_for_function(f"() => window.location.search.includes('sid={last}')", timeout=30_000)
    page.get_by_text(f"sample #{last}", exact=False).first.wait_for(timeout=30_000)


def test_grouped_rejection_reasons_open_their_samples(demo, page):
    base, _ = demo
    run = DEMOS / SHOWCASE
    it = sql(run, "SELECT max(iteration) FROM samples WHERE phase='sample'")[0][0]
    counts = {
        (ph, d): n
        for ph, d, n in sql(
            run, "SELECT phase, decision, count(*) FROM samples WHERE iteration=? GROUP BY phase, decision", it
        )
    }
    groups = R.group(
        {d: n for (ph, d), n in counts.items() if ph == "sample"},
        {d: n for (ph, d), n in counts.items() if ph == "rationalize"},
    )
    assert groups
    page.goto(f"{base}/decisions?run={SHOWCASE}", wait_until="domcontentloaded")
    page.get_by_text("Why samples were not kept, by kind", exact=True).wait_for(timeout=90_000)
    for g in groups:
        page.get_by_text(re.compile(rf"^{g['n']:,} · {g['kind']}: ")).wait_for(timeout=30_000)
    phase, decision, n = groups[0]["parts"][0]
    where = "first attempts" if phase == "sample" else "hinted retries"
    page.get_by_role("button", name=re.compile(rf"^{n:,} {where}")).first.click()
    page.wait_for_function("() => window.location.pathname.endsWith('/rationales')", timeout=60_000)
    page.get_by_text(f"Sample 1 of {n:,}", exact=True).wait_for(timeout=60_000)


def test_a_resumed_run_is_followed_to_its_end(demo, page):
    """Launch, Stop, Resume: without a reload the page shows the resumed run live, then finished."""
    base, user = demo
    page.goto(f"{base}/launch", wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Run name").wait_for(timeout=90_000)
    page.get_by_role("textbox", name="Run name").fill("browser-resume")
    page.get_by_role("button", name="Start run").click()
    page.get_by_role("button", name="Stop run").wait_for(timeout=60_000)
    page.get_by_role("button", name="Stop run").click()
    page.get_by_role("button", name="Resume run").wait_for(timeout=60_000)
    assert Q.run_status(user / "browser-resume") == "stopped"
    page.get_by_role("button", name="Resume run").click()
    page.get_by_role("button", name="Stop run").wait_for(timeout=30_000)  # live again, no reload
    page.get_by_text(re.compile(r"finished · ")).first.wait_for(timeout=60_000)  # followed to its end
    assert Q.run_status(user / "browser-resume") == "finished"
    assert page.get_by_role("button", name="Resume run").count() == 0
    _shot(page, "launch_after_resume")


def test_a_click_on_a_table_cell_opens_its_row(demo, page):
    base, _ = demo
    run = DEMOS / SHOWCASE
    ids = [i for (i,) in sql(run, "SELECT id FROM samples WHERE iteration=1 AND phase='sample' ORDER BY id LIMIT 3")]
    page.goto(f"{base}/rationales?run={SHOWCASE}&it=1&phase=sample", wait_until="domcontentloaded")
    page.get_by_text("Sample 1 of", exact=False).first.wait_for(timeout=90_000)
    grid = page.locator("[data-testid='stDataFrame']:visible").first  # the table beside the sample
    grid.wait_for(timeout=30_000)
    grid.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + 35 * 3 + 17)  # a cell of the third row
    page.wait_for_function(f"() => window.location.search.includes('sid={ids[2]}')", timeout=30_000)
    page.get_by_text("Sample 3 of", exact=False).first.wait_for(timeout=30_000)


def test_chart_toolbars_leave_the_titles_free_on_a_phone(demo, page):
    base, _ = demo
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(f"{base}/accuracy?run={SHOWCASE}", wait_until="domcontentloaded")
        chart = phone.locator(".js-plotly-plot").first
        chart.wait_for(timeout=90_000)
        chart.scroll_into_view_if_needed()
        chart.locator(".gtitle").wait_for(timeout=30_000)
        chart.hover()  # the toolbar shows on hover (a tap on a phone)
        bar = chart.locator(".modebar").first
        bar.wait_for(timeout=30_000)
        t, m = chart.locator(".gtitle").bounding_box(), bar.bounding_box()
        overlap_x = min(t["x"] + t["width"], m["x"] + m["width"]) - max(t["x"], m["x"])
        overlap_y = min(t["y"] + t["height"], m["y"] + m["height"]) - max(t["y"], m["y"])
        assert overlap_x <= 0 or overlap_y <= 0, (t, m)
    finally:
        phone.close()


def test_back_returns_to_the_previous_page_in_one_press(demo, page):
    base, _ = demo
    page.goto(f"{base}/accuracy?run={SHOWCASE}", wait_until="domcontentloaded")
    page.get_by_text("Training loss", exact=True).first.wait_for(timeout=90_000)
    page.wait_for_function("() => document.body.dataset.starHistory === 'on'", timeout=30_000)
    start = page.evaluate("history.length")
    page.get_by_role("link", name="Rationales").first.click()
    page.get_by_text("Sample 1 of", exact=False).first.wait_for(timeout=60_000)
    page.wait_for_function("() => window.location.search.includes('sid=')", timeout=30_000)
    page.wait_for_timeout(1000)  # the page has written its state into the URL
    assert page.evaluate("history.length") == start + 1  # one entry for one page switch
    page.go_back()
    page.wait_for_function("() => window.location.pathname.endsWith('/accuracy')", timeout=30_000)
    page.get_by_text("Training loss", exact=True).first.wait_for(timeout=60_000)
    page.go_forward()
    page.wait_for_function("() => window.location.pathname.endsWith('/rationales')", timeout=30_000)
    page.get_by_text("Sample 1 of", exact=False).first.wait_for(timeout=60_000)
