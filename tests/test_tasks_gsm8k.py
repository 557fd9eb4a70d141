"""GSM8K task: prompt format, parsing, stop rules, the equation audit, hint leaks, loaders."""

import json

import pytest

from helpers.task_data import SHARED_DATASETS, write_jsonl
from star_core.tasks import DataError, Parsed, get_task
from star_core.tasks.base import sample_data_dir
from star_core.tasks.gsm8k import BUILTIN_EXEMPLARS, normalize_number

SHARED = SHARED_DATASETS / "gsm8k"

ROW = {
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
}


def task(**kw):
    return get_task("gsm8k", **kw)


@pytest.fixture
def problem(tmp_path):
    return task().load("eval", path=write_jsonl(tmp_path / "one.jsonl", [ROW]))[0]


# ---- prompt format -------------------------------------------------------------


def test_formats(problem):
    t = task()
    assert problem.id == "gsm8k-test-0" and problem.gold == "72"
    ref = t.reference_rationale(problem)
    assert ref == ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.")
    assert t.format_question(problem) == f"Q: {ROW['question']}\nA:"
    assert t.format_question(problem, hint=True) == f"Q: {ROW['question']} (The answer is 72.)\nA:"
    assert "48/2" not in t.format_question(problem, hint=True)  # only the number, never the solution
    assert t.hint_text(problem) == "The answer is 72."
    target = t.format_target(ref, "72")
    assert target == " " + ref + "\n#### 72"
    parsed = t.parse(target)
    assert parsed.answer == "72" and parsed.rationale == ref
    a = t.audit(problem, parsed)
    assert a.faithful is True and a.checked == 2


@pytest.mark.parametrize("hint", [False, True])
def test_exemplar_prefix_round_trips(hint):
    t = task()
    exs = t.exemplars(6)
    assert len(exs) == 6
    prefix = t.few_shot_prefix(exs, hint=hint)
    assert prefix.count("(The answer is") == (6 if hint else 0)
    blocks = prefix.split("\n\n")
    assert blocks[-1] == ""
    for e, block in zip(exs, blocks):
        q = t.format_question(e.problem, hint=hint)
        assert block.startswith(q)
        completion = block[len(q) :]
        assert "<<" not in completion and "\n\n" not in completion
        assert t.trim(completion + "\n\nQ: next") == completion
        assert t.is_complete(completion + "\n")
        parsed = t.parse(completion)
        assert parsed.answer == e.problem.gold == e.answer
        assert t.hint_leak(e.problem, completion) is None
        a = t.audit(e.problem, parsed)
        # exemplar 1 writes units inside its equations ("10 bundles – 3 bundles"): nothing verifiable
        assert not a.errors and a.verdict == ("no_rationale" if "bundles" in e.rationale else "faithful")


def test_builtin_exemplars():
    doc = json.loads(BUILTIN_EXEMPLARS.read_text())
    assert len(doc["exemplars"]) >= 6
    t = task()
    assert [e.problem.id for e in t.exemplars(3)] == [e.problem.id for e in t.exemplars(6)[:3]]
    assert [e.problem.id for e in t.exemplars(4, seed=9)] == [e.problem.id for e in t.exemplars(4, seed=9)]
    with pytest.raises(ValueError):
        t.exemplars(len(doc["exemplars"]) + 1)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared GSM8K copy not present")
def test_builtin_exemplars_are_train_rows():
    lines = (SHARED / "train.jsonl").read_text().splitlines()
    for r in json.loads(BUILTIN_EXEMPLARS.read_text())["exemplars"]:
        row = json.loads(lines[r["source_line"] - 1])
        assert row == {"question": r["question"], "answer": r["answer"]}
        assert r["id"] == f"gsm8k-train-{r['source_line'] - 1}" and r["source_line"] > 200


# ---- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, answer",
    [
        (" He has 5 + 3 = 8 apples.\n#### 8", "8"),
        (" ...\n#### 1,080", "1080"),  # commas
        (" ...\n#### $1,080.", "1080"),  # dollar sign and trailing period
        (" ...\n#### -7", "-7"),  # negative
        (" ...\n#### 18.50", "18.5"),
        (" ...\n#### 18.00", "18"),
        (" ...\n####72", "72"),
        (" #### 5\n#### 6", "6"),  # the last #### wins
        (" ...\n#### 72 clips\nQ: next", "72"),  # extra text after the answer
        (" So the answer is 42.", "42"),  # fallback without ####
        (" The answer is $3,000.", "3000"),
        (" ...\n#### many", None),
        (" He has 8 apples.", None),
        ("", None),
    ],
)
def test_parse(completion, answer):
    assert task().parse(completion).answer == answer


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("72", "72"),
        ("1,080", "1080"),
        ("$5", "5"),
        ("-7", "-7"),
        ("0.50", "0.5"),
        ("007", "7"),
        ("x", None),
    ],
)
def test_normalize_number(raw, norm):
    assert normalize_number(raw) == norm


@pytest.mark.parametrize(
    "answer, gold, ok",
    [
        ("72", "72", True),
        ("72.0", "72", True),
        ("1,080", "1080", True),
        ("71", "72", False),
        (None, "72", False),
    ],
)
def test_is_correct(answer, gold, ok):
    assert task().is_correct(answer, gold) is ok


# ---- decoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, complete, trimmed",
    [
        (" 5 + 3 = 8\n#### 8\n", True, " 5 + 3 = 8\n#### 8"),
        (" 5 + 3 = 8\n#### 8", False, " 5 + 3 = 8\n#### 8"),  # "8" may continue: "80"
        (" 5 + 3 = 8\n#### 8 apples\nMore text", True, " 5 + 3 = 8\n#### 8"),
        (" 5 + 3 = 8\n#### 8\n\nQ: A new question", True, " 5 + 3 = 8\n#### 8"),
        (" 5 + 3 = 8\nQ: A new question", True, " 5 + 3 = 8"),
        (" 5 + 3 = 8\nThen", False, " 5 + 3 = 8\nThen"),
        ("\n\n5 + 3 = 8\n#### 8\n\nQ:", True, "\n\n5 + 3 = 8\n#### 8"),  # leading blank lines are kept
    ],
)
def test_stop_and_trim(completion, complete, trimmed):
    t = task()
    assert t.is_complete(completion) is complete
    assert t.trim(completion) == trimmed


# ---- audit and hint leaks -----------------------------------------------------------


@pytest.mark.parametrize(
    "rationale, faithful, errors",
    [
        ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.", True, []),
        (
            "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 70 clips.",
            False,
            ["48+24 = 70 is wrong: 48+24 = 72"],
        ),
        ("The boxes hold 2 * 3 * 4 = 24 cans, worth $1,200 / 4 = $300.", True, []),
        ("She pays 12/60 = $0.2 a minute, so 0.2 x 50 = $10.", True, []),
        ("The share is 10/3 = 3.33 each.", True, []),  # rounding to 2 decimals
        ("The tip is 20% * $200 = $40.", True, []),
        ("Natalia sold half as many clips, so she sold 72 in all.", False, []),  # no verified step: no rationale
        ("She sold 48/2 = <<48/2=24>>24 in May.", True, []),  # annotations are ignored
    ],
)
def test_audit(problem, rationale, faithful, errors):
    a = task().audit(problem, Parsed(rationale, "72"))
    assert a.faithful is faithful
    assert list(a.errors) == errors
    assert (a.verdict == "no_rationale") is (not faithful and not errors)


@pytest.mark.parametrize(
    "completion, leaks",
    [
        (" Natalia sold 48/2 = 24 clips in May.\n#### 72", False),
        (" The hint says 72.\n#### 72", True),
        (" (The answer is 72.) She sold 72.\n#### 72", True),
        (" The answer is 72.\n#### 72", True),  # repeats the hint sentence
        (" We are given that the answer is 72.\n#### 72", True),
        (" The answer is given as 72.\n#### 72", True),
        (" She sold 24 more, 72 in total, so the answer is 72.\n#### 72", False),
    ],
)
def test_hint_leak(problem, completion, leaks):
    assert (task().hint_leak(problem, completion) is not None) is leaks


# ---- loaders -------------------------------------------------------------------


def test_bundled_sample():
    t = task()
    train, test = t.load("train"), t.load("eval")
    assert len(train) == 200 and len(test) == 100
    assert train[0].id == "gsm8k-train-0" and test[-1].id == "gsm8k-test-99"
    assert all(p.gold.lstrip("-").isdigit() for p in train + test)
    assert all("<<" not in p.meta["reference"] for p in train)
    assert (sample_data_dir() / "gsm8k" / "LICENSE.txt").is_file()


def test_train_loader_excludes_exemplars(tmp_path):
    t = task()
    ex = json.loads(BUILTIN_EXEMPLARS.read_text())["exemplars"][0]
    path = write_jsonl(tmp_path / "t.jsonl", [ROW, {"question": ex["question"], "answer": ex["answer"]}])
    assert [p.id for p in t.load("train", path=path)] == ["gsm8k-train-0"]  # matched by question text
    assert len(t.load("eval", path=path)) == 2
    ex_file = write_jsonl(tmp_path / "ex.jsonl", [ROW])
    t2 = task(exemplar_file=ex_file)
    assert [p.question for p in t2.load("train", path=path)] == [ex["question"]]
    assert t2.exemplars(1)[0].rationale.startswith("Natalia sold 48/2 = 24")


def test_limit_is_seeded(tmp_path):
    rows = [dict(ROW, question=f"Question {i}?") for i in range(30)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    t = task()
    a = [p.id for p in t.load("eval", path=path, limit=8, seed=4)]
    assert a == [p.id for p in t.load("eval", path=path, limit=8, seed=4)]
    assert a != [p.id for p in t.load("eval", path=path, limit=8, seed=5)]
    assert a[:3] == [p.id for p in t.load("eval", path=path, limit=3, seed=4)]


@pytest.mark.parametrize(
    "bad, field, words",
    [
        ({"question": "Q?", "answer": "It is 5."}, "answer", "no '####'"),
        ({"question": "Q?", "answer": "It is 5.\n#### five"}, "answer", "not followed by a number"),
        ({"question": "Q?"}, "answer", "missing"),
        ({"answer": "#### 5"}, "question", "missing"),
        ({"question": 3, "answer": "#### 5"}, "question", "expected str"),
    ],
)
def test_bad_rows(tmp_path, bad, field, words):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROW, ROW, bad])
    with pytest.raises(DataError) as ei:
        task().load("train", path=path)
    msg = str(ei.value)
    assert "bad.jsonl" in msg and "line 3" in msg and f"'{field}'" in msg and words in msg


def test_malformed_json_line(tmp_path):
    f = tmp_path / "broken.jsonl"
    f.write_text(json.dumps(ROW) + "\n" + json.dumps(ROW) + "\n{not json}\n")
    with pytest.raises(DataError) as ei:
        task().load("eval", path=str(f))
    assert "broken.jsonl" in str(ei.value) and "line 3" in str(ei.value)


def test_hugging_face_parquet_folder(tmp_path):
    """A local folder of parquet files read through datasets.load_dataset; eval maps to the test split."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    folder = tmp_path / "openai" / "gsm8k"  # named like the hub id: must still load as a local folder
    (folder / "data").mkdir(parents=True)
    pd.DataFrame([ROW, dict(ROW, question="Another?")]).to_parquet(folder / "data" / "train-00000.parquet")
    pd.DataFrame([dict(ROW, answer="48 - 6 = 42\n#### 42")]).to_parquet(folder / "data" / "test-00000.parquet")
    t = task()
    train = t.load("train", path=str(folder))
    assert [p.id for p in train] == ["gsm8k-train-0", "gsm8k-train-1"]
    test = t.load("eval", path=str(folder))
    assert [(p.id, p.gold) for p in test] == [("gsm8k-test-0", "42")]


def test_hugging_face_bad_row(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    folder = tmp_path / "gsm_bad"
    folder.mkdir()
    pd.DataFrame([ROW, {"question": "Q?", "answer": "no final line"}]).to_parquet(folder / "test.parquet")
    with pytest.raises(DataError) as ei:
        task().load("eval", path=str(folder))
    assert "gsm_bad" in str(ei.value) and "line 2" in str(ei.value) and "'answer'" in str(ei.value)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared GSM8K copy not present")
def test_sample_files_are_byte_identical_prefixes():
    for name, n in (("train.jsonl", 200), ("test.jsonl", 100)):
        got = (sample_data_dir() / "gsm8k" / name).read_bytes().splitlines()
        assert got == (SHARED / name).read_bytes().splitlines()[:n]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared GSM8K copy not present")
def test_full_train_file_loads_and_excludes_exemplars():
    t = task()
    probs = t.load("train", path=str(SHARED / "train.jsonl"))
    assert len(probs) == 7473 - len(json.loads(BUILTIN_EXEMPLARS.read_text())["exemplars"])
    assert not {p.id for p in probs} & t.exemplar_ids
