"""The interface every task implements.

A task knows how to load its data, how to write a plain and a hinted prompt,
how to read an answer out of model text, how to grade it, and how to audit a
rationale's intermediate steps. Nothing here imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer."""

    id: str
    """Stable id (dataset id, or a seeded generated id such as ``add-3d-0017``)."""
    question: str
    """The question as shown to a person (CQA: stem plus choices)."""
    gold: str
    """Canonical gold answer: digits for arithmetic/GSM8K, a letter A-E for CQA."""
    group: str = "all"
    """Reporting group inside the task. Arithmetic: ``"3"`` for 3-digit sums."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Task-specific fields (CQA choices, operands, the reference solution...)."""


@dataclass(frozen=True)
class Exemplar:
    """One few-shot example: a problem with a worked rationale and its answer."""

    problem: Problem
    rationale: str
    answer: str


@dataclass(frozen=True)
class Parsed:
    """What was read out of a completion."""

    rationale: str
    """The reasoning text, without the final answer line."""
    answer: str | None
    """Normalised answer, or None when none was found."""


@dataclass(frozen=True)
class Audit:
    """Result of checking the intermediate steps of a rationale.

    ``checked`` is the number of steps that could be verified; ``errors`` lists
    the steps that do not hold, in words. ``faithful`` is None when nothing
    could be checked.
    """

    checked: int = 0
    errors: tuple[str, ...] = ()

    @property
    def faithful(self) -> bool | None:
        if self.checked == 0:
            return None
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "errors": list(self.errors), "faithful": self.faithful}


class Task(ABC):
    """Base class of the three tasks. See ``star_core.tasks.get_task``."""

    name: str = ""
    #: Completion stops once any of these strings appears after some answer text.
    stop_strings: tuple[str, ...] = ("\n\n",)

    # ---- data -----------------------------------------------------------
    @abstractmethod
    def load(self, split: str, path: str | None = None, limit: int | None = None,
             seed: int = 0) -> list[Problem]:
        """Return problems of ``split`` ("train" or "eval").

        ``path`` is a JSONL file (or a Hugging Face dataset folder) that overrides
        the default source. Bad rows raise ``DataError`` naming file, line, field.
        """

    @abstractmethod
    def exemplars(self, n: int, seed: int = 0, path: str | None = None) -> list[Exemplar]:
        """Few-shot exemplars, fixed for a given seed (or read from ``path``)."""

    # ---- prompts --------------------------------------------------------
    @abstractmethod
    def format_question(self, problem: Problem, hint: bool = False) -> str:
        """The question block up to and including the answer cue (``A:``).

        With ``hint=True`` the gold answer is shown (CQA: " (CORRECT)" after the
        right choice; GSM8K and arithmetic: the answer in the question).
        """

    @abstractmethod
    def format_target(self, rationale: str, answer: str) -> str:
        """The completion text that follows ``format_question``: rationale + answer."""

    def few_shot_prefix(self, exemplars: list[Exemplar], hint: bool = False) -> str:
        """The few-shot block shared by every prompt of a batch."""
        return "".join(
            self.format_question(e.problem, hint=hint) + self.format_target(e.rationale, e.answer) + "\n\n"
            for e in exemplars
        )

    def prompt(self, problem: Problem, exemplars: list[Exemplar], hint: bool = False) -> str:
        return self.few_shot_prefix(exemplars, hint) + self.format_question(problem, hint)

    # ---- reading and grading -------------------------------------------
    @abstractmethod
    def parse(self, completion: str) -> Parsed:
        """Split a completion into rationale and normalised answer."""

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and answer == gold

    def audit(self, problem: Problem, parsed: Parsed) -> Audit:
        """Check the rationale's steps. Default: nothing checkable."""
        return Audit()

    def hint_leak(self, problem: Problem, completion: str) -> str | None:
        """Return a reason when a hinted completion leaks the hint, else None."""
        return None

    def is_complete(self, completion: str) -> bool:
        """True once the completion holds a full answer and decoding can stop."""
        return any(s in completion for s in self.stop_strings)

    def trim(self, completion: str) -> str:
        """Cut a completion at the first stop string (the kept text)."""
        cut = len(completion)
        for s in self.stop_strings:
            i = completion.find(s)
            if i != -1:
                cut = min(cut, i)
        return completion[:cut]


class DataError(ValueError):
    """Bad input data. The message names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = path, line, field
