"""What is on screen, as files: the filtered samples of the Rationales page and the rows of the Compare page,
as CSV (for a spreadsheet) and JSONL (for a program; ``datasets.load_dataset("json", ...)`` reads it).

The samples carry the columns a reader of rationales expects: where the sample comes from (id, iteration,
task, split, phase, digits, question id, k), the question, the rationale, the raw output, the parsed answer,
the gold answer, right or not, the filter's decision and reason, whether it was kept, the audit's verdict and
its wrong steps, and the person's annotation (label, tags, note) when there is one.

Model text is untrusted, and a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula: in the CSV such a text cell gets a leading apostrophe (OWASP's advice), except a plain number
(``-5``); a cell with several lines is defused line by line (CR, LF or CRLF), and quoted. The JSONL is
written as stored. Nothing here imports streamlit or torch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .connect import RunUnavailable, open_store
from .text import parse_audit

#: At most this many rows in one download (the Rationales page says when a filter matches more).
EXPORT_LIMIT = 20_000
SAMPLE_COLUMNS = [
    "id",
    "iteration",
    "task",
    "split",
    "phase",
    "grp",
    "question_id",
    "k",
    "question",
    "rationale",
    "raw_output",
    "answer",
    "gold",
    "correct",
    "decision",
    "kept",
    "reason",
    "audit_verdict",
    "audit_errors",
    "label",
    "tags",
    "note",
]
_SQL_COLS = (
    "id, iteration, task, split, phase, grp, question_id, k, question, rationale, raw_output, answer, gold,"
    " correct, decision, kept, reason, audit_json"
)


def filtered_samples(
    run_dir: str | os.PathLike, f: Any, limit: int = EXPORT_LIMIT, annotations: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, int]:
    """The samples a ``SampleFilter`` matches (id order, at most ``limit``) with ``SAMPLE_COLUMNS``, and how
    many it matches. ``annotations``: ``Annotations.frame()``, to fill label, tags and note."""
    with open_store(run_dir) as con:
        row = con.execute("SELECT id FROM runs ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise RunUnavailable("empty", "The run store holds no run yet.")
        w, p = f.where(row[0])
        total = int(con.execute(f"SELECT count(*) FROM samples WHERE {w}", p).fetchone()[0])
        df = pd.read_sql_query(
            f"SELECT {_SQL_COLS} FROM samples WHERE {w} ORDER BY id LIMIT ?", con, params=p + [int(limit)]
        )
    return with_audit_and_annotations(df, annotations), total


def with_audit_and_annotations(df: pd.DataFrame, annotations: pd.DataFrame | None) -> pd.DataFrame:
    audits = [parse_audit(a) for a in df["audit_json"]] if "audit_json" in df else [None] * len(df)
    df = df.assign(
        correct=df["correct"].astype(bool),
        kept=df["kept"].astype(bool),
        audit_verdict=[(a or {}).get("verdict") for a in audits],
        audit_errors=["; ".join(a["errors"]) if a else None for a in audits],
    )
    ann = (
        {}
        if annotations is None or annotations.empty
        else {int(r.sample_id): r for r in annotations.itertuples(index=False)}
    )
    df["label"] = [_str(getattr(ann.get(int(i)), "label", None)) for i in df["id"]]
    df["tags"] = [",".join(getattr(ann.get(int(i)), "tags", None) or []) or None for i in df["id"]]
    df["note"] = [_str(getattr(ann.get(int(i)), "note", None)) for i in df["id"]]
    return df[SAMPLE_COLUMNS]


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


_NUMBER = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?$")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse_line(v: str) -> str:
    if v[:1] in _FORMULA_START and not _NUMBER.match(v.strip()):
        return "'" + v
    return v


def _defuse(v: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe; numbers stay numbers. Each
    line of a multi-line cell (split on CR, LF or CRLF) is defused on its own, for a reader that splits it."""
    if not isinstance(v, str):
        return v
    parts = _LINE_BREAK.split(v)  # text, break, text, break, ...: the breaks are kept as they are
    return "".join(p if i % 2 else _defuse_line(p) for i, p in enumerate(parts))


def to_csv(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with a byte-order mark, so that a spreadsheet reads it as UTF-8), formula cells defused, and
    every cell holding a CR or an LF quoted (rows end in CRLF, so both characters make the writer quote)."""
    safe = df.copy()
    for c in safe.columns:
        if safe[c].dtype == object or pd.api.types.is_string_dtype(safe[c]):
            safe[c] = safe[c].map(_defuse)
    return safe.to_csv(index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).encode("utf-8-sig")


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def to_jsonl(df: pd.DataFrame, columns: Sequence[str] | None = None) -> bytes:
    """One JSON object per row, the text as stored."""
    cols = list(columns or df.columns)
    lines = [
        json.dumps({c: _plain(v) for c, v in zip(cols, row)}, ensure_ascii=False)
        for row in df[cols].itertuples(index=False, name=None)
    ]
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


#: The Compare page's columns in a download.
COMPARE_COLUMNS = [
    "question_id",
    "grp",
    "question",
    "gold",
    "a_id",
    "a_answer",
    "a_correct",
    "a_decision",
    "a_text",
    "b_id",
    "b_answer",
    "b_correct",
    "b_decision",
    "b_text",
    "answer_changed",
    "rationale_changed",
]


def compare_frame(rows: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    """The Compare rows for a download, with the two sides named in two columns."""
    out = rows[COMPARE_COLUMNS].rename(columns={"a_text": "a_rationale", "b_text": "b_rationale"})
    out.insert(0, "side_b", label_b)
    out.insert(0, "side_a", label_a)
    return out


__all__ = [
    "COMPARE_COLUMNS",
    "EXPORT_LIMIT",
    "SAMPLE_COLUMNS",
    "compare_frame",
    "filtered_samples",
    "to_csv",
    "to_jsonl",
    "with_audit_and_annotations",
]
