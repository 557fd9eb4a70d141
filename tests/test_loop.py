"""End-to-end runs of the STaR loop on a tiny random model, for all three tasks."""

import json
import sqlite3

import pytest

pytest.importorskip("torch")

from helpers.fake_sampler import fake_generate, use_generate
from helpers.store_sql import rows
from helpers.tiny_runs import tiny_cfg
from star_core import config as C
from star_core import loop
from star_core.config import make_task
from star_core.store import DB_NAME


@pytest.mark.parametrize("task", ["arithmetic", "commonsenseqa", "gsm8k"])
def test_tiny_run_all_tasks(tiny_model_dir, tmp_path, task):
    cfg = tiny_cfg(tiny_model_dir, task)
    run = loop.start(cfg, tmp_path / "run", progress=False)
    (status,) = rows(run, "SELECT status FROM runs")
    assert status["status"] == "finished"
    its = rows(run, "SELECT iteration, stage, n_train_examples, adapter_path FROM iterations ORDER BY iteration")
    assert [i["iteration"] for i in its] == [0, 1, 2] and all(i["stage"] == "done" for i in its)
    for i in its[1:]:
        assert (run / i["adapter_path"] / "adapter_config.json").is_file()
    per = rows(run, "SELECT iteration, phase, COUNT(*) n FROM samples GROUP BY iteration, phase")
    counts = {(r["iteration"], r["phase"]): r["n"] for r in per}
    assert counts[(0, "eval")] == counts[(1, "eval")] == counts[(2, "eval")] == 4
    assert counts[(1, "sample")] == counts[(2, "sample")] == 6 - 0  # exemplars never among train questions
    for s in rows(run, "SELECT * FROM samples"):
        assert s["decision"] and s["reason"]
        if s["kept"]:
            assert s["answer"] == s["gold"]
        if s["phase"] == "rationalize":
            assert s["hint"]
    m = rows(run, "SELECT * FROM metrics WHERE grp='all'")
    assert sorted(r["iteration"] for r in m) == [0, 1, 2]
    ex = rows(run, "SELECT * FROM exemplars")
    assert ex and all(e["rationale"] for e in ex)
    saved = C.from_saved(run / "config.yaml")
    assert saved == cfg


def test_loop_keeps_rationalizes_and_trains(tiny_model_dir, tmp_path, monkeypatch):
    cfg = tiny_cfg(tiny_model_dir, "arithmetic", n_train=8, iterations=1)
    task = make_task(cfg)
    use_generate(monkeypatch, fake_generate(task, lambda a, b: (a + b) % 2 == 0))
    run = loop.start(cfg, tmp_path / "run", progress=False)
    samples = rows(run, "SELECT * FROM samples WHERE iteration=1 AND phase='sample'")
    solved = [s for s in samples if s["decision"] == "correct"]
    wrong = [s for s in samples if s["decision"] != "correct"]
    assert solved and wrong
    rat = rows(run, "SELECT * FROM samples WHERE iteration=1 AND phase='rationalize'")
    assert sorted(r["question_id"] for r in rat) == sorted(s["question_id"] for s in wrong)
    assert all(r["decision"] == "rationalized" and r["kept"] for r in rat)
    ex = rows(run, "SELECT * FROM train_examples WHERE iteration=1")
    assert len(ex) == len(samples)
    for e in ex:  # stored without the hint
        assert "hint" not in e["prompt"].lower() and e["prompt"].startswith("Q:")
    assert {e["source"] for e in ex} == {"correct", "rationalized"}
    losses = rows(run, "SELECT * FROM train_losses WHERE iteration=1")
    assert len(losses) == cfg.steps_for(1)
    (it,) = rows(run, "SELECT * FROM iterations WHERE iteration=1")
    assert it["n_train_examples"] == len(ex)


def test_no_rationalization_switch(tiny_model_dir, tmp_path, monkeypatch):
    cfg = tiny_cfg(tiny_model_dir, "arithmetic", n_train=8, iterations=1, rationalize=False)
    task = make_task(cfg)
    use_generate(monkeypatch, fake_generate(task, lambda a, b: (a + b) % 2 == 0))
    run = loop.start(cfg, tmp_path / "run", progress=False)
    assert rows(run, "SELECT COUNT(*) n FROM samples WHERE phase='rationalize'")[0]["n"] == 0
    ex = rows(run, "SELECT source FROM train_examples")
    assert ex and {e["source"] for e in ex} == {"correct"}


def test_start_refuses_existing_run_and_bad_input_writes_nothing(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "answer": "no hashes"}\n')
    cfg = tiny_cfg(tiny_model_dir, "gsm8k", train_file=str(bad))
    from star_core.tasks import DataError

    with pytest.raises(DataError) as e:
        loop.start(cfg, tmp_path / "run", progress=False)
    assert "bad.jsonl" in str(e.value) and "line 1" in str(e.value)
    assert not (tmp_path / "run").exists()

    cfg = tiny_cfg(tiny_model_dir, "arithmetic", iterations=0)
    run = loop.start(cfg, tmp_path / "run2", progress=False)
    before = rows(run, "SELECT COUNT(*) n FROM samples"), rows(run, "SELECT status FROM runs")
    with pytest.raises(loop.RunError):
        loop.start(cfg, run, progress=False)
    assert (rows(run, "SELECT COUNT(*) n FROM samples"), rows(run, "SELECT status FROM runs")) == before


def test_star_eval_and_export(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from datasets import load_dataset

    from star_core.cli import main

    cfg = tiny_cfg(tiny_model_dir, "arithmetic", n_train=8, iterations=1)
    task = make_task(cfg)
    use_generate(monkeypatch, fake_generate(task, lambda a, b: (a + b) % 2 == 0))
    run = loop.start(cfg, tmp_path / "run", progress=False)
    monkeypatch.undo()

    capsys.readouterr()
    assert main(["summary", str(run), "--json"]) == 0
    summ = json.loads(capsys.readouterr().out)
    assert summ["status"] == "finished" and [i["iteration"] for i in summ["iterations"]] == [0, 1]
    it1 = summ["iterations"][1]
    kept = rows(run, "SELECT COUNT(*) n FROM samples WHERE iteration=1 AND kept=1")[0]["n"]
    assert it1["kept"] == kept and it1["decisions"]["sample"]["correct"] + it1["rationalized"] == kept
    assert set(it1["accuracy"]["arithmetic"]["eval"]) >= {"all"}

    assert main(["export", str(run)]) == 0
    ds = load_dataset("json", data_files=str(run / "export" / "iter_1.jsonl"), split="train")
    assert len(ds) == rows(run, "SELECT COUNT(*) n FROM train_examples")[0]["n"]
    assert set(ds.column_names) >= {"prompt", "completion", "source", "question_id"}

    capsys.readouterr()
    code = main(
        [
            "eval",
            "--quiet",
            "--model",
            str(tiny_model_dir),
            "--adapter",
            str(run / "adapters" / "iter_1"),
            "--out",
            str(tmp_path / "ev"),
            "--set",
            "n_eval=4",
            "--set",
            "max_new_tokens=6",
            "--set",
            "threads=1",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert "arithmetic" in out["accuracy"]
    saved = C.from_saved(tmp_path / "ev" / "config.yaml")
    assert saved.eval_adapter and saved.iterations == 0


def test_continue_from_last_adapter_option(tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    def run(name, restart):
        cfg = tiny_cfg(
            tiny_model_dir,
            "arithmetic",
            n_train=8,
            iterations=2,
            restart_from_base=restart,
            train_steps=3,
            steps_growth=1.0,
        )
        task = make_task(cfg)
        use_generate(monkeypatch, fake_generate(task, lambda a, b: True))
        out = loop.start(cfg, tmp_path / name, progress=False)
        return {i: load_file(out / "adapters" / f"iter_{i}" / "adapter_model.safetensors") for i in (1, 2)}

    fresh, cont = run("fresh", True), run("cont", False)
    # iteration 1 is the same either way; iteration 2 starts from adapter 1 only when continuing
    assert all(torch.equal(fresh[1][k], cont[1][k]) for k in fresh[1])
    assert any(not torch.equal(fresh[2][k], cont[2][k]) for k in fresh[2])


def test_resume_refuses_finished_and_live_runs(tiny_model_dir, tmp_path):
    import os

    cfg = tiny_cfg(tiny_model_dir, "arithmetic", iterations=0)
    run = loop.start(cfg, tmp_path / "run", progress=False)
    with pytest.raises(loop.RunError, match="already finished"):
        loop.resume(run, progress=False)
    con = sqlite3.connect(run / DB_NAME)
    with con:  # pretend this very process is still running it
        con.execute("UPDATE runs SET status='running', pid=?, heartbeat_at=strftime('%s','now')", (os.getpid(),))
    con.close()
    with pytest.raises(loop.RunError, match="still running"):
        loop.resume(run, progress=False)
