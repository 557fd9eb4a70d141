"""Text helpers over stored samples: the audit record, where a hint sits in a prompt, hint leaks.

Pure functions on strings and dicts; no store, no pandas.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..tasks.base import VERDICTS


def parse_audit(raw: str | None) -> dict[str, Any] | None:
    """A stored ``audit_json`` as {checked, errors: [str], faithful, verdict, no_rationale, version}, or
    None when none was stored. ``verdict`` is a key of ``VERDICTS`` or None (nothing checkable);
    ``version`` is the audit rules' version (1 for records made before the ``no_rationale`` verdict,
    whose verdict follows from ``faithful``). An unreadable record says so in ``errors``."""
    if not raw:
        return None
    try:
        a = json.loads(raw)
    except (TypeError, ValueError):
        a = None
    if not isinstance(a, dict):
        return {"checked": None, "errors": [f"unreadable audit record: {str(raw)[:200]}"], "faithful": None,
                "verdict": None, "no_rationale": None, "version": None}
    errs = a.get("errors")
    errs = [str(e) for e in errs] if isinstance(errs, list) else ([] if errs is None else [str(errs)])
    faithful = None if a.get("faithful") is None else bool(a["faithful"])
    verdict = a.get("verdict") if a.get("verdict") in VERDICTS else (
        None if faithful is None else "faithful" if faithful else "unfaithful")
    no_rationale = a.get("no_rationale")
    return {"checked": a.get("checked"), "errors": errs, "faithful": faithful, "verdict": verdict,
            "no_rationale": None if no_rationale is None else str(no_rationale), "version": a.get("version", 1)}



def find_all(text: str | None, needle: str | None) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``needle`` in ``text``."""
    if not text or not needle:
        return []
    spans, i = [], text.find(needle)
    while i >= 0:
        spans.append((i, i + len(needle)))
        i = text.find(needle, i + len(needle))
    return spans


def hint_spans(prompt: str | None, hint: str | None) -> list[tuple[int, int]]:
    """Where the hint sits in the hinted prompt: its occurrences after the last exemplar
    (the final question block), else its last occurrence anywhere. Tries the stripped hint too."""
    if not prompt or not hint:
        return []
    for needle in dict.fromkeys([hint, hint.strip()]):
        if not needle:
            continue
        spans = find_all(prompt, needle)
        if spans:
            tail = prompt.rstrip().rfind("\n\n")
            last = [s for s in spans if s[0] > tail] if tail >= 0 else spans
            return last or spans[-1:]
    if "(CORRECT)" in hint:  # older CommonsenseQA hints named the choice in words: mark the hinted line
        tail = prompt.rstrip().rfind("\n\n")
        at = prompt.rfind("(CORRECT)")
        if at > tail:
            start = prompt.rfind("\n", 0, at) + 1
            return [(start, at + len("(CORRECT)"))]
    return []


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
    checkable = len(hint) >= 3 and not hint.replace(" ", "").replace(",", "").replace(".", "").isdigit()
    spans = find_all(out, hint) if checkable else []
    spans += [m.span() for m in _HINT_WORD.finditer(out)
              if not any(a <= m.start() < b for a, b in spans)]
    return {"flagged": sample.get("decision") == "hint_leak", "spans": sorted(spans), "checkable": checkable}
