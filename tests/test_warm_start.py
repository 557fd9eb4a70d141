"""The supervised warm start, the direct-answer baseline and the per-question limit, on the tiny model.

The sampler is replaced by a double (``helpers.fake_sampler``) so that the outputs are known;
training is real (the tiny random Llama).
"""

import pytest

pytest.importorskip("torch")

from helpers.fake_sampler import fake_generate, k_generate, use_generate
from helpers.store_sql import opened, rows
from helpers.tiny_runs import tiny_cfg
from star_core import loop
from star_core.config import make_task

WARM = 6


@pytest.fixture
def spy(monkeypatch):
    """Records (iteration, phase, adapter attached) of every phase the runner generates for."""
    calls = []
    orig = loop.Runner.run_phase

    def run_phase(self, iteration, phase, problems):
        calls.append((iteration, phase, self.adapter))
        return orig(self, iteration, phase, problems)

    monkeypatch.setattr(loop.Runner, "run_phase", run_phase)
    return calls


def _start(tiny_model_dir, path, monkeypatch, solve=lambda a, b: (a + b) % 2 == 0, **kw):
    cfg = tiny_cfg(tiny_model_dir, "arithmetic", n_train=8, iterations=1, warm_start_steps=3, **kw)
    use_generate(monkeypatch, fake_generate(make_task(cfg), solve))
    return cfg, loop.start(cfg, path, progress=False)


def test_warm_start_is_its_own_supervised_stage(tiny_model_dir, tmp_path, monkeypatch, spy):
    cfg, run = _start(tiny_model_dir, tmp_path / "run", monkeypatch, warm_start=WARM)
    # iteration 0: the few-shot base model first, then the warm-started one
    assert [c for c in spy if c[0] == 0] == [(0, "eval", None), (0, "warm_eval", loop.WARM_ADAPTER)]
    assert (1, "sample", loop.WARM_ADAPTER) in spy  # iteration 1 samples with the warm-started model
    warm = rows(run, "SELECT * FROM samples WHERE phase='warm_start' ORDER BY id")
    assert len(warm) == WARM
    assert all(
        w["iteration"] == 0
        and w["split"] == "train"
        and w["decision"] == "reference"
        and w["kept"]
        and w["correct"]
        and w["audit_faithful"] == (w["grp"] != "1")  # audit v3: a 1-digit decomposition shows no step
        and "supervised" in w["reason"]
        for w in warm
    )
    digits = {int(w["grp"]) for w in warm}
    assert digits <= {1, 2} and 2 in digits
    asked = {r["question"] for r in rows(run, "SELECT question FROM samples WHERE phase IN ('eval', 'sample')")}
    assert asked and not asked & {w["question"] for w in warm}
    ex = rows(run, "SELECT * FROM train_examples WHERE iteration=0 ORDER BY id")
    assert [e["sample_id"] for e in ex] == [w["id"] for w in warm] and {e["source"] for e in ex} == {"reference"}
    assert all(e["completion"].rstrip().endswith(f"The answer is {w['gold']}.") for e, w in zip(ex, warm))
    (it0,) = rows(run, "SELECT * FROM iterations WHERE iteration=0")
    assert it0["stage"] == "done" and it0["adapter_path"] == loop.WARM_ADAPTER and it0["n_train_examples"] == WARM
    assert it0["train_steps"] == 3 and len(rows(run, "SELECT * FROM train_losses WHERE iteration=0")) == 3
    assert (run / loop.WARM_ADAPTER / "adapter_config.json").is_file()
    # iteration 0's metrics are the base model's; the warm-started model has its own evaluation
    n_eval = len(rows(run, "SELECT * FROM samples WHERE iteration=0 AND phase='eval'"))
    assert n_eval == len(rows(run, "SELECT * FROM samples WHERE iteration=0 AND phase='warm_eval'")) == 4
    (m0,) = rows(run, "SELECT * FROM metrics WHERE iteration=0 AND grp='all'")
    base_right = rows(run, "SELECT sum(correct) AS c FROM samples WHERE iteration=0 AND phase='eval'")[0]["c"]
    assert (m0["n"], m0["n_correct"]) == (n_eval, base_right)
    # the warm examples join iteration 1's training set
    kept1 = rows(run, "SELECT count(*) AS n FROM train_examples WHERE iteration=1")[0]["n"]
    (it1,) = rows(run, "SELECT * FROM iterations WHERE iteration=1")
    assert kept1 > 0 and it1["n_train_examples"] == kept1 + WARM


def test_without_warm_start_nothing_changes(tiny_model_dir, tmp_path, monkeypatch, spy):
    _, run = _start(tiny_model_dir, tmp_path / "run", monkeypatch)
    assert [c for c in spy if c[0] == 0] == [(0, "eval", None)]
    assert (1, "sample", None) in spy
    assert not rows(run, "SELECT * FROM samples WHERE phase IN ('warm_start', 'warm_eval', 'direct_eval')")
    (it0,) = rows(run, "SELECT * FROM iterations WHERE iteration=0")
    assert it0["adapter_path"] is None and it0["train_steps"] is None
    (it1,) = rows(run, "SELECT * FROM iterations WHERE iteration=1")
    assert it1["n_train_examples"] == rows(run, "SELECT count(*) AS n FROM train_examples")[0]["n"]


def test_continuing_adapters_start_from_the_warm_one(tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    loaded = []
    real = loop.Runner.train_adapter

    def train_adapter(self, iteration):
        import star_core.models as models

        orig = models.load_adapter

        def load_adapter(base, path, trainable=False):
            loaded.append((iteration, str(path)))
            return orig(base, path, trainable)

        models.load_adapter = load_adapter
        try:
            return real(self, iteration)
        finally:
            models.load_adapter = orig

    monkeypatch.setattr(loop.Runner, "train_adapter", train_adapter)
    _, run = _start(tiny_model_dir, tmp_path / "run", monkeypatch, warm_start=WARM, restart_from_base=False)
    assert loaded == [(1, str(run / loop.WARM_ADAPTER))]
    w = load_file(run / loop.WARM_ADAPTER / "adapter_model.safetensors")
    a1 = load_file(run / "adapters" / "iter_1" / "adapter_model.safetensors")
    assert any(not torch.equal(w[k], a1[k]) for k in w)


def _snapshot(run):
    with opened(run) as con:
        return [
            con.execute(q).fetchall()
            for q in (
                "SELECT iteration, phase, question_id, k, raw_output, decision, kept FROM samples"
                " ORDER BY iteration, phase, question_id, k",
                "SELECT iteration, question_id, source, prompt, completion FROM train_examples"
                " ORDER BY iteration, question_id",
                "SELECT iteration, step, loss FROM train_losses ORDER BY iteration, step",
                "SELECT iteration, task, split, grp, n, n_correct FROM metrics ORDER BY iteration, grp",
                "SELECT iteration, stage, n_train_examples, adapter_path FROM iterations ORDER BY iteration",
                "SELECT status FROM runs",
            )
        ]


@pytest.mark.parametrize("crash_at", ["warm_eval", "train"])
def test_resume_across_the_warm_start(tiny_model_dir, tmp_path, monkeypatch, crash_at):
    """A crash after the warm start (during its evaluation) resumes without training it again; a crash
    during its training trains it again. Either way the run ends as an uninterrupted one."""

    cfg = tiny_cfg(tiny_model_dir, "arithmetic", n_train=8, iterations=1, warm_start=WARM, warm_start_steps=3)
    use_generate(monkeypatch, fake_generate(make_task(cfg), lambda a, b: a % 2 == 0))
    clean = loop.start(cfg, tmp_path / "clean", progress=False)

    trained = []
    real_train, real_phase = loop.Runner.train_adapter, loop.Runner.run_phase

    def train_adapter(self, iteration):
        trained.append(iteration)
        if crash_at == "train" and len(trained) == 1:
            raise RuntimeError("crash while training the warm start")
        return real_train(self, iteration)

    def run_phase(self, iteration, phase, problems):
        if crash_at == "warm_eval" and phase == "warm_eval" and not getattr(loop, "_crashed", False):
            loop._crashed = True
            raise RuntimeError("crash while evaluating the warm start")
        return real_phase(self, iteration, phase, problems)

    monkeypatch.setattr(loop.Runner, "train_adapter", train_adapter)
    monkeypatch.setattr(loop.Runner, "run_phase", run_phase)
    monkeypatch.setattr(loop, "_crashed", False, raising=False)
    run = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="crash while"):
        loop.start(cfg, run, progress=False)
    stage = rows(run, "SELECT stage FROM iterations WHERE iteration=0")[0]["stage"]
    assert stage == ("trained" if crash_at == "warm_eval" else "pending")
    before = trained[:]
    loop.resume(run, progress=False)
    redone = trained[len(before) :]
    assert redone == ([1] if crash_at == "warm_eval" else [0, 1])
    assert _snapshot(run)[:5] == _snapshot(clean)[:5]
    assert _snapshot(run)[5] == [("finished",)]


def test_warm_start_refuses_what_the_data_cannot_supply(tiny_model_dir, tmp_path):
    from star_core.config import ConfigError

    cfg = tiny_cfg(tiny_model_dir, "arithmetic", warm_start=200, warm_start_digits=(1, 1))
    with pytest.raises(ConfigError, match="warm_start=200"):
        loop.start(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    cfg = tiny_cfg(tiny_model_dir, "gsm8k", n_train=195, warm_start=20)
    with pytest.raises(ConfigError, match="warm_start=20: the training file holds only"):
        loop.start(cfg, tmp_path / "run", progress=False)


def test_gsm8k_warm_start_uses_reference_solutions_of_unused_training_questions(tiny_model_dir):
    cfg = tiny_cfg(tiny_model_dir, "gsm8k", n_train=10, warm_start=5)
    data = loop.load_data(cfg)
    assert len(data.warm) == 5
    assert not {p.id for p in data.warm} & {p.id for p in data.train}
    assert not {p.id for p in data.warm} & {e.problem.id for e in data.exemplars}
    # the next questions of the same seeded order as the STaR questions
    more = loop.load_data(tiny_cfg(tiny_model_dir, "gsm8k", n_train=15))
    assert [p.id for p in more.train][10:] == [p.id for p in data.warm]
    from star_core import warmstart

    recs = warmstart.records(data.task, data.warm, lambda p: data.task.format_question(p))
    assert all(r.correct and r.train_completion.endswith(f"#### {r.gold}") for r in recs)


def test_direct_baseline_evaluates_without_rationales(tiny_model_dir, tmp_path, monkeypatch, spy):
    seen = {}

    cfg = tiny_cfg(tiny_model_dir, "arithmetic", n_train=8, iterations=0, direct_baseline=True)
    use_generate(
        monkeypatch,
        fake_generate(make_task(cfg), lambda a, b: True),
        lambda prompts, kw: seen.setdefault(len(seen), prompts),
    )
    run = loop.start(cfg, tmp_path / "run", progress=False)
    assert [c[:2] for c in spy] == [(0, "eval"), (0, "direct_eval")]
    cot, direct = seen[0][0], seen[1][0]
    assert cot.count("The answer is") == direct.count("The answer is") == 4  # the same four exemplars
    assert "(" in cot.split("\n\n")[0] and "(" not in direct.split("\n\n")[0]  # no decomposition shown
    first = direct.split("\n\n")[0]
    a, b = (int(x) for x in first.split("What is ")[1].split("?")[0].split(" + "))
    assert first.endswith(f"A: {a} + {b} = {a + b}. The answer is {a + b}.")
    d = rows(run, "SELECT * FROM samples WHERE phase='direct_eval'")
    assert len(d) == 4 and all(r["split"] == "eval" and not r["kept"] for r in d)
    # the iteration's metrics stay the few-shot (rationale) evaluation's
    assert rows(run, "SELECT n FROM metrics WHERE iteration=0 AND grp='all'")[0]["n"] == 4


def test_star_eval_direct_flag(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import json

    from star_core.cli import main

    cfg = tiny_cfg(tiny_model_dir, "arithmetic")
    use_generate(monkeypatch, fake_generate(make_task(cfg), lambda a, b: True))
    assert (
        main(
            [
                "eval",
                "--quiet",
                "--direct",
                "--model",
                str(tiny_model_dir),
                "--out",
                str(tmp_path / "ev"),
                "--set",
                "n_eval=4",
                "--set",
                "threads=1",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["direct_baseline"]["arithmetic"]["eval"]["all"]["accuracy"]["n"] == 4
    assert len(rows(tmp_path / "ev", "SELECT * FROM samples WHERE phase='direct_eval'")) == 4
    assert main(["eval", "--quiet", "--direct", "--task", "gsm8k", "--out", str(tmp_path / "g")]) == 2
    assert "direct_baseline" in capsys.readouterr().err


REF = lambda t, p: t.format_target(t.reference_rationale(p), p.gold)  # noqa: E731
OTHER = lambda t, p: f" I add them up and get {p.gold}. The answer is {p.gold}."  # noqa: E731


@pytest.mark.parametrize(
    "limit, kept, rejected",
    [
        (1, [0], {1: "duplicate", 2: "over_limit"}),
        (2, [0, 2], {1: "duplicate"}),
        (0, [0, 1, 2], {}),
    ],
)
def test_max_kept_per_question(tiny_model_dir, tmp_path, monkeypatch, limit, kept, rejected):
    cfg = tiny_cfg(
        tiny_model_dir,
        "arithmetic",
        n_train=4,
        iterations=1,
        samples_per_question=3,
        temperature=0.7,
        max_kept_per_question=limit,
    )
    use_generate(monkeypatch, k_generate(make_task(cfg), [REF, REF, OTHER]))
    run = loop.start(cfg, tmp_path / "run", progress=False)
    samples = rows(run, "SELECT * FROM samples WHERE iteration=1 AND phase='sample' ORDER BY question_id, k")
    assert len(samples) == 3 * 4
    for s in samples:
        assert bool(s["kept"]) == (s["k"] in kept)
        assert s["decision"] == rejected.get(s["k"], "correct")
        if s["decision"] == "over_limit":
            assert f"max_kept_per_question={limit}" in s["reason"]
    ex = rows(run, "SELECT s.k FROM train_examples t JOIN samples s ON s.id = t.sample_id WHERE t.iteration=1")
    assert sorted(e["k"] for e in ex) == sorted(kept * 4)
    assert rows(run, "SELECT n_train_examples FROM iterations WHERE iteration=1")[0]["n_train_examples"] == len(ex)
