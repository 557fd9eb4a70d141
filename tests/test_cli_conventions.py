"""Conventions: star --version and python -m star_core, help with descriptions and examples, runs --json,
config --yaml (a starter file that loads back and builds), eval --adapter's base model, LICENSE/CHANGELOG."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.dash_fixtures import build_run
from star_core import __version__, loop
from star_core import config as config_mod
from star_core.cli import HELP, build_parser, main

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]


def test_version_matches_pyproject(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert capsys.readouterr().out.strip() == f"star {__version__}" == f"star {pyproject['project']['version']}"


def test_python_dash_m_star_core():
    r = subprocess.run([sys.executable, "-m", "star_core", "--version"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == f"star {__version__}", r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "star_core", "summary", "/no/such/run"], capture_output=True, text=True, cwd=REPO
    )
    assert r.returncode == 2 and "not a run folder" in r.stderr


@pytest.mark.parametrize("cmd", sorted(HELP))
def test_every_subcommand_help_has_a_description_and_an_example(cmd):
    sub = build_parser()._subparsers._group_actions[0].choices[cmd]
    text = sub.format_help()
    assert HELP[cmd][1].splitlines()[0] in text and "example:\n  star " + cmd in text, text


def test_runs_json(tmp_path, capsys):
    build_run(tmp_path / "a")
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(Path(r["path"]).name, r["status"], r["task"]) for r in rows] == [("a", "finished", "arithmetic")]
    assert main(["runs", str(tmp_path / "none"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_config_yaml_is_a_starter_file_that_builds(tmp_path, capsys):
    assert main(["config", "--yaml"]) == 0
    f = tmp_path / "star.yaml"
    f.write_text(capsys.readouterr().out)
    text = f.read_text()
    assert "None" not in text and "train_file: null" in text and "# range:" in text
    assert set(config_mod.load_file(f)) == set(config_mod.StarConfig().to_dict())
    assert config_mod.build(str(f), {}, []).to_dict() == config_mod.StarConfig().to_dict()


class _Stop(Exception):
    pass


@pytest.fixture
def eval_cfg(monkeypatch):
    seen = {}

    def fake_start(cfg, out, progress=True):
        seen["cfg"] = cfg
        raise _Stop

    monkeypatch.setattr(loop, "start", fake_start)
    return seen


def _adapter(folder: Path, base: str | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", **({"base_model_name_or_path": base} if base else {})})
    )
    return folder


def test_eval_adapter_takes_the_base_model_of_its_run(tmp_path, eval_cfg, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: HuggingFaceTB/SmolLM2-360M\n")
    ad = _adapter(run / "adapters" / "iter_2", "/some/other/path")
    with pytest.raises(_Stop):
        main(["eval", "--adapter", str(ad), "--out", str(tmp_path / "e")])
    assert eval_cfg["cfg"].model == "HuggingFaceTB/SmolLM2-360M"
    assert eval_cfg["cfg"].eval_adapter == str(ad.resolve())


def test_eval_adapter_reads_adapter_config_outside_a_run(tmp_path, eval_cfg):
    ad = _adapter(tmp_path / "my-adapter", "Qwen/Qwen2.5-0.5B")
    with pytest.raises(_Stop):
        main(["eval", "--adapter", str(ad), "--out", str(tmp_path / "e")])
    assert eval_cfg["cfg"].model == "Qwen/Qwen2.5-0.5B"


def test_eval_model_flag_wins_with_a_warning(tmp_path, eval_cfg, caplog):
    ad = _adapter(tmp_path / "my-adapter", "Qwen/Qwen2.5-0.5B")
    with caplog.at_level(logging.WARNING, logger="star"), pytest.raises(_Stop):
        main(["eval", "--adapter", str(ad), "--model", "HuggingFaceTB/SmolLM2-135M", "--out", str(tmp_path / "e")])
    assert eval_cfg["cfg"].model == "HuggingFaceTB/SmolLM2-135M"
    assert any("trained on Qwen/Qwen2.5-0.5B" in r.getMessage() for r in caplog.records)


def test_eval_adapter_without_a_known_base_keeps_the_default(tmp_path, eval_cfg):
    ad = _adapter(tmp_path / "bare", None)
    with pytest.raises(_Stop):
        main(["eval", "--adapter", str(ad), "--out", str(tmp_path / "e")])
    assert eval_cfg["cfg"].model == config_mod.StarConfig().model


def test_license_and_changelog():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert "LICENSE" in pyproject["project"].get("license-files", ["LICENSE"])
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")
