"""GSM8K (Cobbe et al. 2021): grade-school word problems with a worked solution.

Prompt ``Q: <question>\\nA:``; target `` <solution lines>\\n#### N``. The hinted prompt gives only
the final number: ``Q: <question> (The answer is 18.)\\nA:``. The reference rationale is the
dataset's solution with every ``<<...>>`` calculator annotation removed.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from . import audit as eq
from .base import (
    Audit,
    DataError,
    Exemplar,
    Parsed,
    Problem,
    SyntheticQuestion,
    Task,
    WarmStartError,
    bundled_file,
    hf_rows,
    is_data_file,
    pick_exemplars,
    read_records,
    require,
    seeded_limit,
    split_lead,
)

BUILTIN_EXEMPLARS = Path(__file__).resolve().parent / "exemplars" / "gsm8k.json"
HF_SPLITS = {"train": "train", "eval": "test"}
SAMPLE_FILES = {"train": "train.jsonl", "eval": "test.jsonl"}

_NUM = r"-?\s*\$?\s*-?(?:\d[\d,]*)?\.?\d+"
_FINAL_RE = re.compile(r"####\s*(" + _NUM + ")")
_ANSWER_IS_RE = re.compile(r"the answer is\s*:?\s*(" + _NUM + ")", re.I)
_ANNOT_RE = re.compile(r"<<[^>]*>>")


def normalize_number(s: str) -> str | None:
    """``"$1,080."`` -> ``"1080"``, ``"18.50"`` -> ``"18.5"``, ``"-7"`` -> ``"-7"``; None if not a number."""
    s = re.sub(r"[\s$,]", "", s).rstrip(".")
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def strip_annotations(text: str) -> str:
    return _ANNOT_RE.sub("", text)


def split_answer(answer: str, path: str, line: int | None, field: str = "answer") -> tuple[str, str]:
    """(reference rationale without annotations, gold number) of a dataset answer."""
    if "####" not in answer:
        raise DataError(path, line, field, "no '####' final-answer line")
    body, _, final = answer.rpartition("####")
    gold = normalize_number(final.strip())
    if gold is None:
        raise DataError(path, line, field, f"'####' is not followed by a number: {final.strip()!r}")
    return strip_annotations(body).strip(), gold


def row_to_problem(row: Any, path: str, line: int | None, pid: str) -> Problem:
    question = require(row, "question", str, path, line)
    answer = require(row, "answer", str, path, line)
    reference, gold = split_answer(answer, path, line)
    return Problem(id=pid, question=question, gold=gold, group="all", meta={"reference": reference})


def _qkey(question: str) -> str:
    return " ".join(question.split()).lower()


class GSM8KTask(Task):
    """Options: ``exemplar_file`` (JSON/JSONL ``{question, answer}`` rows replacing the built-in ones)."""

    name = "gsm8k"
    default_exemplars = 6
    stop_strings = ("\n\n", "\nQ:")
    answer_end_chars = "\n"  # a "#### N" line closed by a newline
    warm_start_references = True  # the dataset's solutions

    def __init__(self, exemplar_file: str | None = None):
        self.exemplar_file = exemplar_file
        self._handed_out: set[str] = set()

    # ---- data -----------------------------------------------------------
    def _rows(self, split: str, path: str | None) -> list[Problem]:
        tag = "train" if split == "train" else "test"
        if path is None:
            path = str(bundled_file("gsm8k", SAMPLE_FILES[split]))
        if is_data_file(path):
            recs = list(read_records(path))
            return [row_to_problem(row, str(path), line, f"gsm8k-{tag}-{i}") for i, (line, row) in enumerate(recs)]
        name = "main" if str(path).rstrip("/").lower().endswith("gsm8k") and not Path(path).is_dir() else None
        where = f"{path} [{HF_SPLITS[split]}]"
        return [
            row_to_problem(row, where, line, f"gsm8k-{tag}-{line - 1}")
            for line, row in hf_rows(path, HF_SPLITS[split], name=name)
        ]

    def load(self, split: str, path: str | None = None, limit: int | None = None, seed: int = 0) -> list[Problem]:
        """Ids are ``gsm8k-train-<row>`` / ``gsm8k-test-<row>`` (0-based row of the source; the
        bundled samples are the first rows of the original files, so ids agree with them)."""
        if split not in HF_SPLITS:
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        rows = self._rows(split, path)
        if split == "train":
            ids, questions = self._excluded()
            rows = [p for p in rows if p.id not in ids and _qkey(p.question) not in questions]
        return seeded_limit(rows, limit, seed)

    def warm_start_problems(self, cfg, train: list[Problem], evals: list[Problem]) -> list[Problem]:
        """The first ``warm_start`` questions with a reference solution after the ``n_train`` that STaR uses, in
        the run's seeded order of the training file, none equal to an evaluation question."""
        n = cfg.warm_start
        # the training file in the run's seeded order: STaR's questions are its first n_train
        pool = self.load("train", path=cfg.train_file, limit=cfg.n_train + n, seed=cfg.seed)
        used = {p.id for p in train} | {_qkey(p.question) for p in evals}
        out = [p for p in pool if p.id not in used and _qkey(p.question) not in used and self.reference_rationale(p)][
            :n
        ]
        if len(out) < n:
            raise WarmStartError(
                f"warm_start={n}: the training file holds only {len(out)} questions with a "
                f"reference solution beyond the n_train={cfg.n_train} that STaR uses; lower "
                "warm_start or n_train, or pass a larger --train-file"
            )
        return out

    # ---- exemplars ------------------------------------------------------
    def _read_exemplars(self, path: str | Path) -> list[Exemplar]:
        out = []
        for line, row in read_records(path):
            pid = row.get("id") if isinstance(row, dict) else None
            p = row_to_problem(row, str(path), line, pid if isinstance(pid, str) else f"gsm8k-exemplar-{line}")
            rationale = row.get("rationale")
            if rationale is not None and not isinstance(rationale, str):
                raise DataError(str(path), line, "rationale", f"expected str, got {type(rationale).__name__}")
            out.append(Exemplar(p, (rationale or p.meta["reference"]).strip(), p.gold))
        return out

    def _excluded(self) -> tuple[set[str], set[str]]:
        src = self.exemplar_file or BUILTIN_EXEMPLARS
        exs = self._read_exemplars(src) if Path(src).is_file() else []
        ids = {e.problem.id for e in exs} | {i for i in self._handed_out if not i.startswith("q:")}
        qs = {_qkey(e.problem.question) for e in exs} | {i[2:] for i in self._handed_out if i.startswith("q:")}
        return ids, qs

    @property
    def exemplar_ids(self) -> frozenset[str]:
        """Ids kept out of the training problems (questions equal to an exemplar's are dropped too)."""
        return frozenset(self._excluded()[0])

    def exemplars(self, n: int | None = None, seed: int = 0, path: str | None = None) -> list[Exemplar]:
        n = self.default_exemplars if n is None else n
        src = path or self.exemplar_file or BUILTIN_EXEMPLARS
        exs = pick_exemplars(self._read_exemplars(src), n, seed, str(src))
        self._handed_out |= {e.problem.id for e in exs} | {"q:" + _qkey(e.problem.question) for e in exs}
        return exs

    # ---- prompts --------------------------------------------------------
    def format_question(self, problem: Problem, hint: bool = False) -> str:
        q = f"Q: {problem.question.strip()}"
        if hint:
            q += f" (The answer is {problem.gold}.)"
        return q + "\nA:"

    def format_target(self, rationale: str, answer: str) -> str:
        return f" {rationale.strip()}\n#### {answer}"

    def reference_rationale(self, problem: Problem) -> str | None:
        return problem.meta.get("reference")

    def hint_text(self, problem: Problem) -> str:
        return f"The answer is {problem.gold}."

    # ---- decoding -------------------------------------------------------
    def is_complete(self, completion: str) -> bool:
        """A stop string, or a ``#### N`` line closed by a newline."""
        return (
            super().is_complete(split_lead(completion)[1])
            or re.search(r"####[ \t]*" + _NUM + r"[^\n]*\n", completion) is not None
        )

    def trim(self, completion: str) -> str:
        """Cut at the first stop string, then right after the first ``#### N``."""
        lead, body = split_lead(completion)
        text = lead + super().trim(body)
        m = _FINAL_RE.search(text)
        return text[: m.end()] if m else text

    # ---- reading and grading -------------------------------------------
    def parse(self, completion: str, problem: Problem | None = None) -> Parsed:
        finals = list(re.finditer(r"####", completion))
        if finals:
            last = finals[-1]
            m = re.match(r"\s*(" + _NUM + ")", completion[last.end() :])
            answer = normalize_number(m.group(1)) if m else None
            return Parsed(completion[: last.start()].strip(), answer)
        ms = list(_ANSWER_IS_RE.finditer(completion))
        if ms:
            return Parsed(completion[: ms[-1].start()].strip(), normalize_number(ms[-1].group(1)))
        return Parsed(completion.strip(), None)

    def is_correct(self, answer: str | None, gold: str) -> bool:
        if answer is None:
            return False
        a, g = normalize_number(answer), normalize_number(gold)
        return a is not None and a == g

    def hint_leak(self, problem: Problem, completion: str) -> str | None:
        if "(The answer is" in completion or "(the answer is" in completion:
            return "copies the hint text '(The answer is'"
        reason = eq.hint_phrase_leak(completion)
        if reason:
            return reason
        if self.hint_text(problem) in completion:
            return f"repeats the hint sentence {self.hint_text(problem)!r}"
        return None

    def audit(self, problem: Problem, parsed: Parsed) -> Audit:
        """Every equation chain in the rationale (``48/2 = 24``, ``2 * 3 * 4 = 24``, ``$12 x 5 = $60``).
        A rationale with no equation the audit can verify is ``no_rationale``."""
        audit = eq.audit_equations(strip_annotations(parsed.rationale))
        return audit if audit.checked else Audit(no_rationale="no equation in the rationale that the audit can verify")

    # ---- synthetic questions (the fixture builders' run stores) -----------
    def synthetic_question(self, qi: int, split: str, rng: random.Random) -> SyntheticQuestion:
        """A two-number word problem with a calculator-annotated solution."""
        name, thing = _NAMES[qi % len(_NAMES)], _THINGS[qi % len(_THINGS)]
        x, y = rng.randint(2, 60), rng.randint(2, 60)
        gold = str(x + y)
        q = f"{name} has {x} {thing} and finds {y} more. How many {thing} does {name} have now? [#{qi}]"
        rat = f"{name} starts with {x} {thing}. After finding {y} more: {x} + {y} = <<{x}+{y}={x + y}>>{x + y}."
        return SyntheticQuestion(
            qid=f"gsm-{split}-{qi:05d}",
            grp="all",
            question=q,
            gold=gold,
            block=f"Q: {q}\nA:",
            hblock=f"Q: {q} (Answer: {gold})\nA:",
            hint=f" (Answer: {gold})",
            rationale=rat,
            out=lambda ans: f"{rat}\n#### {ans}",
            wrong=lambda: str(x + y + rng.choice([1, 2, -3, 10])),
            skill=0.15,
        )


#: Names and things of the synthetic word problems.
_NAMES = ["Ava", "Ben", "Cleo", "Dev", "Ema", "Finn", "Gus", "Hana"]
_THINGS = ["apples", "marbles", "stamps", "books", "shells", "coins"]

__all__ = ["GSM8KTask", "normalize_number", "strip_annotations", "split_answer"]
