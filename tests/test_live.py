"""Live status: the stage in flight (samples x of N from the store, training step x of K from the engine's progress
bar, time left) and the log filtered to star's own lines."""

from __future__ import annotations

from helpers.tour_stores import eval_metrics, record
from star_core import queries as Q
from star_core.store import RunStore
from star_dashboard import live as L

LOG = (
    "INFO loading the model\n"
    "/x/site-packages/transformers/foo.py:1: FutureWarning: something\n  warnings.warn(\n"
    "iter 1 sample:  10%|#         | 2/20 [00:04<00:36, 0.5q/s]\r"
    "iter 1 train:   5%|5         | 2/40 [00:02<00:38, 1.0step/s, loss=1.2]\r"
    "iter 1 train:  45%|####5     | 18/40 [00:18<00:22, 1.0step/s, loss=0.4]\r"
    "WARNING iteration 1: no kept examples; the adapter is untrained\n"
    'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: boom\n'
    "Some library chatter\n"
)


def test_star_lines_keeps_logging_and_tracebacks_only():
    out = L.star_lines(LOG).splitlines()
    assert out == [
        "INFO loading the model",
        "WARNING iteration 1: no kept examples; the adapter is untrained",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "ValueError: boom",
    ]
    assert len(L.star_lines("INFO a\n" * 100, keep=7).splitlines()) == 7


def test_training_step_from_the_last_bar():
    assert L.bar_progress(LOG) == {"desc": "iter 1 train", "done": 18, "total": 40, "seconds_left": 22.0}
    assert L.bar_progress(LOG, ("sample",))["done"] == 2
    assert L.bar_progress("INFO nothing") is None
    assert L.left_words(22) == "about 22 s left" and L.left_words(None) == "time left not known yet"


def test_stage_progress_counts_samples_and_paces_them(tmp_path):
    run = tmp_path / "r"
    st = RunStore(run)
    cfg = {"task": "arithmetic", "n_train": 10, "n_eval": 4, "samples_per_question": 1}
    st.create_run("r", "arithmetic", "tiny", cfg, 1, "cpu (test)")
    st.begin_iteration(0, None)
    st.add_samples([record(0, "eval", "e-1", True)])
    p = Q.stage_progress(run)
    assert (p["iteration"], p["stage"], p["done"], p["total"], p["unit"]) == (0, "eval", 1, 4, "samples")
    assert p["seconds_left"] is None  # one row gives no pace
    st.finish_iteration(0, eval_metrics([record(0, "eval", "e-1", True)]))
    st.begin_iteration(1, 40)
    st.add_samples([record(1, "sample", q, False) for q in ("q-learn", "q-rz", "q-ok")])
    p = Q.stage_progress(run)
    assert (p["iteration"], p["stage"], p["done"], p["total"]) == (1, "sample", 3, 10)
    st.set_stage(1, "sampled")
    p = Q.stage_progress(run)
    assert (p["stage"], p["done"], p["total"]) == ("rationalize", 0, 3)  # one retry per failed question
    st.set_stage(1, "rationalized")
    p = L.stage_line(run, LOG)  # training: the step from the engine's progress bar
    assert (p["stage"], p["done"], p["total"], p["seconds_left"]) == ("train", 18, 40, 22.0)
    st.close()
