"""`star report`: one self-contained HTML file; opened in Chromium with the network off, model text stays text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import dash_fixtures as F
from star_core import queries as Q
from star_core.annotations import Annotations
from star_core.cli import main
from star_core.stats import describe

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    run = F.build_run(d / "rep", tasks=("arithmetic",), iterations=2, n_train=10, n_eval=8, warm_start=3)
    sid = F.sql(run, "SELECT id FROM samples WHERE question_id=? AND phase='eval'", F.PAYLOAD_QID)[0][0]
    Annotations(run).set_label(sid, "unfaithful")
    Annotations(run).set_note(sid, "note <img src=x onerror=alert(2)>")
    out = d / "out" / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    return run, out, out.read_text(encoding="utf-8")


def test_report_is_self_contained_and_holds_the_numbers(report):
    run, out, doc = report
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", doc), "an external resource"
    assert "<link" not in doc and "@import" not in doc
    assert "Content-Security-Policy" in doc and "script-src &#x27;sha256-" in doc
    m = Q.measures_frame(run)
    acc = m[(m["measure"] == "accuracy") & (m["grp"] == "all") & (m["phase"] == "eval")]
    for r in acc.itertuples():  # every evaluation's accuracy with n and its interval, as text
        assert describe(int(r.k), int(r.n)) in doc
    assert doc.count("<svg") >= 1 and doc.count('class="ci"') >= len(acc)
    for it in (1, 2):
        f = Q.funnel(run, it)
        assert f"<h3>Iteration {it}</h3>" in doc
        assert f'<td class="n">{f["sampled"]:,}</td>' in doc and f'<td class="n">{f["kept"]:,}</td>' in doc
    n = F.sql(run, "SELECT count(*) FROM samples")[0][0]
    assert doc.count('<details class="s"') == n
    assert "<script>alert(1)</script>" not in doc and "<img src=x" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc and "&lt;img src=x onerror=alert(2)&gt;" in doc


def test_report_caps_the_sample_list_and_says_so(report, tmp_path):
    run, _, _ = report
    out = tmp_path / "small.html"
    assert main(["report", str(run), "-o", str(out), "--max-samples", "10"]) == 0
    doc = out.read_text(encoding="utf-8")
    assert doc.count('<details class="s"') == 10
    last = F.sql(run, "SELECT max(iteration) FROM samples")[0][0]
    assert set(re.findall(r'data-it="(\d+)"', doc)) == {str(last)}
    assert "this file lists 10" in doc


def test_report_of_a_damaged_store_is_an_error(tmp_path, capsys):
    F.write_corrupt(tmp_path / "bad")
    assert main(["report", str(tmp_path / "bad"), "-o", str(tmp_path / "x.html")]) == 2
    assert "star: error:" in capsys.readouterr().err and not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_report_offline_in_chromium(report):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    run, out, _ = report
    wrong = F.sql(run, "SELECT count(*) FROM samples WHERE iteration=2 AND phase='sample' AND decision='wrong'")[0][0]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            ctx = browser.new_context(offline=True, viewport={"width": 1300, "height": 1400})
            requests = []
            ctx.route(
                "**/*",
                lambda route: (
                    (requests.append(route.request.url), route.abort())
                    if not route.request.url.startswith("file:")
                    else route.continue_()
                ),
            )
            pg = ctx.new_page()
            dialogs, errors = [], []
            pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.goto(out.as_uri(), wait_until="load")
            total = F.sql(run, "SELECT count(*) FROM samples")[0][0]
            assert pg.locator("#count").inner_text() == f"{total:,} shown"  # the script ran
            assert pg.locator("svg.chart").count() >= 1
            pg.select_option("select[data-f=it]", "2")
            pg.select_option("select[data-f=phase]", "sample")
            pg.select_option("select[data-f=decision]", "wrong")
            assert pg.locator("#count").inner_text() == f"{wrong:,} shown"
            assert pg.locator("details.s:visible").count() == wrong
            pg.select_option("select[data-f=it]", "")
            pg.select_option("select[data-f=phase]", "")
            pg.select_option("select[data-f=decision]", "")
            pg.fill("#q", "Payload question")
            assert pg.locator("details.s:visible").count() == 2  # the eval and the rationalize payloads
            pg.locator("details.s:visible summary").first.click()
            body = pg.locator("details.s:visible pre").all_inner_texts()
            assert any("RATIONALE <script>alert(1)</script> <img src=x onerror=alert(1)>" in t for t in body)
            assert any("note <img src=x onerror=alert(2)>" in t for t in body)
            assert pg.locator("img").count() == 0 and pg.locator("#samples script").count() == 0
            pg.screenshot(path=str(ARTIFACTS / "report_offline.png"), full_page=False)
            pg.wait_for_timeout(300)
            assert dialogs == [] and errors == []
            assert requests == []  # nothing asked for the network
        finally:
            browser.close()
