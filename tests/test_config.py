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
    cfg = C.build(
        str(f),
        {"iterations": 3, "model": None},
        ["learning_rate=2e-4", "rationalize=false", "train_digits=1-4", "lora_targets=q_proj,v_proj"],
    )
    assert (cfg.task, cfg.iterations, cfg.learning_rate, cfg.rationalize) == ("gsm8k", 3, 2e-4, False)
    assert cfg.train_digits == (1, 4) and cfg.lora_targets == ["q_proj", "v_proj"]


def test_json_config(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"task": "commonsenseqa", "keep_prefix_in_training": True}))
    cfg = C.build(str(f))
    assert cfg.task == "commonsenseqa" and cfg.keep_prefix_in_training


@pytest.mark.parametrize(
    "sets, needle",
    [
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
    ],
)
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


# ---- strict ranges, one table per field ----------------------------------------------------
def _numeric_fields():
    hints = C.get_type_hints(C.StarConfig)
    return {f.name for f in C.fields(C.StarConfig) if hints[f.name] in (int, float)}


def test_every_numeric_field_has_a_range():
    assert _numeric_fields() == set(C.RANGES)


def _edges(name):
    """(value, ok) pairs at and beyond each end of the field's range."""
    lo, hi, bounds = C.RANGES[name]
    hi = hi() if callable(hi) else hi
    is_float = C.get_type_hints(C.StarConfig)[name] is float
    step = 1e-9 if is_float else 1
    out = [(lo, bounds[0] == "["), (lo - step, False), (hi, bounds[1] == "]"), (hi + (1 if is_float else step), False)]
    if is_float:
        out += [(float("nan"), False), (float("inf"), False), (float("-inf"), False)]
    return out


#: Settings a field needs beside it to be valid at its edges (k > 1 samples need a temperature).
_COMPANIONS = {
    "samples_per_question": ["temperature=0.7"],
    "warm_start": ["warm_start=0"],
    "iterations": ["steps_growth=1.0"],
    "train_steps": ["iterations=1"],
    "steps_growth": ["iterations=1"],
    "warm_start_pad": ["arith_format=carry", "warm_start=8"],
}


@pytest.mark.parametrize("name,value,ok", [(n, v, ok) for n in sorted(C.RANGES) for v, ok in _edges(n)])
def test_numeric_ranges(name, value, ok):
    sets = [s for s in _COMPANIONS.get(name, []) if not s.startswith(f"{name}=")] + [f"{name}={value!r}"]
    if ok:
        assert getattr(C.build(None, {}, sets), name) == value
    else:
        with pytest.raises(C.ConfigError) as e:
            C.build(None, {}, sets)
        assert f"field '{name}'" in str(e.value)
        assert ("finite" if value != value or value in (float("inf"), float("-inf")) else "must be") in str(e.value)


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["seed=12345678901234567890"], "field 'seed' = 12345678901234567890: must be >= 0 and <= 4,294,967,295"),
        (["threads=-1"], "field 'threads' = -1"),
        (["max_grad_norm=-1"], "field 'max_grad_norm' = -1.0: must be > 0"),
        (["learning_rate=nan"], "field 'learning_rate' = nan: must be a finite number"),
        (["steps_growth=.inf"], "field 'steps_growth' = inf: must be a finite number"),
        (["temperature=inf"], "field 'temperature' = inf: must be a finite number"),
        (["n_train=1000000000000"], "field 'n_train'"),
        (["n_exemplars=100000"], "field 'n_exemplars'"),
        (["iterations=60"], "steps in the last iteration"),
        (["batch_size=0"], "field 'batch_size'"),
        (["batch_size=1000000"], "field 'batch_size'"),
        (["train_digits=1-x"], "field 'train_digits' = '1-x': expected two integers"),
        (["eval_digits=x"], "field 'eval_digits'"),
        (["warm_start_digits=[1, 2, 3]"], "field 'warm_start_digits'"),
        (["train_digits=0-3"], "field 'train_digits'"),
        (["eval_digits=1-31"], "field 'eval_digits'"),
        (["lora_targets="], "field 'lora_targets'"),
        (["iterations=2.5"], "expected an integer"),
    ],
)
def test_harmful_values_are_refused(sets, needle):
    with pytest.raises(C.ConfigError) as e:
        C.build(None, {}, sets)
    assert needle in str(e.value)


# ---- the config file reader -----------------------------------------------------------------
@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("bin.yaml", b"task: arithmetic\n\x00\x01\x02", "a binary file"),
        ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 9)"),
        ("empty.yaml", b"", "the config file is empty"),
        ("comments.yaml", b"# nothing here\n\n", "the config file is empty"),
        ("dup.yaml", b"task: arithmetic\niterations: 2\ntask: gsm8k\n", "line 3"),
        ("dup.yaml", b"task: arithmetic\niterations: 2\ntask: gsm8k\n", "duplicate key 'task' (first on line 1)"),
        ("dup.json", b'{"task": "arithmetic", "task": "gsm8k"}', "duplicate key 'task'"),
        ("range.yaml", b'train_digits: "1-x"\n', "field 'train_digits' = '1-x': expected two integers"),
        ("list.yaml", b"- task\n- arithmetic\n", "must be a mapping"),
        ("nan.yaml", b"learning_rate: .nan\n", "field 'learning_rate' = nan: must be a finite number"),
        ("huge.yaml", b"#" * (C.MAX_CONFIG_BYTES + 1), "too large for a config file"),
    ],
)
def test_bad_config_files_name_the_file(tmp_path, name, content, needle):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(C.ConfigError) as e:
        C.build(str(f))
    assert str(f) in str(e.value) or name in str(e.value)
    assert needle in str(e.value)


def test_duplicate_keys_in_nested_mappings_are_fine_when_distinct(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("task: arithmetic\ntrain_digits: [1, 2]\neval_digits: [1, 2]\n")
    assert C.build(str(f)).eval_digits == (1, 2)


def test_ranges_in_words():
    assert C.range_text("seed") == ">= 0 and <= 4,294,967,295"
    assert C.range_text("learning_rate") == "> 0 and <= 1 (finite)"
    assert C.range_text("lora_dropout") == ">= 0 and < 1 (finite)"
    assert C.range_text("task") == ""
