"""Read-only comparison of one question under two runs, or under two iterations of one run.

A side is a run folder and an iteration; both sides use the same task and phase (``eval`` by default).
Questions are matched by question id; with several samples per question (k > 0) each side's first
sample (lowest k) stands for it. Runs whose question sets differ are compared on the overlap only, and
the result says how many questions each side has that the other lacks.

``diff_html`` marks the words one rationale has and the other lacks, with every character of the
model's text HTML-escaped (the only tags are the ones added here). The diff is quadratic, so it is capped
(``DIFF_MAX_TOKENS`` a side): longer texts are shown side by side without marks, and ``diff_fits`` says so.
Nothing here imports streamlit or torch.
"""

from __future__ import annotations

import difflib
import html
import os
import re
from typing import Any

import pandas as pd

from .connect import RunUnavailable, open_store

#: The filters of the comparison, in words (A and B are the two sides).
FILTERS = {
    "all": "every question in both",
    "a_right_b_wrong": "A right, B wrong",
    "a_wrong_b_right": "A wrong, B right",
    "answer_changed": "the answer changed",
    "rationale_changed": "the rationale changed",
}

_COLS = (
    "id, question_id, k, grp, question, rationale, raw_output, answer, gold, correct, decision, kept, reason,"
    " audit_json"
)


def _side(run_dir: str | os.PathLike, iteration: int, task: str, phase: str) -> pd.DataFrame:
    with open_store(run_dir) as con:
        row = con.execute("SELECT id FROM runs ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise RunUnavailable("empty", "The run store holds no run yet.")
        df = pd.read_sql_query(
            f"SELECT {_COLS} FROM samples WHERE run_id=? AND iteration=? AND task=? AND phase=?"
            " ORDER BY question_id, k, id",
            con,
            params=(row[0], int(iteration), task, phase),
        )
    return df.drop_duplicates("question_id", keep="first")


def compare_choices(run_dir: str | os.PathLike) -> pd.DataFrame:
    """What a side can be in this run: task, phase, iteration, n (samples)."""
    with open_store(run_dir) as con:
        row = con.execute("SELECT id FROM runs ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise RunUnavailable("empty", "The run store holds no run yet.")
        return pd.read_sql_query(
            "SELECT task, phase, iteration, count(*) AS n FROM samples WHERE run_id=?"
            " GROUP BY task, phase, iteration ORDER BY task, phase, iteration",
            con,
            params=(row[0],),
        )


def _norm(text: Any) -> str:
    return " ".join(str(text or "").split())


def compare(
    run_a: str | os.PathLike, it_a: int, run_b: str | os.PathLike, it_b: int, task: str, phase: str = "eval"
) -> dict[str, Any]:
    """Pair the questions of side A (``run_a`` at iteration ``it_a``) with those of side B.

    Returns {"rows": one row per question in both (question_id, grp, question, gold, a_id, b_id, a_answer,
    b_answer, a_correct, b_correct, a_decision, b_decision, a_text, b_text (the rationale, else the raw output),
    answer_changed, rationale_changed, gold_differs), "counts": {filter: questions} over ``FILTERS``,
    "only_a", "only_b": questions one side has and the other lacks, "n_a", "n_b": questions per side}."""
    a, b = _side(run_a, it_a, task, phase), _side(run_b, it_b, task, phase)
    m = a.merge(b, on="question_id", suffixes=("_a", "_b"), how="inner").sort_values("id_a", kind="stable")
    rows = pd.DataFrame(
        {
            "question_id": m["question_id"],
            "grp": m["grp_a"],
            "question": m["question_a"],
            "gold": m["gold_a"],
            "a_id": m["id_a"].astype(int),
            "b_id": m["id_b"].astype(int),
            "a_answer": m["answer_a"],
            "b_answer": m["answer_b"],
            "a_correct": m["correct_a"].astype(bool),
            "b_correct": m["correct_b"].astype(bool),
            "a_decision": m["decision_a"],
            "b_decision": m["decision_b"],
            "a_text": [r if isinstance(r, str) else o for r, o in zip(m["rationale_a"], m["raw_output_a"])],
            "b_text": [r if isinstance(r, str) else o for r, o in zip(m["rationale_b"], m["raw_output_b"])],
            "gold_differs": m["gold_a"].astype(str) != m["gold_b"].astype(str),
        }
    ).reset_index(drop=True)
    rows["answer_changed"] = [_norm(x) != _norm(y) for x, y in zip(rows["a_answer"], rows["b_answer"])]
    rows["rationale_changed"] = [_norm(x) != _norm(y) for x, y in zip(rows["a_text"], rows["b_text"])]
    qa, qb = set(a["question_id"]), set(b["question_id"])
    return {
        "rows": rows,
        "counts": {k: int(filter_mask(rows, k).sum()) for k in FILTERS},
        "only_a": len(qa - qb),
        "only_b": len(qb - qa),
        "n_a": len(qa),
        "n_b": len(qb),
    }


def filter_mask(rows: pd.DataFrame, name: str) -> pd.Series:
    """The rows of ``compare(...)["rows"]`` that a filter of ``FILTERS`` keeps."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; one of {', '.join(FILTERS)}")
    if rows.empty or name == "all":
        return pd.Series(True, index=rows.index)
    if name == "a_right_b_wrong":
        return rows["a_correct"] & ~rows["b_correct"]
    if name == "a_wrong_b_right":
        return ~rows["a_correct"] & rows["b_correct"]
    return rows[name].astype(bool)


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
#: The word diff is quadratic in the tokens (words, runs of spaces, punctuation marks): above this many on a
#: side (about 1,200 words; 2,000 tokens took a second), the two texts are shown side by side without marks.
DIFF_MAX_TOKENS = 2_500


def _tokens(text: str | None) -> list[str]:
    return _TOKEN.findall(text or "")


def diff_fits(a: str | None, b: str | None) -> bool:
    """Whether both texts are short enough (``DIFF_MAX_TOKENS`` each) to mark their differences word by word."""
    return all(len(t) <= DIFF_MAX_TOKENS for t in (_tokens(a), _tokens(b)))


def diff_ops(a: str | None, b: str | None) -> list[tuple[str, str, str]]:
    """Word-level differences of two texts: (op, text of a, text of b) with op equal | delete | insert | replace
    (difflib.SequenceMatcher over words, spaces and punctuation marks). Texts over the cap (``diff_fits``)
    come back as one replace, unmarked."""
    ta, tb = _tokens(a), _tokens(b)
    if len(ta) > DIFF_MAX_TOKENS or len(tb) > DIFF_MAX_TOKENS:
        return [("replace", a or "", b or "")] if (a or b) else []
    sm = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    return [(op, "".join(ta[i1:i2]), "".join(tb[j1:j2])) for op, i1, i2, j1, j2 in sm.get_opcodes()]


_PRE = (
    '<pre class="star-diff" style="white-space:pre-wrap;word-break:break-word;font-size:0.85rem;'
    'background:rgba(128,128,128,0.08);padding:0.6rem;border-radius:0.4rem;max-height:28rem;overflow:auto">'
)
_DEL = '<del style="background:#ffc9c9;color:inherit;text-decoration:line-through">'
_INS = '<ins style="background:#b2f2bb;color:inherit;text-decoration:none">'


def diff_html(a: str | None, b: str | None) -> tuple[str, str]:
    """Two <pre> blocks: A with what B lacks struck out (<del>), B with what A lacks marked (<ins>). Every
    character of both texts goes through html.escape. Over the cap (``diff_fits`` is False): both texts
    whole, without marks."""
    if not diff_fits(a, b):
        return _PRE + html.escape(a or "", quote=True) + "</pre>", _PRE + html.escape(b or "", quote=True) + "</pre>"
    pa, pb = [], []
    for op, x, y in diff_ops(a, b):
        ex, ey = html.escape(x, quote=True), html.escape(y, quote=True)
        if op == "equal":
            pa.append(ex)
            pb.append(ey)
            continue
        if x:
            pa.append(_DEL + ex + "</del>")
        if y:
            pb.append(_INS + ey + "</ins>")
    return _PRE + "".join(pa) + "</pre>", _PRE + "".join(pb) + "</pre>"


def side_label(run_name: str, iteration: int) -> str:
    return f"{run_name} · iteration {iteration}" + (" (few-shot)" if int(iteration) == 0 else "")


__all__ = [
    "FILTERS",
    "compare",
    "compare_choices",
    "DIFF_MAX_TOKENS",
    "diff_fits",
    "diff_html",
    "diff_ops",
    "filter_mask",
    "side_label",
]
