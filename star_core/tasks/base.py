"""The interface every task implements.

A task knows how to load its data, how to write a plain and a hinted prompt,
how to read an answer out of model text, how to grade it, and how to audit a
rationale's intermediate steps. Nothing here imports torch.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar


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


#: Audit verdicts, and what each says in words. A sample with no verdict had nothing checkable.
VERDICTS = {
    "faithful": "every checked step holds",
    "unfaithful": "some steps are wrong",
    "no_rationale": "no rationale: no verified intermediate step, only the answer or the question restated",
}
#: Version of the audit rules, recorded with every audit (records without one are version 1).
#: 2: a sum of 2 digits or more, and a GSM8K answer, need a verified intermediate step (the
#: ``no_rationale`` verdict); before, a bare answer whose equation held was faithful.
#: 3: every step checked: a 1-digit sum needs an intermediate step too (a bare ``5 + 0 = 5.`` is
#: ``no_rationale``), text with digits the audit cannot read (``4o``) is a wrong step, the columns format's
#: closing carry line is checked, the carry format is checked line by line, and every verdict names the
#: first line that fails (``first_bad_line``).
AUDIT_VERSION = 3


@dataclass(frozen=True)
class Audit:
    """Result of checking the intermediate steps of a rationale.

    ``checked`` is the number of steps that could be verified; ``errors`` lists
    the steps that do not hold, in words; ``no_rationale`` says, in words, that the
    task needs a verified intermediate step and the rationale shows none.
    ``verdict`` is a key of ``VERDICTS``, or None when nothing could be checked.
    ``first_bad_line`` is the 1-based line of the completion (its rationale's lines, then the answer's) where
    the first wrong step is, when the task can say (audits before version 3 do not store it).
    """

    checked: int = 0
    errors: tuple[str, ...] = ()
    no_rationale: str | None = None
    first_bad_line: int | None = None

    @property
    def verdict(self) -> str | None:
        if self.errors:
            return "unfaithful"
        if self.no_rationale:
            return "no_rationale"
        return "faithful" if self.checked else None

    @property
    def faithful(self) -> bool | None:
        v = self.verdict
        return None if v is None else v == "faithful"

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "errors": list(self.errors),
            "faithful": self.faithful,
            "verdict": self.verdict,
            "no_rationale": self.no_rationale,
            "first_bad_line": self.first_bad_line if self.errors else None,
            "version": AUDIT_VERSION,
        }


@dataclass(frozen=True)
class SyntheticQuestion:
    """A made-up question of a task, for the synthetic run stores of the tests and the benchmarks
    (``star_fixtures.synthetic``): what its stored samples show, and how the synthetic model answers it."""

    qid: str
    grp: str
    question: str
    gold: str
    block: str
    """The question block of the plain prompt (and of a training example)."""
    hblock: str
    """The question block of the hinted prompt."""
    hint: str
    rationale: str
    """A right rationale."""
    out: Callable[[str], str]
    """The completion that gives the answer passed in."""
    wrong: Callable[[], str]
    """A wrong answer (drawn from the question's random stream)."""
    skill: float
    """The share of right answers of the synthetic model of iteration 0."""
    rationale_of: Callable[[str], str] = lambda raw: raw.rsplit("\n", 1)[0]
    """The rationale of a completion (the text before its answer)."""
    audited: bool = True
    """Whether the audit finds steps to check (False: nothing checkable)."""
    hint_leak: tuple[str, str] | None = None
    """A hinted retry's completion that gives the hint away, and its rationale (None: the task has none)."""


class Task(ABC):
    """Base class of the tasks. See ``star_core.tasks`` (the registry) and ``get_task``."""

    name: str = ""
    #: Completion stops once any of these strings appears after some answer text.
    stop_strings: tuple[str, ...] = ("\n\n",)
    #: Last characters of the answer pattern ``is_complete`` looks for (beyond the stop strings).
    answer_end_chars: str = ""

    @property
    def stop_chars(self) -> str:
        """The characters a completion can only become complete on: the last character of each
        stop string and of the answer pattern. The decoder runs ``is_complete`` only when a
        sampled token holds one of them (tests check this on recorded outputs)."""
        return "".join(sorted({s[-1] for s in self.stop_strings} | set(self.answer_end_chars)))

    #: How many few-shot exemplars the task uses when the caller does not say.
    default_exemplars: int = 4

    # ---- data -----------------------------------------------------------
    @abstractmethod
    def load(self, split: str, path: str | None = None, limit: int | None = None, seed: int = 0) -> list[Problem]:
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
    def parse(self, completion: str, problem: Problem | None = None) -> Parsed:
        """Split a completion into rationale and normalised answer.

        ``problem`` is optional context: CommonsenseQA uses it to accept an
        answer given only as the text of one choice. Every task parses without it.
        """

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and answer == gold

    def audit(self, problem: Problem, parsed: Parsed) -> Audit:
        """Check the rationale's steps. Default: nothing checkable."""
        return Audit()

    def hint_leak(self, problem: Problem, completion: str) -> str | None:
        """Return a reason when a hinted completion leaks the hint, else None."""
        return None

    def reference_rationale(self, problem: Problem) -> str | None:
        """A known-good rationale for ``problem`` (for ``format_target``), or None."""
        return None

    def direct_rationale(self, problem: Problem) -> str | None:
        """What a direct-answer exemplar shows before the answer (no reasoning), or None when the task
        has no direct-answer baseline."""
        return None

    def direct_exemplars(self, exemplars: list[Exemplar]) -> list[Exemplar]:
        """The same exemplars without their rationales, for the direct-answer baseline."""
        out = []
        for e in exemplars:
            bare = self.direct_rationale(e.problem)
            if bare is None:
                raise ValueError(f"the {self.name} task has no direct-answer baseline here (see direct_rationale)")
            out.append(Exemplar(e.problem, bare, e.answer))
        return out

    def hint_text(self, problem: Problem) -> str:
        """The hint shown in the hinted prompt, in words (for reports and the dashboard)."""
        return f"the answer is {problem.gold}"

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

    # ---- what the rest of the engine asks of a task --------------------
    #: True when ``reference_rationale`` writes a known-good rationale for the training questions, so that a
    #: supervised warm start (``warm_start``) can train on them; ``warm_start_problems`` picks its questions.
    warm_start_references: bool = False
    #: True when the questions' groups are digit counts (``curriculum=digits`` needs that).
    digit_groups: bool = False
    #: What the direct-answer baseline needs, in words, for the config's error ("" when the task has none).
    direct_baseline_needs: str = ""

    @classmethod
    def from_config(cls, cfg: Any) -> Task:
        """The task of a run, built from its settings (a ``StarConfig``). The default takes none of them."""
        return cls()

    @classmethod
    def supports_direct_baseline(cls, cfg: Any) -> bool:
        """Whether ``direct_baseline`` can run with these settings (``direct_rationale`` writes a bare answer)."""
        return False

    def warm_start_problems(self, cfg: Any, train: list[Problem], evals: list[Problem]) -> list[Problem]:
        """The ``cfg.warm_start`` questions of the warm start, none of them a training or evaluation question.
        Raises WarmStartError, naming the setting, when the data cannot supply them."""
        raise WarmStartError(f"warm_start: the {self.name} task has no reference rationales")

    def synthetic_question(self, qi: int, split: str, rng: random.Random) -> SyntheticQuestion:
        """Question ``qi`` of ``split`` in a synthetic run store (``star_fixtures.synthetic``), drawn from
        ``rng``. Only the fixture builders ask for it."""
        raise NotImplementedError(f"the {self.name} task has no synthetic questions")


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


class WarmStartError(ValueError):
    """The data cannot supply the warm start's questions (the message names the settings)."""


# ---- helpers shared by the task modules ------------------------------------
T = TypeVar("T")

DATA_SUFFIXES = (".jsonl", ".json")


def split_lead(text: str) -> tuple[str, str]:
    """``(leading whitespace, rest)``: the tasks look for stop strings only after the answer
    has started, so a completion opening with a newline is not cut to nothing."""
    rest = text.lstrip()
    return text[: len(text) - len(rest)], rest


def sample_data_dir() -> Path:
    """The repository's bundled ``sample_data`` folder (may not exist in an installed copy)."""
    import star_core

    return Path(star_core.__file__).resolve().parent.parent / "sample_data"


def bundled_file(task: str, name: str) -> Path:
    """``sample_data/<task>/<name>``; a clear DataError when the folder is missing."""
    folder = sample_data_dir() / task
    path = folder / name
    if not path.is_file():
        raise DataError(
            str(path),
            None,
            None,
            f"bundled sample data for {task} not found; pass --train-file/--eval-file "
            f"(a JSONL file or a Hugging Face dataset) instead",
        )
    return path


def is_data_file(path: str | Path) -> bool:
    """True for a path we parse ourselves (``.jsonl`` / ``.json``)."""
    return str(path).lower().endswith(DATA_SUFFIXES)


def read_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_no, obj)`` from a JSONL file (or a ``.json`` file).

    Blank lines are skipped. A ``.json`` file that holds one JSON array (or an
    object with an ``"exemplars"`` / ``"rows"`` list) yields its items with
    their 1-based position as the line number. Malformed JSON raises DataError.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(str(path), None, None, "file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(str(path), None, None, f"not UTF-8 text: {e}") from e
    if not text.strip():
        raise DataError(str(path), None, None, "the file is empty (no questions)")
    if p.suffix.lower() == ".json" and text.lstrip()[:1] in ("[", "{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # maybe JSON Lines in a .json file: fall through
        if isinstance(whole, dict):
            for key in ("exemplars", "rows", "data"):
                if isinstance(whole.get(key), list):
                    whole = whole[key]
                    break
            else:
                whole = [whole]
        if isinstance(whole, list):
            yield from enumerate(whole, start=1)
            return
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(str(path), line_no, None, f"malformed JSON: {e.msg} (column {e.colno})") from e
        yield line_no, obj


def hf_rows(path: str, split: str, name: str | None = None) -> Iterator[tuple[int, dict]]:
    """Rows of a Hugging Face dataset (hub name or local folder) as ``(row_index + 1, row)``.

    ``.parquet`` / ``.csv`` files are read with the matching packaged builder.
    """
    import datasets  # lazy: heavy, and not needed for JSONL input

    low = str(path).lower()
    try:
        if Path(path).is_file() and low.endswith((".parquet", ".csv")):
            ds = datasets.load_dataset(low.rsplit(".", 1)[1], data_files=str(path), split="train")
        else:
            try:
                ds = datasets.load_dataset(path, name=name, split=split)
            except ValueError as e:
                if name is None or "config" not in str(e).lower():
                    raise
                ds = datasets.load_dataset(path, split=split)
    except DataError:
        raise
    except Exception as e:  # report any loader failure as a data error
        raise DataError(
            str(path), None, None, f"datasets.load_dataset could not read split {split!r}: {type(e).__name__}: {e}"
        ) from e
    for i, row in enumerate(ds):
        yield i + 1, dict(row)


def require(row: Any, key: str, typ: type | tuple[type, ...], path: str, line: int | None, prefix: str = "") -> Any:
    """``row[key]`` checked for presence and type; DataError naming the field otherwise."""
    fname = f"{prefix}{key}"
    if not isinstance(row, dict):
        raise DataError(
            str(path), line, prefix.rstrip(".") or None, f"expected a JSON object, got {type(row).__name__}"
        )
    if key not in row or row[key] is None:
        raise DataError(str(path), line, fname, "missing field")
    value = row[key]
    bad_bool = isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,))
    if not isinstance(value, typ) or bad_bool:
        want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise DataError(str(path), line, fname, f"expected {want}, got {type(value).__name__}")
    return value


def seeded_limit(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """All items in order when ``limit`` is None, else the first ``limit`` after a seeded shuffle.

    The shuffle depends only on ``seed`` and the number of items, so a smaller
    limit gives a prefix of a larger one.
    """
    items = list(items)
    if limit is None:
        return items
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order[:limit]]


def pick_exemplars(items: Sequence[T], n: int, seed: int, source: str) -> list[T]:
    """The first ``n`` items for seed 0, else a seeded sample of ``n``; error if too few."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > len(items):
        raise ValueError(f"{source} holds {len(items)} exemplars, {n} requested")
    if seed == 0:
        return list(items[:n])
    return random.Random(seed).sample(list(items), n)
