"""A task is a plug-in: a toy task (tests/helpers/toy_task.py, one module) registered with one line is accepted by the
config's validation, the CLI's help, the warm start and a short run on the tiny model; no engine file names it."""

from pathlib import Path

import pytest

from star_core import config as C
from star_core import warmstart
from star_core.cli import build_parser
from star_core.tasks import TASKS, get_task

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def letters(monkeypatch):
    """The toy task in the registry for one test: the one line a new task adds to ``TASKS``."""
    monkeypatch.setitem(TASKS, "letters", "helpers.toy_task:LettersTask")
    return "letters"


def test_no_engine_file_names_the_toy_task():
    for folder in ("star_core", "star_dashboard", "star_fixtures"):
        assert not [f for f in (REPO / folder).rglob("*.py") if "LettersTask" in f.read_text()], folder


def test_config_accepts_it_and_checks_it_by_its_attributes(letters):
    cfg = C.build(None, {"task": letters}, ["warm_start=3"])
    assert cfg.task == "letters" and type(C.make_task(cfg)).__name__ == "LettersTask"
    assert "letters" in C.field_docs()["task"]
    with pytest.raises(C.ConfigError, match="field 'direct_baseline'.*arithmetic with the decomposition"):
        C.build(None, {"task": letters}, ["direct_baseline=true"])
    with pytest.raises(C.ConfigError, match="field 'curriculum'.*needs the arithmetic task"):
        C.build(None, {"task": letters}, ["curriculum=digits"])
    with pytest.raises(C.ConfigError, match=r"supported: arithmetic, gsm8k, letters\)"):
        C.build(None, {"task": "commonsenseqa"}, ["warm_start=3"])


def test_without_its_line_it_is_unknown():
    with pytest.raises(C.ConfigError, match="unknown task; choose one of arithmetic, commonsenseqa, gsm8k$"):
        C.build(None, {"task": "letters"})


def test_cli_help_lists_it(letters):
    subs = build_parser()._subparsers._group_actions[0].choices
    for cmd in ("run", "eval"):
        assert "arithmetic | commonsenseqa | gsm8k | letters" in " ".join(subs[cmd].format_help().split())


def test_warm_start_references(letters):
    cfg = C.build(None, {"task": letters}, ["warm_start=4", "n_train=6", "n_eval=4"])
    task = C.make_task(cfg)
    train, evals = task.load("train", limit=6), task.load("eval", limit=4)
    warm = warmstart.problems(cfg, task, train, evals)
    assert len(warm) == 4 and not {p.question for p in warm} & {p.question for p in train + evals}
    recs = warmstart.records(task, warm, task.format_question)
    assert all(r.kept and r.correct and r.audit["verdict"] == "faithful" for r in recs)
    with pytest.raises(C.ConfigError, match="warm_start=30: only"):
        warmstart.problems(C.build(None, {"task": letters}, ["warm_start=30"]), task, train, evals)
    assert get_task("letters").name == "letters"


def test_a_short_run_on_the_tiny_model(letters, tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    from helpers.store_sql import rows
    from helpers.tiny_runs import tiny_cfg
    from star_core import loop

    cfg = tiny_cfg(tiny_model_dir, letters, iterations=1, warm_start=2, warm_start_steps=2)
    run = loop.start(cfg, tmp_path / "run", progress=False)
    assert rows(run, "SELECT status, task FROM runs") == [{"status": "finished", "task": "letters"}]
    counts = rows(run, "SELECT iteration, phase, COUNT(*) n FROM samples GROUP BY 1, 2")
    phases = {(r["iteration"], r["phase"]): r["n"] for r in counts}
    assert phases[(0, "warm_start")] == 2 and phases[(0, "eval")] == phases[(1, "eval")] == 4
    assert phases[(1, "sample")] == 6
    assert {r["task"] for r in rows(run, "SELECT DISTINCT task FROM samples")} == {"letters"}


def test_register_adds_a_task_from_outside_the_tree():
    """``register`` (usable as a decorator) is the line for a task defined in another package."""
    from helpers.toy_task import LettersTask
    from star_core.tasks import register, task_names

    try:
        assert register(LettersTask) is LettersTask
        assert "letters" in task_names() and type(get_task("letters")) is LettersTask
        assert C.build(None, {"task": "letters"}).task == "letters"
    finally:
        TASKS.pop("letters", None)
    nameless = type("Nameless", (LettersTask,), {"name": ""})
    with pytest.raises(ValueError, match="Nameless has no name"):
        register(nameless)
    assert "letters" not in TASKS
