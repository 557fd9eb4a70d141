"""The STaR filter: every completion gets a decision and a reason in words.

Decisions (the vocabulary is ``store.DECISIONS``)
- sample phase:      correct (kept) | wrong | unparsable | truncated | unfaithful | no_rationale
                     | duplicate | over_limit (the per-question limit, :func:`limit_per_question`)
- rationalize phase: rationalized (kept) | wrong | unparsable | truncated | hint_leak | unfaithful
                     | no_rationale
- eval phases (``store.EVAL_PHASES``): correct | wrong | unparsable | truncated (never kept)
- warm_start phase:  reference (kept; not judged here: the task's own reference rationale)

By default only the final answer decides (the paper's rule); the rationale
audit is recorded either way. ``reject_unfaithful`` keeps a right answer only
when its audit verdict is faithful, or when nothing was checkable (CommonsenseQA
without a choice named in words); any other verdict (``unfaithful``,
``no_rationale``) becomes the decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .store import EVAL_PHASES, PHASES
from .tasks.base import Audit, Parsed, Problem, Task

#: The phases whose completions the filter judges: every phase but the warm start's reference rationales.
JUDGED_PHASES = tuple(p for p in PHASES if p != "warm_start")


@dataclass(frozen=True)
class Decision:
    decision: str
    kept: bool
    reason: str
    correct: bool
    text: str
    """The completion cut at the task's stop string."""
    parsed: Parsed
    audit: Audit


def _short(s: str | None, n: int = 40) -> str:
    s = "" if s is None else s
    return s if len(s) <= n else s[: n - 1] + "…"


def judge(
    task: Task,
    problem: Problem,
    completion: str,
    truncated: bool,
    phase: str,
    max_new_tokens: int,
    reject_unfaithful: bool = False,
) -> Decision:
    if phase not in JUDGED_PHASES:
        raise ValueError(f"unknown phase {phase!r}")
    text = task.trim(completion)
    parsed = task.parse(text, problem)
    audit = task.audit(problem, parsed) if parsed.answer is not None else Audit()
    correct = task.is_correct(parsed.answer, problem.gold)
    kept_name = "rationalized" if phase == "rationalize" else "correct"
    evaluating = phase in EVAL_PHASES

    def out(decision: str, reason: str, kept: bool = False) -> Decision:
        return Decision(decision, kept and not evaluating, reason, correct, text, parsed, audit)

    if truncated:
        got = f"; the cut text reads answer {_short(parsed.answer)!s}" if parsed.answer is not None else ""
        return out("truncated", f"hit max_new_tokens ({max_new_tokens}) before finishing{got}")
    if parsed.answer is None:
        return out("unparsable", "no final answer found in the output")
    if not correct:
        return out("wrong", f"answered {_short(parsed.answer)}, gold is {_short(problem.gold)}")
    if phase == "rationalize":
        leak = task.hint_leak(problem, text)
        if leak:
            return out("hint_leak", leak)
    audit_note = ""
    if audit.verdict == "unfaithful":
        first = audit.errors[0]
        more = f" (+{len(audit.errors) - 1} more)" if len(audit.errors) > 1 else ""
        if reject_unfaithful and not evaluating:
            return out("unfaithful", f"right answer {parsed.answer} but a step is wrong: {first}{more}")
        audit_note = f"; audit: {len(audit.errors)} of {audit.checked} steps wrong, e.g. {first}"
    elif audit.verdict == "no_rationale":
        if reject_unfaithful and not evaluating:
            return out("no_rationale", f"right answer {parsed.answer} but no rationale: {audit.no_rationale}")
        audit_note = f"; audit: no rationale ({audit.no_rationale})"
    elif audit.verdict == "faithful":
        audit_note = f"; audit: all {audit.checked} steps hold"
    if phase == "rationalize":
        return out(kept_name, f"with the hint, reached the gold answer {problem.gold}{audit_note}", kept=True)
    return out(kept_name, f"answer {parsed.answer} matches gold{audit_note}", kept=True)


def _same_text(text: str) -> str:
    return " ".join(text.split())


def limit_per_question(kept: Sequence[Mapping[str, Any]], max_kept: int) -> list[tuple[int, str, str]]:
    """The per-question limit on kept samples (ReST-EM style), for ``samples_per_question`` > 1.

    ``kept``: the kept samples of one phase, each with ``id``, ``question_id``, ``k`` and ``completion``
    (its training text). Per question, in order of ``k``, the first ``max_kept`` distinct completions
    (whitespace collapsed) stay kept. Returns ``(id, decision, reason)`` for every other one: ``duplicate``
    when its text equals one kept before it, else ``over_limit``. ``max_kept`` 0 keeps every one.
    """
    if max_kept <= 0:
        return []
    out: list[tuple[int, str, str]] = []
    seen: dict[str, list[tuple[str, int]]] = {}
    for r in sorted(kept, key=lambda r: (r["question_id"], r["k"], r["id"])):
        texts = seen.setdefault(r["question_id"], [])
        same = next((k for t, k in texts if t == _same_text(r["completion"])), None)
        if same is not None:
            out.append(
                (
                    r["id"],
                    "duplicate",
                    f"right answer, but the same rationale as sample k={same}, already kept for this question",
                )
            )
        elif len(texts) >= max_kept:
            out.append(
                (
                    r["id"],
                    "over_limit",
                    f"right answer, but {max_kept} distinct rationale"
                    f"{'s are' if max_kept > 1 else ' is'} already kept for this "
                    f"question (max_kept_per_question={max_kept})",
                )
            )
        else:
            texts.append((_same_text(r["completion"]), r["k"]))
    return out
