"""CommonsenseQA task: prompt format, parsing, hint leaks, loaders (JSONL and Hugging Face)."""

import json

import pytest

from helpers.task_data import SHARED_DATASETS, write_jsonl
from star_core.tasks import DataError, get_task
from star_core.tasks.base import sample_data_dir
from star_core.tasks.commonsenseqa import BUILTIN_EXEMPLARS

SHARED = SHARED_DATASETS / "commonsenseqa"

ROW = {
    "answerKey": "B",
    "id": "q1",
    "question": {
        "question_concept": "money",
        "choices": [
            {"label": "A", "text": "pocket"},
            {"label": "B", "text": "bank"},
            {"label": "C", "text": "oven"},
            {"label": "D", "text": "river"},
            {"label": "E", "text": "bank vault door"},
        ],
        "stem": "Where do you keep savings?",
    },
}


def task(**kw):
    return get_task("commonsenseqa", **kw)


@pytest.fixture
def problem(tmp_path):
    return task().load("eval", path=write_jsonl(tmp_path / "one.jsonl", [ROW]))[0]


# ---- prompt format -------------------------------------------------------------


def test_question_formats(problem):
    t = task()
    assert problem.gold == "B" and problem.id == "q1"
    assert t.format_question(problem) == (
        "Q: Where do you keep savings?\nAnswer Choices:\n(a) pocket\n(b) bank\n(c) oven\n(d) river\n"
        "(e) bank vault door\nA:"
    )
    assert t.format_question(problem, hint=True) == (
        "Q: Where do you keep savings?\nAnswer Choices:\n(a) pocket\n(b) bank (CORRECT)\n(c) oven\n(d) river\n"
        "(e) bank vault door\nA:"
    )
    assert t.hint_text(problem) == "(b) bank (CORRECT)"
    assert t.hint_text(problem) in t.format_question(problem, hint=True)  # so the dashboard can highlight it
    assert t.reference_rationale(problem) is None
    target = t.format_target("Savings are kept safe in a bank. So the answer is bank", "B")
    assert target == " Savings are kept safe in a bank. So the answer is bank (b)."
    assert t.parse(target).answer == "B"


@pytest.mark.parametrize("hint", [False, True])
def test_exemplar_prefix_round_trips(hint):
    t = task()
    exs = t.exemplars(7)
    assert len(exs) == 7 and len({e.problem.id for e in exs}) == 7
    prefix = t.few_shot_prefix(exs, hint=hint)
    assert prefix.count("(CORRECT)") == (7 if hint else 0)
    blocks = prefix.split("\n\n")
    assert blocks[-1] == ""
    for e, block in zip(exs, blocks):
        q = t.format_question(e.problem, hint=hint)
        assert block.startswith(q)
        completion = block[len(q) :]
        assert "\n" not in completion  # one line, so the "\n" stop string never cuts it
        assert t.trim(completion + "\n\nQ: next") == completion
        parsed = t.parse(completion)
        assert parsed.answer == e.problem.gold == e.answer
        assert t.format_target(parsed.rationale, parsed.answer) == completion
        text = next(c["text"] for c in e.problem.meta["choices"] if c["label"] == e.answer)
        assert completion.endswith(f"So the answer is {text} ({e.answer.lower()}).")
        assert t.hint_leak(e.problem, completion) is None


def test_exemplars_seeded_and_bounded():
    t = task()
    assert [e.problem.id for e in t.exemplars(3)] == [e.problem.id for e in t.exemplars(7)[:3]]
    assert [e.problem.id for e in t.exemplars(4, seed=5)] == [e.problem.id for e in t.exemplars(4, seed=5)]
    with pytest.raises(ValueError):
        t.exemplars(8)


def test_builtin_exemplar_file_is_well_formed():
    doc = json.loads(BUILTIN_EXEMPLARS.read_text())
    rows = doc["exemplars"]
    assert len(rows) == 7
    assert sorted({r["answerKey"] for r in rows}) == ["A", "B", "C", "D", "E"]
    for r in rows:
        assert r["rationale"].strip() and "answer is" not in r["rationale"].lower()


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared CommonsenseQA copy not present")
def test_builtin_exemplars_are_train_rows():
    lines = (SHARED / "train_rand_split.jsonl").read_text().splitlines()
    for r in json.loads(BUILTIN_EXEMPLARS.read_text())["exemplars"]:
        orig = json.loads(lines[r["source_line"] - 1])
        assert orig["id"] == r["id"] and orig["question"] == r["question"] and orig["answerKey"] == r["answerKey"]


# ---- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, answer",
    [
        (" Savings go in a bank. So the answer is bank (b).", "B"),
        (" So the answer is bank (B).", "B"),  # uppercase letter
        (" the answer is (b)", "B"),  # letter only
        (" The answer is: (e) bank vault door.", "E"),
        (" The answer is B.", "B"),  # bare capital letter
        (" the answer is b.", "B"),  # bare small letter at the end
        (" Options (a) and (c) are wrong. So the answer is bank (b). Then (d) maybe.", "B"),  # extra text
        (" I pick bank (b)", "B"),  # no "answer is": last marker
        (" So the answer is a place for money.", None),  # "a" is an article here
        (" So the answer is bank.", None),  # text only, no problem given
        (" I do not know.", None),
        ("", None),
    ],
)
def test_parse(completion, answer):
    assert task().parse(completion).answer == answer


@pytest.mark.parametrize(
    "completion, answer, rationale",
    [
        (" Money is kept in a bank. So the answer is bank.", "B", "Money is kept in a bank. So the answer is bank"),
        (" So the answer is the oven!", "C", "So the answer is the oven"),
        (" So the answer is Bank Vault Door.", "E", "So the answer is Bank Vault Door"),
        (" So the answer is vault.", None, "So the answer is vault."),  # matches no choice exactly
    ],
)
def test_parse_choice_text_with_problem(problem, completion, answer, rationale):
    parsed = task().parse(completion, problem=problem)
    assert parsed.answer == answer
    assert parsed.rationale == rationale


@pytest.mark.parametrize(
    "answer, gold, ok", [("B", "B", True), ("b", "B", True), ("C", "B", False), (None, "B", False)]
)
def test_is_correct(answer, gold, ok):
    assert task().is_correct(answer, gold) is ok


# ---- hint leaks ----------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, leaks",
    [
        (" Savings go in a bank. So the answer is bank (b).", False),
        (" Bank is correct because savings go there. So the answer is bank (b).", False),
        (" bank (CORRECT) is where savings go. So the answer is bank (b).", True),
        (" The choice bank (correct) fits. So the answer is bank (b).", True),
        (" Bank is CORRECT. So the answer is bank (b).", True),
        (" The hint points to bank. So the answer is bank (b).", True),
        (" The option marked as correct is bank. So the answer is bank (b).", True),
    ],
)
def test_hint_leak(problem, completion, leaks):
    assert (task().hint_leak(problem, completion) is not None) is leaks


@pytest.mark.parametrize(
    "completion, complete, trimmed",
    [
        (" So the answer is bank (b).", True, " So the answer is bank (b)."),
        (" So the answer is bank (b). Also (c)", True, " So the answer is bank (b)."),
        (" So the answer is bank (b).\n\nQ: Where", True, " So the answer is bank (b)."),
        (" Savings go in a", False, " Savings go in a"),
        (" Savings go in a bank.\nQ:", True, " Savings go in a bank."),
        ("\n So the answer is bank (b).\nQ:", True, "\n So the answer is bank (b)."),  # a leading newline is kept
        ("\n", False, "\n"),
    ],
)
def test_stop_and_trim(completion, complete, trimmed):
    t = task()
    assert t.is_complete(completion) is complete
    assert t.trim(completion) == trimmed


# ---- loaders -------------------------------------------------------------------


def test_bundled_sample_loads_and_excludes_exemplars():
    t = task()
    train, dev = t.load("train"), t.load("eval")
    assert len(train) == 300 and len(dev) == 200
    assert not {p.id for p in train} & t.exemplar_ids
    assert all(p.gold in "ABCDE" and len(p.meta["choices"]) == 5 for p in train + dev)
    assert (sample_data_dir() / "commonsenseqa" / "LICENSE.txt").is_file()


def test_train_loader_excludes_exemplar_rows(tmp_path):
    t = task()
    ex_row = json.loads(BUILTIN_EXEMPLARS.read_text())["exemplars"][0]
    ex_row = {k: ex_row[k] for k in ("id", "question", "answerKey")}
    path = write_jsonl(tmp_path / "t.jsonl", [ROW, ex_row])
    assert [p.id for p in t.load("train", path=path)] == ["q1"]
    assert [p.id for p in t.load("eval", path=path)] == ["q1", ex_row["id"]]


def test_exemplars_from_a_file_are_used_and_excluded(tmp_path):
    ex = dict(ROW, rationale="Savings are kept safe in a bank.")
    ex_path = write_jsonl(tmp_path / "ex.jsonl", [ex])
    other = dict(ROW, id="q2")
    data = write_jsonl(tmp_path / "train.jsonl", [ROW, other])
    t = task(exemplar_file=ex_path)
    assert [p.id for p in t.load("train", path=data)] == ["q2"]
    exs = t.exemplars(1)
    assert exs[0].rationale == "Savings are kept safe in a bank. So the answer is bank"
    # a JSON array of exemplars works too
    arr = tmp_path / "ex.json"
    arr.write_text(json.dumps([ex]))
    assert task().exemplars(1, path=str(arr))[0].problem.id == "q1"


def test_limit_is_seeded(tmp_path):
    rows = [dict(ROW, id=f"q{i}") for i in range(30)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    t = task()
    a = [p.id for p in t.load("eval", path=path, limit=10, seed=1)]
    assert a == [p.id for p in t.load("eval", path=path, limit=10, seed=1)]
    assert a != [p.id for p in t.load("eval", path=path, limit=10, seed=2)]
    assert a[:4] == [p.id for p in t.load("eval", path=path, limit=4, seed=1)]
    assert [p.id for p in t.load("eval", path=path)] == [f"q{i}" for i in range(30)]


def _four_choices(r):
    r = json.loads(json.dumps(r))
    r["question"]["choices"] = r["question"]["choices"][:4]
    return r


def _bad_label(r):
    r = json.loads(json.dumps(r))
    r["question"]["choices"][4]["label"] = "F"
    return r


def _drop(r, *keys):
    r = json.loads(json.dumps(r))
    d = r
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]
    return r


@pytest.mark.parametrize(
    "bad, field, words",
    [
        (_four_choices(ROW), "question.choices", "exactly 5 choices"),
        (_bad_label(ROW), "question.choices", "A-E"),
        (dict(ROW, answerKey="F"), "answerKey", "A-E"),
        (dict(ROW, answerKey=2), "answerKey", "expected str"),
        (_drop(ROW, "answerKey"), "answerKey", "missing"),
        (_drop(ROW, "question", "stem"), "question.stem", "missing"),
        (_drop(ROW, "id"), "id", "missing"),
        (dict(ROW, question=5), "question", "expected dict or str"),
    ],
)
def test_bad_rows(tmp_path, bad, field, words):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROW, ROW, bad])
    with pytest.raises(DataError) as ei:
        task().load("eval", path=path)
    msg = str(ei.value)
    assert "bad.jsonl" in msg and "line 3" in msg and f"'{field}'" in msg and words in msg


def test_malformed_json_line(tmp_path):
    f = tmp_path / "broken.jsonl"
    f.write_text(json.dumps(ROW) + "\n" + json.dumps(ROW) + "\n" + '{"id": "x", "question": \n')
    with pytest.raises(DataError) as ei:
        task().load("train", path=str(f))
    assert "broken.jsonl" in str(ei.value) and "line 3" in str(ei.value) and "malformed JSON" in str(ei.value)


def _flat(row):
    q = row["question"]
    return {
        "id": row["id"],
        "question": q["stem"],
        "question_concept": q["question_concept"],
        "choices": {"label": [c["label"] for c in q["choices"]], "text": [c["text"] for c in q["choices"]]},
        "answerKey": row["answerKey"],
    }


def test_flattened_layout_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "flat.jsonl", [_flat(ROW)])
    p = task().load("eval", path=path)[0]
    assert p.gold == "B" and p.meta["choices"][1] == {"label": "B", "text": "bank"}
    assert p.meta["concept"] == "money"


def test_hugging_face_folder(tmp_path):
    """A local dataset folder read through datasets.load_dataset, with our split names mapped."""
    pytest.importorskip("datasets")
    folder = tmp_path / "csqa"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [_flat(ROW), _flat(dict(ROW, id="q2"))])
    write_jsonl(folder / "validation.jsonl", [_flat(dict(ROW, id="v1", answerKey="D"))])
    t = task()
    assert [p.id for p in t.load("train", path=str(folder))] == ["q1", "q2"]
    ev = t.load("eval", path=str(folder))
    assert [(p.id, p.gold) for p in ev] == [("v1", "D")]
    assert t.format_question(ev[0]) == t.format_question(
        t.load("eval", path=write_jsonl(tmp_path / "v.jsonl", [dict(ROW, id="v1", answerKey="D")]))[0]
    )


def test_hugging_face_bad_row(tmp_path):
    pytest.importorskip("datasets")
    folder = tmp_path / "csqa_bad"
    folder.mkdir()
    bad = _flat(ROW)
    bad["choices"] = {"label": ["A", "B", "C", "D"], "text": ["w", "x", "y", "z"]}
    write_jsonl(folder / "train.jsonl", [_flat(ROW), bad])
    with pytest.raises(DataError) as ei:
        task().load("train", path=str(folder))
    assert "csqa_bad" in str(ei.value) and "line 2" in str(ei.value) and "'choices'" in str(ei.value)


def test_missing_hugging_face_dataset(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(DataError):
        task().load("eval", path=str(tmp_path / "no_such_folder"))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared CommonsenseQA copy not present")
def test_sample_files_are_byte_identical_prefixes():
    for sample, full, n in (("train.jsonl", "train_rand_split.jsonl", 300), ("dev.jsonl", "dev_rand_split.jsonl", 200)):
        got = (sample_data_dir() / "commonsenseqa" / sample).read_bytes().splitlines()
        want = (SHARED / full).read_bytes().splitlines()[:n]
        assert got == want


@pytest.mark.parametrize(
    "completion, faithful, needle",
    [
        (" Money is kept safe in a bank. So the answer is bank (b).", True, None),
        (" Money is kept safe. So the answer is the bank (b).", True, None),
        (" Money is kept safe. So the answer is oven (b).", False, "names (c) 'oven' but answers (b) 'bank'"),
        (" Hot things. So the answer is oven (c).", True, None),
        (" Money. So the answer is a sock drawer (b).", False, "none of the choices"),
        (" Money is kept in a bank (b).", None, None),  # nothing named in words: nothing to check
        (" I am not sure.", None, None),
    ],
)
def test_audit_checks_the_named_choice_against_the_letter(problem, completion, faithful, needle):
    t = task()
    parsed = t.parse(completion, problem)
    audit = t.audit(problem, parsed)
    assert audit.faithful is faithful
    if needle:
        assert needle in audit.errors[0]
