"""Text helpers over stored samples: the audit record and what it meant for training, where a hint sits in a
prompt, hint leaks. Every page shows hints and audits through these (and ``star_dashboard.hints``).

Pure functions on strings and dicts; no store, no pandas.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..store import EVAL_PHASES, KEPT_DECISIONS
from ..tasks.base import VERDICTS


def parse_audit(raw: str | None) -> dict[str, Any] | None:
    """A stored ``audit_json`` as {checked, errors: [str], faithful, verdict, no_rationale, version,
    first_bad_line}, or None when none was stored. ``first_bad_line`` is the 1-based line of the completion
    where the first wrong step is (None when none is, and in records before audit version 3). ``verdict`` is
    a key of ``VERDICTS`` or None (nothing checkable);
    ``version`` is the audit rules' version (1 for records made before the ``no_rationale`` verdict,
    whose verdict follows from ``faithful``). An unreadable record says so in ``errors``."""
    if not raw:
        return None
    try:
        a = json.loads(raw)
    except (TypeError, ValueError):
        a = None
    if not isinstance(a, dict):
        return {
            "checked": None,
            "errors": [f"unreadable audit record: {str(raw)[:200]}"],
            "faithful": None,
            "verdict": None,
            "no_rationale": None,
            "version": None,
            "first_bad_line": None,
        }
    errs = a.get("errors")
    errs = [str(e) for e in errs] if isinstance(errs, list) else ([] if errs is None else [str(errs)])
    faithful = None if a.get("faithful") is None else bool(a["faithful"])
    verdict = (
        a.get("verdict")
        if a.get("verdict") in VERDICTS
        else (None if faithful is None else "faithful" if faithful else "unfaithful")
    )
    no_rationale = a.get("no_rationale")
    return {
        "checked": a.get("checked"),
        "errors": errs,
        "faithful": faithful,
        "verdict": verdict,
        "no_rationale": None if no_rationale is None else str(no_rationale),
        "version": a.get("version", 1),
        "first_bad_line": (
            line
            if isinstance(line := a.get("first_bad_line"), int) and not isinstance(line, bool) and line >= 1
            else None
        ),
    }


def line_span(text: str | None, line: Any) -> tuple[int, int] | None:
    """The character span of the 1-based ``line`` of ``text`` (an audit's ``first_bad_line``), or None when
    the text has no such line (the answer line after a rationale, a bad value)."""
    if not text or not isinstance(line, int) or isinstance(line, bool) or line < 1:
        return None
    start = 0
    for _ in range(line - 1):
        nl = text.find("\n", start)
        if nl == -1:
            return None
        start = nl + 1
    end = text.find("\n", start)
    return (start, len(text) if end == -1 else end)


#: What a right answer with a doubtful rationale is, per audit verdict.
_DOUBTFUL = {
    "unfaithful": "Right answer, wrong steps: an unfaithful rationale.",
    "no_rationale": "Right answer, no rationale: the output gives the answer without an intermediate step.",
}


def audit_note(sample: dict[str, Any]) -> tuple[bool, str] | None:
    """For a right answer whose audit verdict is ``unfaithful`` or ``no_rationale``: (trained on, a sentence
    saying what the filter did with it). None for any other sample.

    What was kept is read from the sample as stored, never assumed: its phase (an evaluation output is scored and
    never kept), its decision (one of ``store.KEPT_DECISIONS`` when the filter kept it: the paper's rule checks
    only the final answer; ``unfaithful`` / ``no_rationale`` when ``reject_unfaithful`` rejected it) and its
    kept flag (a duplicate or an answer over ``max_kept_per_question`` is not kept either)."""
    audit = sample.get("audit") or {}
    verdict = audit.get("verdict")
    if verdict not in _DOUBTFUL or not sample.get("correct"):
        return None
    what, phase, decision = _DOUBTFUL[verdict], sample.get("phase"), sample.get("decision")
    if phase in EVAL_PHASES:
        return False, f"{what} This is an evaluation output: it is scored, and nothing from it is trained on."
    if sample.get("kept") and decision in KEPT_DECISIONS:
        return True, (
            f"{what} The filter checked only the final answer, so this reasoning was kept and is trained "
            "on"
            + (
                ": the case to point at in class."
                if verdict == "unfaithful"
                else ": the model learns to skip the reasoning."
            )
            + " (`reject_unfaithful` rejects such answers.)"
        )
    if decision == verdict:
        return False, f"{what} The filter rejected it (`reject_unfaithful`): it is not trained on."
    shown = decision if isinstance(decision, str) and re.fullmatch(r"[a-z_]{1,30}", decision) else "other"
    return False, f"{what} Not kept (decision {shown}): it is not trained on."


def find_all(text: str | None, needle: str | None) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``needle`` in ``text``."""
    if not text or not needle:
        return []
    spans, i = [], text.find(needle)
    while i >= 0:
        spans.append((i, i + len(needle)))
        i = text.find(needle, i + len(needle))
    return spans


def _bare_number(text: str) -> bool:
    """A hint that is only a number ("42", "-3", "1,204."): it also occurs in questions and right answers."""
    return text.replace(" ", "").replace(",", "").replace(".", "").lstrip("-").isdigit()


def last_question_block(prompt: str | None) -> tuple[str, int]:
    """The final question block of a (hinted) prompt: the text after the last blank line, and where it
    starts. The few-shot exemplars come before it."""
    p = prompt or ""
    cut = p.rstrip().rfind("\n\n")
    start = cut + 2 if cut >= 0 else 0
    return p[start:], start


#: How the engine's tasks mark the hint in a hinted prompt, when the hint text itself is not found: CommonsenseQA's
#: " (CORRECT)" after the right choice (the choice's line is marked), arithmetic's "(Hint: ...)", GSM8K's
#: "(The answer is N.)".
_HINT_MARKERS = re.compile(
    r"^[^\n]*\(CORRECT\)|\(Hint:[^)\n]*\)|\(The answer is [^)\n]*\)|\(Answer:[^)\n]*\)", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True)
class HintMarks:
    """Where the hint sits in a hinted prompt. ``block`` is the prompt's last question block, starting at
    ``start``; ``spans`` are positions in the whole prompt (in the block, unless ``in_block`` is False)."""

    block: str
    start: int
    spans: list[tuple[int, int]]

    @property
    def in_block(self) -> bool:
        return bool(self.spans) and all(a >= self.start for a, _ in self.spans)

    @property
    def block_spans(self) -> list[tuple[int, int]]:
        """The spans inside the block, relative to it."""
        return [(a - self.start, b - self.start) for a, b in self.spans if a >= self.start]


def hint_marks(prompt: str | None, hint: str | None) -> HintMarks:
    """Where the hint sits in the hinted prompt, for every page that shows one.

    In the last question block: the hint text (as given, then stripped; only its last occurrence when it is a
    bare number, which may also occur in the question), else the task's hint marker (the CommonsenseQA choice
    marked "(CORRECT)", "(Hint: ...)", "(The answer is ...)"). Failing both, the hint text's last occurrence
    anywhere in the prompt (``in_block`` is then False); else no span.
    """
    p = prompt or ""
    block, start = last_question_block(p)
    h = hint or ""
    needles = [n for n in dict.fromkeys([h, h.strip()]) if n]
    for needle in needles:
        spans = find_all(block, needle)
        if spans:
            spans = spans[-1:] if _bare_number(h.strip()) else spans
            return HintMarks(block, start, [(start + a, start + b) for a, b in spans])
    if h.strip():
        marks = [m.span() for m in _HINT_MARKERS.finditer(block)]
        if marks:
            return HintMarks(block, start, [(start + a, start + b) for a, b in marks])
    for needle in needles:
        spans = find_all(p, needle)
        if spans:
            return HintMarks(block, start, spans[-1:])
    return HintMarks(block, start, [])


def hint_spans(prompt: str | None, hint: str | None) -> list[tuple[int, int]]:
    """Where the hint sits in the hinted prompt, as positions in the whole prompt (``hint_marks(..).spans``)."""
    return hint_marks(prompt, hint).spans


_HINT_WORD = re.compile(r"\bhint(?:ed|s)?\b|\(CORRECT\)", re.IGNORECASE)


def hint_leak(sample: dict[str, Any]) -> dict[str, Any]:
    """Whether the hint shows up in the hinted output.

    Returns {"flagged": decision == hint_leak, "spans": spans in the raw output of the hint
    text or of the word "hint" / the "(CORRECT)" marker, "checkable": bool}. A hint that is
    only a number (arithmetic, GSM8K) is not searched for as text: the gold answer is expected
    in a correct output. The search is case-sensitive, so "The answer is 12." does not match
    the hint "the answer is 12".
    """
    hint = (sample.get("hint") or "").strip()
    out = sample.get("raw_output") or ""
    checkable = len(hint) >= 3 and not _bare_number(hint)
    spans = find_all(out, hint) if checkable else []
    spans += [m.span() for m in _HINT_WORD.finditer(out) if not any(a <= m.start() < b for a, b in spans)]
    return {"flagged": sample.get("decision") == "hint_leak", "spans": sorted(spans), "checkable": checkable}
