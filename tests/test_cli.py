"""The `star` command line: bad input gives a clear error (exit 2) and writes no run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from star_core.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "--task", "chess"], "field 'task' = 'chess'"),
        (["run", "--model", "./no/such/model"], "--model ./no/such/model: path does not exist"),
        (["run", "--model", "missing.gguf"], "GGUF file does not exist"),
        (["run", "--model", "bundled:gpt5"], "unknown bundled model"),
        (["run", "--set", "learing_rate=1"], "unknown field 'learing_rate'"),
        (["run", "--set", "n_train=0"], "field 'n_train' = 0"),
        (["run", "--config", "nope.yaml"], "nope.yaml: config file not found"),
    ],
)
def test_bad_run_arguments(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
    assert not (tmp_path / "run").exists()


def test_bad_data_file_names_file_line_field(tmp_path, capsys):
    f = tmp_path / "cqa.jsonl"
    good = {
        "id": "a",
        "answerKey": "A",
        "question": {"stem": "s", "choices": [{"label": L, "text": L.lower()} for L in "ABCDE"]},
    }
    bad = json.loads(json.dumps(good))
    bad["question"]["choices"] = bad["question"]["choices"][:4]
    f.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    code = main(["run", "--task", "commonsenseqa", "--train-file", str(f), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "cqa.jsonl" in err and "line 2" in err and "choices" in err
    assert not (tmp_path / "r").exists()


def test_resume_rejects_settings_and_non_runs(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path), "--set", "iterations=3"]) == 2
    assert "--resume takes no other settings" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_config_lists_every_field(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "learning_rate = 0.0003" in out and "rationalize = True" in out


def test_console_script_help_runs_without_torch_import():
    code = (
        "import sys; from star_core import cli, queries, store, tasks, config; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_summary_gives_every_accuracy_its_n_interval_and_change(capsys):
    run = REPO / "sample_data" / "runs" / "arithmetic-paper-rule"
    assert main(["summary", str(run)]) == 0
    out = capsys.readouterr().out
    assert "arithmetic eval 2: 2.0 % [0.6–7.0] (2/100)" in out  # iteration 0
    assert "arithmetic eval all: 19.0 % [15.5–23.1] (76/400)" in out
    assert "vs iter 0: +14 −8 questions, p = 0.29 (not significant at 0.05)" in out
    assert "(81/400)" in out and "vs iter 1: +8 −3 questions, p = 0.23 (not significant at 0.05)" in out
    assert main(["summary", str(run), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    a = s["iterations"][2]["accuracy"]["arithmetic"]["eval"]["2"]
    assert (a["n"], a["n_correct"]) == (100, 3) and a["ci95"] == pytest.approx([0.0103, 0.0845], abs=1e-4)
    c = s["iterations"][2]["change"]["arithmetic"]["eval"]["all"]
    assert (c["since"], c["lost"], c["gained"], c["significant"]) == (1, 3, 8, False)


def test_summary_text_labels_the_warm_start_and_gives_three_measures(tmp_path, capsys):
    from helpers import dash_fixtures as F
    from star_core import queries as Q
    from star_core.stats import describe

    run = F.build_run(tmp_path / "warm", iterations=1, n_train=6, n_eval=8, warm_start=4, direct=True, payload=False)
    assert main(["summary", str(run)]) == 0
    out = capsys.readouterr().out
    s = Q.summary(run)
    w = s["warm_start"]["measures"]["arithmetic"]["eval"]["all"]
    assert f"warm start ({Q.WARM_NOTE}): 4 examples, 30 steps" in out
    f = w["faithful_accuracy"]
    assert f"right and faithful {describe(f['k'], f['n'])}" in out
    c = s["iterations"][1]["change"]["arithmetic"]["eval"]["all"]
    assert f"vs the warm start: +{c['gained']} −{c['lost']} questions" in out
    r = s["direct_baseline"]["arithmetic"]["eval"]["all"]["rationale_share"]
    assert "direct answer (few-shot, no rationale), for reference:" in out and r["k"] == 0
    assert f"shows a rationale {describe(0, r['n'])}" in out
