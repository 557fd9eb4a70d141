"""The vocabularies of the store's text columns, defined once.

The schema's comments and every SQL list of phases in the schema text (the aggregate tables' triggers and
selects) are built from these names, so a phase or a decision is named in one place. Nothing here imports
anything of star.
"""

from __future__ import annotations

from collections.abc import Iterable

#: ``iterations.stage``, in order. Iteration i >= 1 goes through all of them. Iteration 0 goes
#: pending -> done, or with a warm start pending -> trained (the warm-start adapter) -> done.
STAGES = ("pending", "sampled", "rationalized", "trained", "done")
#: ``samples.phase``: what produced the row, in words.
PHASES = {
    "sample": "first attempt",
    "rationalize": "hinted retry",
    "warm_start": "warm start: reference rationale (supervised, not bootstrapped)",
    "eval": "evaluation",
    "warm_eval": "evaluation after the warm start",
    "direct_eval": "direct-answer evaluation (few-shot, no rationale)",
}
#: The split each phase reads.
PHASE_SPLIT = {
    "sample": "train",
    "rationalize": "train",
    "warm_start": "train",
    "eval": "eval",
    "warm_eval": "eval",
    "direct_eval": "eval",
}
#: Phases that evaluate a model on the eval split: nothing is kept from them.
EVAL_PHASES = ("eval", "warm_eval", "direct_eval")
#: ``samples.decision`` (star_core.filtering decides all but ``reference``).
DECISIONS = (
    "correct",
    "rationalized",
    "reference",
    "wrong",
    "unparsable",
    "truncated",
    "hint_leak",
    "unfaithful",
    "no_rationale",
    "duplicate",
    "over_limit",
)
#: Decisions that make a sample a training example.
KEPT_DECISIONS = ("correct", "rationalized", "reference")
#: ``train_examples.source`` of a kept sample, by its phase.
TRAIN_SOURCE = {"sample": "correct", "rationalize": "rationalized", "warm_start": "reference"}
#: ``question_outcomes`` covers these phases and iterations below this (a 64-bit mask per question).
OUTCOME_PHASES = ("sample", "eval", "warm_eval")
OUTCOME_BITS = 63
#: The ``meta`` key prefix of iteration t's curriculum frontier record (``curriculum.<t>``, star_core.curriculum).
FRONTIER_PREFIX = "curriculum."


def sql_list(names: Iterable[str]) -> str:
    """An SQL list of fixed vocabulary names (never user input): ``('eval', 'warm_eval')``."""
    return "(" + ", ".join(f"'{n}'" for n in names) + ")"


def bars(names: Iterable[str]) -> str:
    """Names as a schema comment lists them: ``sample | eval | warm_eval``."""
    return " | ".join(names)
