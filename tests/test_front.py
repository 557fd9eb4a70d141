"""The front door: a fresh session opens on the showcase (the first run of sample_data/runs/ORDER, read here, not
named), whatever was launched last; the landing page starts with "start here"; a pick is kept in the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.apptest import APP, AppTest
from helpers.tour_stores import build_story_run
from star_core import queries as Q

ROOT = Path(__file__).resolve().parent.parent
SHOWCASE = (ROOT / "sample_data" / "runs" / Q.ORDER_FILE).read_text().split()[0]


@pytest.fixture
def env(tmp_path_factory, monkeypatch, tmp_path):
    user = tmp_path_factory.mktemp("user_runs")
    build_story_run(user / "just-launched")  # the newest run: not the default
    monkeypatch.setenv(Q.RUNS_ROOT_ENV, str(user))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "1")
    monkeypatch.chdir(tmp_path)
    return user


def _open(page: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params.update(params)
    if page:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_fresh_session_opens_on_the_showcase_with_start_here(env):
    at = _open()
    assert at.sidebar.selectbox[0].value == SHOWCASE and at.query_params["run"] == SHOWCASE
    md = " ".join(str(m.value) for m in at.markdown)
    assert "Start here" in md and f"**{SHOWCASE}**" in md.replace("\\", "")
    assert at.button(key="front_tour")
    at.button(key="front_tour").click().run()
    assert not at.exception and at.title[0].value == "Teaching tour" and at.query_params["run"] == SHOWCASE


def test_a_pick_is_kept_in_the_url_and_across_pages(env):
    at = _open()
    at.sidebar.selectbox[0].select("just-launched").run()
    assert at.query_params["run"] == "just-launched"
    at.switch_page("app_pages/accuracy.py").run()
    assert at.sidebar.selectbox[0].value == "just-launched" and at.query_params["run"] == "just-launched"
    at = _open("tour", run="just-launched")  # a link names the run
    assert at.sidebar.selectbox[0].value == "just-launched"
