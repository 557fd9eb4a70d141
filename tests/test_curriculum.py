"""The digit curriculum (curriculum=digits) and the training set that keeps what it learned (accumulate_kept,
max_train_per_group, train_epochs): the choices on synthetic stores, then tiny runs (carry format, real
training on the tiny model, the sampler replaced by a double whose outputs are known)."""

import json
import math

import pytest

from helpers.demo_checks import check_carry_run, check_consistent_store
from helpers.fake_sampler import fake_generate, use_generate
from helpers.store_sql import rows
from helpers.tiny_runs import tiny_cfg
from star_core import config as C
from star_core import curriculum
from star_core.config import make_task
from star_core.store import RunStore, SampleRecord
from star_core.tasks import get_task

TASK = get_task("arithmetic", format="carry", train_digits=(1, 5), eval_digits=(1, 5))


def _store(tmp_path, evals: dict[tuple[int, str], dict[int, tuple[int, int, int]]]) -> RunStore:
    """A store with evaluation rows: evals[(iteration, phase)][digits] = (right and faithful, right only,
    wrong) questions; iteration rows as done."""
    s = RunStore(tmp_path)
    s.create_run("t", "arithmetic", "m", {}, 3, device="cpu")
    recs = []
    for (it, phase), by in evals.items():
        s.begin_iteration(it, None)
        for d, (good, right, wrong) in by.items():
            for j, kind in enumerate(["good"] * good + ["right"] * right + ["wrong"] * wrong):
                faithful = kind == "good"
                recs.append(
                    SampleRecord(
                        iteration=it,
                        task="arithmetic",
                        split="eval",
                        phase=phase,
                        question_id=f"q{d}-{j}",
                        question="1 + 1",
                        prompt="Q: What is 1 + 1?\nA:",
                        raw_output="x",
                        gold="2",
                        decision="correct" if kind != "wrong" else "wrong",
                        reason="r",
                        correct=kind != "wrong",
                        grp=str(d),
                        audit={"faithful": faithful, "checked": 1, "errors": []},
                    )
                )
    s.add_samples(recs)
    return s


def _cfg(**kw):
    cfg = C.StarConfig(curriculum="digits", train_digits=(1, 5), eval_digits=(1, 5), arith_format="carry")
    C.apply(cfg, kw, "test")
    return cfg.validate()


def test_frontier_is_the_largest_solved_count_plus_one():
    assert curriculum.frontier({1: (9, 10), 2: (5, 10), 3: (4, 10)}, 0.5, (1, 5)) == 3
    assert curriculum.frontier({1: (9, 10), 2: (1, 10), 3: (6, 10)}, 0.5, (1, 5)) == 4  # the largest, not the first
    assert curriculum.frontier({1: (4, 10)}, 0.5, (1, 5)) == 1  # nothing solved: the lowest count
    assert curriculum.frontier({d: (10, 10) for d in range(1, 6)}, 0.5, (1, 5)) == 5  # within train_digits
    assert curriculum.frontier({1: (10, 10), 2: (10, 10)}, 0.5, (3, 5)) == 3
    assert curriculum.frontier({1: (9, 10), 2: (9, 10)}, 0.95, (1, 5)) == 1  # the rate decides
    assert curriculum.frontier({1: (0, 0)}, 0.5, (1, 5)) == 1  # no evaluation of a count: not solved


def test_choice_of_digits_on_a_synthetic_store(tmp_path):
    """Iteration 1 reads the warm-started model's evaluation, iteration 2 the evaluation of iteration 1;
    only right answers with a faithful rationale count; the record is stored and read back."""
    store = _store(
        tmp_path,
        {
            (0, "eval"): {1: (0, 10, 0), 2: (0, 0, 10)},  # the few-shot model: right, never faithful
            (0, "warm_eval"): {1: (8, 2, 0), 2: (5, 3, 2), 3: (1, 5, 4), 4: (0, 0, 10), 5: (0, 0, 10)},
            (1, "eval"): {1: (9, 1, 0), 2: (8, 0, 2), 3: (6, 2, 2), 4: (4, 0, 6), 5: (0, 0, 10)},
        },
    )
    cfg = _cfg(curriculum_keep=0.5, n_train=50)
    train = TASK.load("train", limit=50, seed=0)
    con = store.con
    rec1 = curriculum.plan(con, store.run_id, 1, cfg, train)
    assert rec1["frontier"] == 3 and rec1["measured_on"] == {"iteration": 0, "phase": "warm_eval"}
    assert rec1["rates"] == {"1": [8, 10], "2": [5, 10], "3": [1, 10], "4": [0, 10], "5": [0, 10]}
    chosen = curriculum.questions(rec1, train, cfg.seed, 1)
    by = {d: sum(p.group == str(d) for p in train) for d in range(1, 6)}
    got = {d: sum(p.group == str(d) for p in chosen) for d in range(1, 6)}
    assert got == {1: math.ceil(by[1] / 2), 2: math.ceil(by[2] / 2), 3: by[3], 4: 0, 5: 0}
    assert rec1["questions"] == {str(d): n for d, n in got.items() if n}
    assert chosen == curriculum.questions(rec1, train, cfg.seed, 1)  # seeded: the same on a resume
    store.save_frontier(1, rec1)
    assert curriculum.load(con) == {1: rec1}
    rec2 = curriculum.plan(con, store.run_id, 2, cfg, train)
    assert rec2["frontier"] == 4 and rec2["measured_on"] == {"iteration": 1, "phase": "eval"}
    only = _cfg(curriculum_keep=0.0, n_train=50)
    assert {p.group for p in curriculum.questions(curriculum.plan(con, store.run_id, 2, only, train), train, 0, 2)} == {
        "4"
    }
    # a stored record wins over a new computation (a resumed run keeps its choice)
    assert curriculum.plan(con, store.run_id, 1, _cfg(curriculum_rate=0.99), train) == rec1


def test_curriculum_settings_are_validated():
    assert C.StarConfig().curriculum == "off" and C.StarConfig().accumulate_kept is False
    for bad in ({"curriculum": "words"}, {"curriculum_rate": 0.0}, {"curriculum_keep": 1.5}):
        with pytest.raises(C.ConfigError, match=next(iter(bad))):
            _cfg(**bad)
    with pytest.raises(C.ConfigError, match="curriculum"):
        C.StarConfig(task="gsm8k", curriculum="digits").validate()
    for bad in ({"max_train_per_group": -1}, {"train_epochs": -0.5}):
        with pytest.raises(C.ConfigError, match=next(iter(bad))):
            C.apply(C.StarConfig(), bad, "test").validate()
    docs = C.field_docs()
    for name in ("curriculum", "curriculum_rate", "curriculum_keep", "accumulate_kept", "max_train_per_group"):
        assert docs.get(name), name
    assert docs.get("train_epochs")


def _rows(n_per: dict[str, int], it: int, dup: int = 0) -> list[dict]:
    out = [
        {"prompt": f"Q{g}-{i}", "completion": f"c{g}-{i}-{it}", "grp": g, "iteration": it}
        for g, n in n_per.items()
        for i in range(n)
    ]
    return out + [dict(out[0]) for _ in range(dup)]


def test_the_training_set_grows_deduplicated_and_capped():
    rows = _rows({"1": 3, "2": 2}, 0) + _rows({"2": 2, "3": 4}, 1, dup=2) + _rows({"3": 6}, 2)
    grown = curriculum.grow(rows, 0, seed=1)
    assert len(grown) == len(rows) - 2
    assert [(r["prompt"], r["completion"]) for r in grown] == list(
        dict.fromkeys((r["prompt"], r["completion"]) for r in rows)
    )
    capped = curriculum.grow(rows, 4, seed=1)
    per = {g: sum(r["grp"] == g for r in capped) for g in "123"}
    assert per == {"1": 3, "2": 4, "3": 4}
    assert capped == curriculum.grow(rows, 4, seed=1) and capped != curriculum.grow(rows, 4, seed=2)
    assert [r for r in grown if r in capped] == capped  # the order is kept


def test_the_step_budget_grows_with_the_training_set():
    assert curriculum.steps(40, 100, 0.0, 8) == 40  # off
    assert curriculum.steps(40, 100, 1.0, 8) == 40  # ceil(100 / 8) = 13 < 40
    assert curriculum.steps(40, 1000, 1.0, 8) == 125
    assert curriculum.steps(40, 1001, 2.0, 8) == 251
    assert curriculum.steps(40, 0, 3.0, 8) == 40


# ---- tiny runs ---------------------------------------------------------------------------------------
pytest.importorskip("torch")


def _temps(monkeypatch, task, solve):
    """The sampler double ``fake_generate``, recording (temperature, prompts) of every call."""
    calls = []
    use_generate(
        monkeypatch, fake_generate(task, solve), lambda prompts, kw: calls.append((kw.get("temperature"), len(prompts)))
    )
    return calls


def test_carry_curriculum_run_end_to_end(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """A tiny run in the carry format with the curriculum, a warm start on 1-2 digits, several samples at the
    frontier and accumulation: the frontier is stored and shown; only frontier questions get k samples at
    temperature and the hint; every kept example passes the carry audit."""
    from star_core import loop
    from star_core.cli import main
    from star_core.queries import summary

    cfg = tiny_cfg(
        tiny_model_dir,
        "arithmetic",
        arith_format="carry",
        train_digits=[1, 3],
        eval_digits=[1, 3],
        n_train=18,
        n_eval=9,
        iterations=2,
        warm_start=4,
        warm_start_steps=2,
        curriculum="digits",
        curriculum_keep=0.5,
        samples_per_question=2,
        temperature=0.7,
        max_kept_per_question=1,
        reject_unfaithful=True,
        accumulate_kept=True,
        restart_from_base=False,
        max_new_tokens=200,
    )
    task = make_task(cfg)
    calls = _temps(monkeypatch, task, lambda a, b: (a < 10 and b < 10) or (a + b) % 7 == 0)
    run = loop.start(cfg, tmp_path / "run", progress=False)
    s = summary(run)
    recs = {it["iteration"]: it["curriculum"] for it in s["iterations"]}
    assert recs[0] is None and recs[1]["frontier"] == 2 and recs[1]["measured_on"]["phase"] == "warm_eval"
    assert recs[1]["rates"]["1"] == [3, 3]  # every 1-digit sum solved with a faithful trace
    for it in (1, 2):
        front = str(recs[it]["frontier"])
        samples = rows(run, "SELECT * FROM samples WHERE iteration=? AND phase='sample'", it)
        ks = {}
        for r in samples:
            ks.setdefault(r["question_id"], set()).add(r["k"])
            assert int(r["grp"]) <= int(front)
        assert all(ks[q] == ({0, 1} if q.split("-")[1] == f"{front}d" else {0}) for q in ks), ks
        rat = rows(run, "SELECT grp FROM samples WHERE iteration=? AND phase='rationalize'", it)
        assert {r["grp"] for r in rat} <= {front}
        evals = rows(run, "SELECT DISTINCT grp FROM samples WHERE iteration=? AND phase='eval'", it)
        assert {r["grp"] for r in evals} == {"1", "2", "3"}  # evaluations cover every digit count
    assert any(t == 0.7 for t, _ in calls)  # at the frontier: at temperature
    assert any(t == 0.0 for t, n in calls)  # below the frontier: greedy
    for r in rows(run, "SELECT raw_output, audit_json FROM samples WHERE kept=1"):
        a = json.loads(r["audit_json"])
        assert a["verdict"] == "faithful" and a["version"] == 3 and a["first_bad_line"] is None, r
    # accumulation: iteration 2 trains on every distinct example kept so far and the warm start's
    n2 = rows(run, "SELECT n_train_examples FROM iterations WHERE iteration=2")[0]["n_train_examples"]
    distinct = rows(run, "SELECT COUNT(DISTINCT prompt || '|' || completion) AS n FROM train_examples")[0]["n"]
    assert n2 == distinct and n2 > rows(run, "SELECT COUNT(*) AS n FROM train_examples WHERE iteration=2")[0]["n"]
    assert main(["summary", str(run)]) == 0
    assert f"curriculum: frontier {recs[1]['frontier']} digits" in capsys.readouterr().out
    # the demo-store checks the carry showcase will get hold on this run
    check_consistent_store(run)
    check_carry_run(run)


def test_accumulation_continues_the_adapter_and_grows_the_steps(tiny_model_dir, tmp_path, monkeypatch):
    """accumulate_kept with restart_from_base=false: each iteration loads the adapter before it (trainable),
    trains on every kept example so far (capped per digit count) for max(steps_for(i), epochs) steps."""
    from star_core import loop, models

    cfg = tiny_cfg(
        tiny_model_dir,
        "arithmetic",
        n_train=12,
        iterations=2,
        train_steps=1,
        steps_growth=1.0,
        train_epochs=1.0,
        train_batch_size=2,
        accumulate_kept=True,
        max_train_per_group=5,
        restart_from_base=False,
        rationalize=False,
    )
    _temps(monkeypatch, make_task(cfg), lambda a, b: True)
    loaded = []
    real = models.load_adapter

    def load_adapter(model, path, trainable=False):
        loaded.append((path.name, trainable))
        return real(model, path, trainable=trainable)

    monkeypatch.setattr(models, "load_adapter", load_adapter)
    run = loop.start(cfg, tmp_path / "run", progress=False)
    assert ("iter_1", True) in loaded  # iteration 2 continues from adapter 1
    its = {r["iteration"]: r for r in rows(run, "SELECT * FROM iterations")}
    ex = rows(run, "SELECT t.*, s.grp FROM train_examples t JOIN samples s ON s.id = t.sample_id")
    per1 = {g: sum(e["grp"] == g and e["iteration"] == 1 for e in ex) for g in "123"}
    assert its[1]["n_train_examples"] == sum(min(5, n) for n in per1.values())
    # iteration 2: the same questions solved again with the same text: no new distinct example
    assert its[2]["n_train_examples"] == its[1]["n_train_examples"]
    for it in (1, 2):
        assert its[it]["train_steps"] == max(1, math.ceil(its[it]["n_train_examples"] / 2)) > 1
        assert len(rows(run, "SELECT * FROM train_losses WHERE iteration=?", it)) == its[it]["train_steps"]


def test_trained_models_can_be_prompted_as_they_were_trained(tiny_model_dir, tmp_path, monkeypatch):
    """prompt_exemplars=false: the few-shot model's evaluation keeps the exemplars; the warm-started model and
    iteration 1 (sampling, rationalization, evaluation) get the question alone, the training examples' shape."""
    from star_core import loop
    from star_core.store import RunStore

    cfg = tiny_cfg(
        tiny_model_dir,
        "arithmetic",
        arith_format="carry",
        iterations=1,
        warm_start=3,
        warm_start_steps=1,
        prompt_exemplars=False,
        max_new_tokens=200,
    )
    _temps(monkeypatch, make_task(cfg), lambda a, b: a < 10)
    run = loop.start(cfg, tmp_path / "run", progress=False)
    store = RunStore(run)
    few = store.samples(0, "arithmetic", "eval")
    assert few and all(r["prompt"].count("Q: What is") == 1 + len(loop.load_data(cfg).exemplars) for r in few)
    for it, phase in ((0, "warm_eval"), (1, "sample"), (1, "rationalize"), (1, "eval")):
        got = store.samples(it, "arithmetic", phase)
        assert got and all(r["prompt"].startswith("Q: What is") and r["prompt"].count("Q:") == 1 for r in got), phase
    store.close()
    with pytest.raises(C.ConfigError, match="prompt_exemplars"):
        C.apply(C.StarConfig(), {"prompt_exemplars": False, "keep_prefix_in_training": True}, "t").validate()
