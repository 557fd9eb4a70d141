"""The Launch form offers every setting of the run configuration (built from the config dataclass, so a new field
appears without a page edit), and "Reproduce this run" on each recorded demo run fills it so that the run it
starts has the demo's configuration."""

from __future__ import annotations

import dataclasses
import sys
import time

import pytest

from helpers import FAKE_STAR_CLI, ROOT
from helpers import apptest as A
from helpers.apptest import open_page, texts, wait
from star_core import config as C
from star_core import procs
from star_core import queries as Q
from star_dashboard import launch_form as LF

loopback = A.loopback  # an autouse pytest fixture: the dashboard on loopback
DEMOS = ROOT / "sample_data" / "runs"
ORDER = (DEMOS / Q.ORDER_FILE).read_text().split()
NOT_OFFERED = set(LF.HIDDEN)


def test_every_config_field_is_offered():
    offered = set(LF.BASIC) | set(LF.advanced_fields())
    assert offered == {f.name for f in dataclasses.fields(C.StarConfig)} - NOT_OFFERED


def test_values_round_trip_through_set_text():
    cfg = C.StarConfig()
    sets = [f"{f}={LF.to_text(getattr(cfg, f))}" for f in LF.advanced_fields() if getattr(cfg, f) is not None]
    assert C.build(sets=sets).to_dict() == cfg.to_dict()


@pytest.mark.parametrize("name", ORDER)
def test_reproduce_this_run(name, monkeypatch, tmp_path):
    user = tmp_path / "user"
    monkeypatch.setenv(Q.RUNS_ROOT_ENV, str(user))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "1")
    monkeypatch.setenv("STAR_CLI", f"{sys.executable} {FAKE_STAR_CLI}")
    monkeypatch.setenv("STAR_FAKE_SECONDS", "30")
    monkeypatch.chdir(tmp_path)
    at = open_page("runs", run=name)
    at.button(key="reproduce_runs").click().run()
    assert not at.exception and at.title[0].value == "Launch"
    assert at.text_input(key="launch_name").value.startswith(f"{name}-again-")
    at.switch_page("app_pages/launch.py")  # AppTest reruns the page it was told, not the one switched to
    next(b for b in at.button if "Start run" in b.label).click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    run_dir = next(user.iterdir())
    try:
        t0 = time.time()
        while not (run_dir / "config.yaml").is_file() and time.time() - t0 < 30:
            time.sleep(0.1)
        started = C.load_file(run_dir / "config.yaml")  # the fake CLI writes what it was given
        flags = {k: started.pop(k) for k in ("task", "model", "iterations")}
        got = C.build(flags=flags, sets=[f"{k}={v}" for k, v in started.items()]).to_dict()
        want = C.from_saved(DEMOS / name / "config.yaml").to_dict()
        for k in NOT_OFFERED:
            got.pop(k), want.pop(k)
        assert got == want
    finally:
        procs.stop_run(run_dir)
        wait(lambda: procs.launched_alive(run_dir) is None, 10)
        procs.reap()
