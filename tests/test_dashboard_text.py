"""Stored and URL-borne strings reach markdown only through ``ui.md_escape``, which stops links, images and
autolinks (bare URLs, ``www.`` names, e-mail addresses) too; model text stays text (issue 20, item 7)."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from helpers import dash_fixtures as F
from star_core import queries as Q
from star_dashboard.ui import md_escape

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "app.py"
os.environ.setdefault("OMP_NUM_THREADS", "1")
EVIL = (
    "[Session expired](http://evil.example/a) ![t](http://evil.example/track.png) http://bare.example/x "
    "WWW.evil.example/y mail@evil.example <https://angle.example/> http&#58;//entity.example/"
)
#: Plotly draws ``<a href>`` in titles, legends and labels as a live link.
HTML_LINK = '<a href="http://evil.example/p">p</a>'
#: What a markdown renderer turns into a link or an image: a link or image bracket, a URL scheme, www., a bare
#: e-mail address, an unescaped HTML entity or angle bracket.
LIVE = re.compile(r"(?<!\\)[\[\]()!<&]|://|(?i:www\.)|@(?!\u200b)")


def _plain(md: str) -> str:
    """What the escaped markdown shows: backslash escapes resolved, zero-width spaces gone."""
    return re.sub(r"\\(.)", r"\1", md).replace("\u200b", "")


@pytest.mark.parametrize("text", [EVIL, "x\r=y\n[z](http://e.example)", "a\u200bb:c//d", "  :red[x] $y$ **z**"])
def test_md_escape_leaves_nothing_live(text):
    out = md_escape(text)
    assert not LIVE.search(out), out
    assert "\n" not in out and "\r" not in out
    assert _plain(out) == " ".join(text.splitlines()).replace("\u200b", "")


@pytest.fixture
def env(tmp_path, monkeypatch):
    from streamlit import config

    for var in ("STAR_DASHBOARD_LAUNCH", "STAR_DASHBOARD_TOKEN", "STAR_DASHBOARD_MAX_RUNS"):
        monkeypatch.delenv(var, raising=False)
    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    root = tmp_path / "runs"
    F.build_run(root / "evil", tasks=("arithmetic",), iterations=1, n_train=4, n_eval=3)
    with sqlite3.connect(root / "evil" / "store.sqlite") as con:
        con.execute("UPDATE runs SET status=?, name=?, model=?", (EVIL, EVIL + " " + HTML_LINK, EVIL))
        con.execute("UPDATE samples SET decision=? WHERE decision='wrong'", (HTML_LINK,))
    monkeypatch.setenv("STAR_RUNS_ROOT", str(root))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    yield root
    config.set_option("server.address", old)


def _open(page: str | None, **params) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(params)
    if page:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown(at: AppTest) -> list[str]:
    """Every string the page hands to markdown: text elements, and progress bars' labels."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title")
    return [str(e.value) for k in kinds for e in getattr(at, k)] + [p.proto.text for p in at.get("progress")]


def test_a_link_in_the_run_parameter_is_shown_escaped(env):
    at = _open("accuracy", run=EVIL)
    shown = [m for m in _markdown(at) if "Session expired" in m]
    assert shown and not any(LIVE.search(m.replace("'", "")) for m in shown), shown


@pytest.mark.parametrize("page", [None, "rationales", "launch"])
def test_a_stored_status_name_and_model_are_shown_escaped(env, page):
    at = _open(page, run="evil")
    shown = [m for m in _markdown(at) if "Session expired" in m or "evil.example" in m]
    assert shown
    assert not [m for m in shown if LIVE.search(m)], shown


@pytest.mark.parametrize("page", ["decisions", "accuracy"])
def test_stored_strings_in_charts_are_html_escaped(env, page):
    """Plotly renders a subset of HTML (links included) in titles, legends and node labels: a stored run name
    or decision reaches a chart escaped."""
    import json

    at = _open(page, run="evil")
    specs = []
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        for trace in spec.get("data", []):
            trace.pop("customdata", None)  # data for the click handler, never drawn
        specs.append(json.dumps(spec))
    assert specs
    assert not [sp for sp in specs if re.search(r"<a\b", sp, re.I)]


def test_a_stored_status_in_the_runs_metric_is_escaped(tmp_path, monkeypatch):
    """st.metric renders its value as markdown: a planted status must reach it escaped (a browser test once
    caught its links only when the details panel rendered in time)."""
    from streamlit import config

    planted = "[Session expired](http://links.example/a) ![t](http://links.example/track.png)"
    F.build_run(tmp_path / "planted", tasks=("arithmetic",), iterations=1, n_train=4, n_eval=3)
    with sqlite3.connect(tmp_path / "planted" / "store.sqlite") as con:
        con.execute("UPDATE runs SET status=?", (planted,))
    monkeypatch.setenv("STAR_RUNS_ROOT", str(tmp_path))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
        at.query_params["run"] = "planted"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        status = [m for m in at.metric if m.label == "Status"]
        assert status and all("](http" not in m.value for m in status)
    finally:
        config.set_option("server.address", old)
