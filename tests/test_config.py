"""Config: defaults, file + flags + --set precedence, and errors that name the field."""

import json

import pytest

from star_core import config as C


def test_defaults_validate_and_steps_grow():
    cfg = C.StarConfig().validate()
    assert cfg.task == "arithmetic" and cfg.rationalize is True and cfg.restart_from_base is True
    assert [cfg.steps_for(i) for i in (1, 2, 3)] == [40, 48, round(40 * 1.44)]


def test_every_field_has_a_doc():
    docs = C.field_docs()
    assert set(docs) == C.FIELD_NAMES
    assert all(len(d) > 5 for d in docs.values())


def test_precedence_file_then_flags_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("task: gsm8k\niterations: 5\nlearning_rate: 0.001\n")
    cfg = C.build(str(f), {"iterations": 3, "model": None}, ["learning_rate=2e-4", "rationalize=false",
                                                                 "train_digits=1-4", "lora_targets=q_proj,v_proj"])
    assert (cfg.task, cfg.iterations, cfg.learning_rate, cfg.rationalize) == ("gsm8k", 3, 2e-4, False)
    assert cfg.train_digits == (1, 4) and cfg.lora_targets == ["q_proj", "v_proj"]


def test_json_config(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"task": "commonsenseqa", "keep_prefix_in_training": True}))
    cfg = C.build(str(f))
    assert cfg.task == "commonsenseqa" and cfg.keep_prefix_in_training


@pytest.mark.parametrize("sets, needle", [
    (["learning_rat=1e-4"], "unknown field 'learning_rat' (did you mean 'learning_rate'?)"),
    (["iterations=two"], "field 'iterations'"),
    (["task=chess"], "field 'task' = 'chess'"),
    (["temperature=-1"], "field 'temperature'"),
    (["samples_per_question=4"], "needs temperature > 0"),
    (["arith_format=roman"], "field 'arith_format'"),
    (["train_digits=5-2"], "field 'train_digits'"),
    (["rationalize=maybe"], "expected true or false"),
    (["nokey"], "expected key=value"),
    (["warm_start=-1"], "field 'warm_start' = -1: must be >= 0"),
    (["task=commonsenseqa", "warm_start=8"], "field 'warm_start' = 8: unsupported for commonsenseqa"),
    (["warm_start_digits=3-1"], "field 'warm_start_digits'"),
    (["warm_start_steps=0"], "field 'warm_start_steps'"),
    (["max_kept_per_question=-2"], "field 'max_kept_per_question'"),
    (["task=gsm8k", "direct_baseline=true"], "field 'direct_baseline'"),
    (["arith_format=scratchpad", "direct_baseline=true"], "field 'direct_baseline'"),
])
def test_bad_values_name_the_field(sets, needle):
    with pytest.raises(C.ConfigError) as e:
        C.build(None, {}, sets)
    assert needle in str(e.value)


def test_bad_config_file_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("task: arithmetic\niterations: [1\n")
    with pytest.raises(C.ConfigError) as e:
        C.build(str(f))
    assert "bad.yaml" in str(e.value) and "line" in str(e.value)
    f.write_text("taks: arithmetic\n")
    with pytest.raises(C.ConfigError) as e:
        C.build(str(f))
    assert "bad.yaml" in str(e.value) and "'taks'" in str(e.value) and "'task'" in str(e.value)


def test_saved_config_round_trips(tmp_path):
    cfg = C.build(None, {"task": "gsm8k"}, ["train_digits=2-3", "warm_start=5", "warm_start_digits=1-3"])
    C.save(cfg, tmp_path / "config.yaml")
    assert C.from_saved(tmp_path / "config.yaml") == cfg
