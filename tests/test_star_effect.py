"""Did STaR change each digit count? (star_core.queries.effect): one paired test per group, checked against a
pairing done here in plain Python from the store's rows, and shown by `star summary` and the Accuracy page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.store_sql import query
from star_core import queries as Q
from star_core.stats import mcnemar
from star_fixtures import synthetic as F

ROOT = Path(__file__).resolve().parent.parent
WARM = ROOT / "sample_data" / "runs" / "arithmetic-warm-start"


def _rows(run: Path, iteration: int, phase: str) -> dict[str, tuple[str, bool, bool]]:
    rows = query(
        run,
        "SELECT question_id, grp, correct, audit_faithful FROM samples WHERE iteration=? AND phase=?",
        iteration,
        phase,
        readonly=True,
    )
    return {q: (str(g), c == 1, c == 1 and f == 1) for q, g, c, f in rows}


def _expected(run: Path, start: tuple[int, str], end: int) -> dict[tuple[str, str], tuple[int, int, int, int, int]]:
    """(grp, measure) -> (pairs, before, after, gained, lost), paired here question by question."""
    a, b = _rows(run, *start), _rows(run, end, "eval")
    out = {}
    for measure, idx in (("accuracy", 1), ("faithful_accuracy", 2)):
        for g in sorted({v[0] for v in a.values()}):
            qs = [q for q in a if a[q][0] == g and q in b]
            before = sum(a[q][idx] for q in qs)
            after = sum(b[q][idx] for q in qs)
            gained = sum(1 for q in qs if not a[q][idx] and b[q][idx])
            lost = sum(1 for q in qs if a[q][idx] and not b[q][idx])
            out[(g, measure)] = (len(qs), before, after, gained, lost)
    return out


@pytest.mark.skipif(not WARM.is_dir(), reason="the recorded demo runs are not in this checkout")
def test_effect_pairs_the_warm_started_model_with_the_last_iteration():
    effects = Q.star_effect(WARM)
    assert effects and {e.start for e in effects} == {"warm-started"}
    last = max(e.end_iteration for e in effects)
    want = _expected(WARM, (0, "warm_eval"), last)
    assert {(e.grp, e.measure) for e in effects} == set(want)
    for e in effects:
        assert (e.pairs, e.before, e.after, e.gained, e.lost) == want[(e.grp, e.measure)]
        assert e.p_value == pytest.approx(mcnemar(e.lost, e.gained))
        assert e.significant == (e.p_value < 0.05)
        s = e.sentence()
        assert f"+{e.gained} −{e.lost}" in s and f"{e.before} → {e.after} of {e.pairs}" in s
        assert ("did not change it significantly" in s) == (not e.significant)
        if e.significant:
            assert ("raised" in s) == (e.gained > e.lost)


def test_effect_without_a_warm_start_starts_from_the_few_shot_model(tmp_path):
    run = tmp_path / "run"
    F.build_run(run, tasks=("arithmetic",), iterations=2, n_train=12, n_eval=8)
    effects = Q.star_effect(run)
    assert effects and {e.start for e in effects} == {"few-shot"}
    want = _expected(run, (0, "eval"), 2)
    for e in effects:
        assert (e.pairs, e.before, e.after, e.gained, e.lost) == want[(e.grp, e.measure)]


def test_effect_is_empty_before_iteration_one_is_evaluated(tmp_path):
    run = tmp_path / "run"
    F.build_run(run, tasks=("arithmetic",), iterations=0, n_train=6, n_eval=6)
    assert Q.star_effect(run) == []


def test_summary_prints_one_sentence_per_group(tmp_path):
    run = tmp_path / "run"
    F.build_run(run, tasks=("arithmetic",), iterations=2, n_train=12, n_eval=8)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run(
        [sys.executable, "-m", "star_core.cli", "summary", str(run)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    for e in Q.star_effect(run):
        assert e.sentence() in r.stdout


def test_accuracy_page_and_tour_say_it_per_digit_count(tmp_path, monkeypatch):
    testing = pytest.importorskip("streamlit.testing.v1")
    from streamlit import config

    run = tmp_path / "runs" / "gamma"
    F.build_run(run, tasks=("arithmetic",), iterations=2, n_train=12, n_eval=8)
    monkeypatch.setenv("STAR_RUNS_ROOT", str(run.parent))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    try:
        sentences = [e.sentence() for e in Q.star_effect(run) if e.measure == "faithful_accuracy"]
        assert sentences
        for page in ("accuracy", "tour"):
            at = testing.AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
            at.query_params["run"] = "gamma"
            at.switch_page(f"app_pages/{page}.py")
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            shown = " ".join(str(m.value) for m in at.markdown).replace("\\", "")
            for s in sentences:
                assert s.replace("\\", "") in shown, (page, s)
    finally:
        config.set_option("server.address", old)


@pytest.mark.skipif(not WARM.is_dir(), reason="the recorded demo runs are not in this checkout")
def test_the_tour_says_which_digit_counts_the_warm_start_covered():
    from star_core.config import from_saved
    from star_core.queries import tour as T

    lo, hi = from_saved(WARM / "config.yaml").warm_start_digits
    assert T.overview(WARM)["warm_start_digits"] == (f"{lo}" if lo == hi else f"{lo}-{hi}")
