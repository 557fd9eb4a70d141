"""Downloads of what is on screen: the filtered samples and the compare rows, as CSV and JSONL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from helpers import dash_fixtures as F
from star_core import queries as Q
from star_core.annotations import Annotations
from star_core.queries.comparison import compare
from star_core.queries.exports import SAMPLE_COLUMNS, compare_frame, filtered_samples, to_csv, to_jsonl


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return F.build_run(tmp_path_factory.mktemp("exp") / "r", tasks=("arithmetic",), iterations=2, n_train=8, n_eval=6)


def test_filtered_samples_as_csv_and_jsonl(run):
    f = Q.SampleFilter(iteration=2, phase="sample")
    ids = [r[0] for r in F.sql(run, "SELECT id FROM samples WHERE iteration=2 AND phase='sample' ORDER BY id")]
    Annotations(run).set_label(ids[0], "faithful")
    Annotations(run).add_tag(ids[0], "interesting")
    df, total = filtered_samples(run, f, annotations=Annotations(run).frame())
    assert total == len(ids) and df["id"].tolist() == ids and list(df.columns) == SAMPLE_COLUMNS
    rows = list(csv.DictReader(io.StringIO(to_csv(df).decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows] == ids
    assert rows[0]["label"] == "faithful" and rows[0]["tags"] == "interesting"
    stored = F.sql(run, "SELECT rationale, gold, decision FROM samples WHERE id=?", ids[1])[0]
    assert (rows[1]["rationale"], rows[1]["gold"], rows[1]["decision"]) == stored
    js = [json.loads(ln) for ln in to_jsonl(df).decode().splitlines()]
    assert [j["id"] for j in js] == ids and js[1]["rationale"] == stored[0]
    assert isinstance(js[0]["correct"], bool) and js[1]["label"] is None
    small, total = filtered_samples(run, f, limit=2)
    assert len(small) == 2 and total == len(ids)


def test_csv_defuses_formulas_but_keeps_numbers(run):
    import pandas as pd

    df = pd.DataFrame({"answer": ["-5", '=HYPERLINK("http://x")', "@SUM(A1)", "+1", "plain", "-x"]})
    cells = [r["answer"] for r in csv.DictReader(io.StringIO(to_csv(df).decode("utf-8-sig")))]
    assert cells == ["-5", '\'=HYPERLINK("http://x")', "'@SUM(A1)", "+1", "plain", "'-x"]
    assert json.loads(to_jsonl(df).decode().splitlines()[1])["answer"] == '=HYPERLINK("http://x")'


def test_compare_rows_as_a_download(run):
    res = compare(run, 0, run, 2, "arithmetic")
    df = compare_frame(res["rows"], "r · iteration 0", "r · iteration 2")
    js = [json.loads(ln) for ln in to_jsonl(df).decode().splitlines()]
    assert len(js) == len(res["rows"]) and js[0]["side_a"] == "r · iteration 0"
    assert {"a_rationale", "b_rationale", "a_correct", "b_correct", "answer_changed"} <= set(js[0])


@pytest.mark.parametrize("brk", ["\r", "\n", "\r\n"])
def test_csv_quotes_line_breaks_and_defuses_every_line(brk):
    """A cell with a bare CR (or LF, or CRLF) is quoted, so a CSV reader keeps it one cell; and a reader that
    splits it on the line break anyway gets no cell starting with a formula character."""
    import pandas as pd

    evil = f"85.{brk}=cmd|' /C calc'!A0{brk}@SUM(1){brk}-2"
    df = pd.DataFrame({"answer": [evil, "plain"], "n": [1, 2]})
    raw = to_csv(df).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    assert [r["answer"] for r in rows] == [f"85.{brk}'=cmd|' /C calc'!A0{brk}'@SUM(1){brk}-2", "plain"]
    assert [r["n"] for r in rows] == ["1", "2"]
    assert f'"85.{brk}' in raw  # quoted
    for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"):  # a reader that splits on any break
        for cell in line.split(","):
            assert not cell.strip('"').startswith(("=", "@", "+")), (line, raw)
