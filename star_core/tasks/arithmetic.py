"""n-digit addition, generated from a seed, in three rationale formats.

* ``decomposition`` (default): ``Q: What is 47 + 38?\\nA:`` then
  `` 47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85. The answer is 85.``
* ``columns``: `` Add the ones: 7 + 8 = 15, write 5 carry 1. Add the tens: 4 + 3 + 1 = 8, write 8.
  The answer is 85.``
* ``carry``: a line per digit from the right, operands padded to one length (star_core.tasks.arith_carry):
  ``47 + 38, carry 0, result none.`` / ``7 + 8 + 0 = 15, digit 5, carry 1. Left 4 + 3, result 5.`` / ... /
  ``Carry 0, result 85.`` / ``The answer is 85.``
* ``scratchpad`` (the paper's shape): ``Input:`` with the operands' digits, ``Target:``, a
  ``<scratch>`` block with one line per column and its carry ``C: 0``/``C: 1``, ``</scratch>``,
  then the answer's digits.

The audit re-does the addition and names every step of the rationale that is wrong.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from . import arith_carry as carry
from . import audit as eq
from .arith_audit import (
    PLACES,  # noqa: F401  (re-exported)
    audit_columns,
    audit_decomposition,
    audit_scratch,
    scratch_lines,
)
from .arith_audit import columns as _columns
from .arith_audit import digits as _digits
from .arith_audit import norm_int as _norm_int
from .arith_audit import place as _place
from .arith_audit import spaced as _spaced
from .base import (
    Audit,
    DataError,
    Exemplar,
    Parsed,
    Problem,
    SyntheticQuestion,
    Task,
    WarmStartError,
    is_data_file,
    read_records,
    require,
    seeded_limit,
    split_lead,
)

#: The rationale formats (``arith_format``), the default first: the one the bundled model can start from.
FORMATS = ("decomposition", "columns", "carry", "scratchpad")
DEFAULT_FORMAT = FORMATS[0]
#: Digit counts of training and evaluation sums by default (a run's ``train_digits`` and ``eval_digits``).
TRAIN_DIGITS = (1, 3)
EVAL_DIGITS = (1, 4)
#: Exemplars are excluded from training problems; this many per seed are reserved.
RESERVED_EXEMPLARS = 16

_ANSWER_RE = re.compile(r"the answer is\s*:?\s*(-?\d(?:[\d,]|\s(?=\d))*)", re.I)
_SCRATCH_ANSWER_RE = re.compile(r"</scratch>[ \t]*\n?[ \t]*(-?\d(?:[\d,]|[ \t](?=\d))*)")


def _parse_range(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        lo = hi = value
    else:
        lo, hi = (int(v) for v in value)
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must be 1 <= low <= high, got {value!r}")
    return lo, hi


class ArithmeticTask(Task):
    """Generated addition. Options: ``format``, ``train_digits``, ``eval_digits``, ``train_size``,
    ``eval_size`` (problems generated when ``load`` gets no ``limit``)."""

    name = "arithmetic"
    default_exemplars = 4
    warm_start_references = True
    digit_groups = True
    direct_baseline_needs = "arithmetic with the decomposition, columns or carry format"

    def __init__(
        self,
        format: str = DEFAULT_FORMAT,
        train_digits=TRAIN_DIGITS,
        eval_digits=EVAL_DIGITS,
        train_size: int = 1000,
        eval_size: int = 300,
    ):
        if format not in FORMATS:
            raise ValueError(f"unknown arithmetic format {format!r}; choose one of {', '.join(FORMATS)}")
        self.format = format
        self.train_digits = _parse_range(train_digits, "train_digits")
        self.eval_digits = _parse_range(eval_digits, "eval_digits")
        self.train_size, self.eval_size = int(train_size), int(eval_size)
        self._handed_out: set[tuple[int, int]] = set()
        if format == "scratchpad":
            self.stop_strings = ("\n\n", "\nInput:")
        elif format == "carry":  # a trace of several lines: a blank line or the next question ends it
            self.stop_strings = ("\n\n", "Q:")
            self.default_exemplars = self.train_digits[1] - self.train_digits[0] + 1  # one of every length
        else:
            self.stop_strings = ("\n", "Q:")
        # "The answer is N." ends on "."; the scratchpad's answer line on a newline.
        self.answer_end_chars = "\n" if format == "scratchpad" else "."

    @classmethod
    def from_config(cls, cfg) -> ArithmeticTask:
        """The run's format and digit ranges (``arith_format``, ``train_digits``, ``eval_digits``)."""
        return cls(format=cfg.arith_format, train_digits=tuple(cfg.train_digits), eval_digits=tuple(cfg.eval_digits))

    @classmethod
    def supports_direct_baseline(cls, cfg) -> bool:
        """Every format but the scratchpad, whose answer follows a scratch block."""
        return cfg.arith_format != "scratchpad"

    def warm_start_problems(self, cfg, train: list[Problem], evals: list[Problem]) -> list[Problem]:
        """``warm_start`` new sums over ``warm_start_digits`` (none a training or evaluation sum), their traces
        padded to ``warm_start_pad`` digits."""
        n = cfg.warm_start
        try:
            out = self.disjoint_problems(n, tuple(cfg.warm_start_digits), cfg.seed, train + evals, "warm")
        except ValueError as e:
            raise WarmStartError(f"warm_start={n}, warm_start_digits={list(cfg.warm_start_digits)}: {e}") from None
        return pad_widths(out, cfg.warm_start_pad, cfg.seed)

    # ---- problems -------------------------------------------------------
    @staticmethod
    def make_problem(a: int, b: int, pid: str) -> Problem:
        d = max(_digits(a), _digits(b))
        return Problem(id=pid, question=f"{a} + {b}", gold=str(a + b), group=str(d), meta={"a": a, "b": b, "digits": d})

    @staticmethod
    def _bounds(d: int) -> tuple[int, int]:
        """The operands of a d-digit sum: both have d digits (0 counts as a 1-digit number)."""
        return (0 if d == 1 else 10 ** (d - 1)), 10**d - 1

    @classmethod
    def _draw(cls, rng: random.Random, d: int) -> tuple[int, int]:
        lo, hi = cls._bounds(d)
        return rng.randint(lo, hi), rng.randint(lo, hi)

    def disjoint_problems(
        self, n: int, digits: tuple[int, int], seed: int, avoid: Iterable[Problem], prefix: str
    ) -> list[Problem]:
        """``n`` distinct sums, digit counts round-robin over ``digits`` (seeded), none of them a problem of
        ``avoid`` or a reserved exemplar, nor one of the sums taken, in either order (``38 + 40`` is taken
        with ``40 + 38``). A digit count whose sums run out (there are 55 one-digit sums up to the order)
        leaves its turns to the others; ValueError when the whole range runs out."""
        taken = {(p.meta["a"], p.meta["b"]) for p in avoid if "a" in p.meta} | self._exemplar_pairs(seed)
        taken |= {(b, a) for a, b in taken}
        rng = random.Random(seed * 1000 + 3)
        pools: dict[int, list[tuple[int, int]]] = {}

        def draw(d: int) -> tuple[int, int] | None:
            lo, hi = self._bounds(d)
            if hi - lo < 100:  # 1 and 2 digits: draw from the free sums, so running out is seen
                if d not in pools:
                    pools[d] = [(a, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1) if (a, b) not in taken]
                pool = pools[d]
                while pool:
                    pair = pool.pop(rng.randrange(len(pool)))
                    if pair not in taken:  # its swap may have been taken since the pool was made
                        return pair
                return None
            while True:  # 3 digits and more: 810,000 sums or more, almost all free
                a, b = self._draw(rng, d)
                if (a, b) not in taken:
                    return a, b

        open_digits = list(range(digits[0], digits[1] + 1))
        out: list[Problem] = []
        while len(out) < n:
            if not open_digits:
                raise ValueError(
                    f"only {len(out)} sums of {digits[0]}-{digits[1]} digits are not evaluation, "
                    f"training or exemplar questions; {n} were requested"
                )
            d = open_digits[len(out) % len(open_digits)]
            pair = draw(d)
            if pair is None:
                open_digits.remove(d)
                continue
            a, b = pair
            taken |= {(a, b), (b, a)}
            out.append(self.make_problem(a, b, f"{prefix}-{d}d-{len(out):04d}-{a}+{b}"))
        return out

    def _generate(
        self, n: int, digits: tuple[int, int], rng_seed: int, prefix: str, exclude: set[tuple[int, int]]
    ) -> list[Problem]:
        """``n`` problems, digit counts round-robin over ``digits``; a prefix of a longer list."""
        rng = random.Random(rng_seed)
        ds = list(range(digits[0], digits[1] + 1))
        seen: set[tuple[int, int]] = set()
        out = []
        for i in range(n):
            d = ds[i % len(ds)]
            for _ in range(50):  # avoid repeats while the digit count has room
                a, b = self._draw(rng, d)
                if (a, b) not in exclude and (a, b) not in seen:
                    break
            else:
                while (a, b) in exclude:
                    a, b = self._draw(rng, d)
            seen.add((a, b))
            out.append(self.make_problem(a, b, f"{prefix}-{d}d-{i:04d}-{a}+{b}"))
        return out

    def _exemplar_pairs(self, seed: int) -> set[tuple[int, int]]:
        pairs = {
            (e.problem.meta["a"], e.problem.meta["b"]) for e in self._generated_exemplars(RESERVED_EXEMPLARS, seed)
        }
        return pairs | self._handed_out

    @property
    def exemplar_ids(self) -> frozenset[str]:
        """Operand pairs (``"a+b"``) kept out of training: seed-0 exemplars and any handed out."""
        return frozenset(f"{a}+{b}" for a, b in self._exemplar_pairs(0))

    def load(self, split: str, path: str | None = None, limit: int | None = None, seed: int = 0) -> list[Problem]:
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        if path is not None:
            rows = self._read_pairs(path)
            if split == "train":
                excl = self._exemplar_pairs(seed)
                rows = [p for p in rows if (p.meta["a"], p.meta["b"]) not in excl]
            return seeded_limit(rows, limit, seed)
        n = limit if limit is not None else (self.train_size if split == "train" else self.eval_size)
        if split == "train":
            return self._generate(n, self.train_digits, seed * 1000, "add", self._exemplar_pairs(seed))
        return self._generate(n, self.eval_digits, seed * 1000 + 1, "add-eval", set())

    def _read_pairs(self, path: str) -> list[Problem]:
        if not is_data_file(path):
            raise DataError(str(path), None, None, 'arithmetic reads a .jsonl/.json file of {"a": int, "b": int} rows')
        out = []
        for line, row in read_records(path):
            a = require(row, "a", int, path, line)
            b = require(row, "b", int, path, line)
            for key, v in (("a", a), ("b", b)):
                if v < 0:
                    raise DataError(str(path), line, key, f"expected a non-negative integer, got {v}")
            pid = row.get("id")
            if pid is not None and not isinstance(pid, str):
                raise DataError(str(path), line, "id", f"expected str, got {type(pid).__name__}")
            out.append(self.make_problem(a, b, pid or f"add-row{line:04d}-{a}+{b}"))
        return out

    # ---- exemplars ------------------------------------------------------
    def _generated_exemplars(self, n: int, seed: int) -> list[Exemplar]:
        """Exemplars of 2 digits or more, so each shows the full rationale format (a 1-digit
        decomposition is the bare ``3 + 5 = 8``); the carry format's start at every length of train_digits,
        as in the paper (a 1-digit carry trace has its step)."""
        lo, hi = self.train_digits
        low = lo if self.format == "carry" else max(2, lo)
        probs = self._generate(n, (low, max(low, hi)), seed * 1000 + 2, "add-ex", set())
        return [Exemplar(p, self.reference_rationale(p), p.gold) for p in probs]

    def exemplars(self, n: int | None = None, seed: int = 0, path: str | None = None) -> list[Exemplar]:
        """``n`` generated exemplars (digit counts round-robin over ``train_digits``, from 2 up), or the
        ``{"a", "b"}`` rows of ``path`` with their correct rationales."""
        n = self.default_exemplars if n is None else n
        if path is not None:
            probs = self._read_pairs(path)
            if n > len(probs):
                raise ValueError(f"{path} holds {len(probs)} exemplars, {n} requested")
            exs = [Exemplar(p, self.reference_rationale(p), p.gold) for p in probs[:n]]
        else:
            exs = self._generated_exemplars(n, seed)
        self._handed_out |= {(e.problem.meta["a"], e.problem.meta["b"]) for e in exs}
        return exs

    # ---- prompts --------------------------------------------------------
    def format_question(self, problem: Problem, hint: bool = False) -> str:
        a, b = problem.meta["a"], problem.meta["b"]
        if self.format == "scratchpad":
            line = f"{_spaced(str(a))} + {_spaced(str(b))}"
            if hint:
                line += f" (Hint: the answer is {_spaced(problem.gold)})"
            return f"Input:\n{line}\nTarget:"
        q = f"Q: What is {a} + {b}?"
        if hint:
            q += f" (Hint: the answer is {problem.gold}.)"
        return q + "\nA:"

    def format_target(self, rationale: str, answer: str) -> str:
        if self.format == "scratchpad":
            return f"\n{rationale.strip()}\n{_spaced(answer)}"
        if self.format == "carry":
            return f" {rationale.strip()}\n{carry.answer_line(answer)}"
        return f" {rationale.strip()} The answer is {answer}."

    def reference_rationale(self, problem: Problem) -> str:
        a, b = problem.meta["a"], problem.meta["b"]
        if self.format == "decomposition":
            return self._decomposition(a, b)
        if self.format == "columns":
            return self._columns_text(a, b)
        if self.format == "carry":
            return carry.carry_rationale(a, b, int(problem.meta.get("pad", 0)))  # warm_start_pad
        return self._scratch_text(a, b)

    def direct_rationale(self, problem: Problem) -> str | None:
        """The bare equation ``47 + 38 = 85.`` (the direct-answer baseline's exemplars); None for the
        scratchpad format, whose answer follows a scratch block."""
        if self.format == "scratchpad":
            return None
        a, b = problem.meta["a"], problem.meta["b"]
        return f"{a} + {b} = {a + b}."

    def hint_text(self, problem: Problem) -> str:
        if self.format == "scratchpad":
            return f"the answer is {_spaced(problem.gold)}"
        return f"the answer is {problem.gold}"

    @staticmethod
    def _decomposition(a: int, b: int) -> str:
        if a < 10 and b < 10:
            return f"{a} + {b} = {a + b}."
        n = max(_digits(a), _digits(b))
        places = [10**p for p in range(n - 1, -1, -1)]
        groups = [((a // p) % 10 * p, (b // p) % 10 * p) for p in places]
        split = " + ".join(f"({x} + {y})" for x, y in groups)
        sums = " + ".join(str(x + y) for x, y in groups)
        return f"{a} + {b} = {split} = {sums} = {a + b}."

    @staticmethod
    def _columns_text(a: int, b: int) -> str:
        steps = []
        cols = _columns(a, b)
        for i, (da, db, cin, d, cout) in enumerate(cols):
            expr = f"{da} + {db}" + (" + 1" if cin else "")
            steps.append(f"Add the {_place(i)}: {expr} = {da + db + cin}, write {d}" + (" carry 1." if cout else "."))
        if cols[-1][4]:
            steps.append("Write the last carry 1.")
        return " ".join(steps)

    def _scratch_text(self, a: int, b: int) -> str:
        return "<scratch>\n" + "\n".join(scratch_lines(a, b)) + "\n</scratch>"

    # ---- decoding -------------------------------------------------------
    def is_complete(self, completion: str) -> bool:
        if super().is_complete(split_lead(completion)[1]):
            return True
        if self.format == "scratchpad":
            return re.search(r"</scratch>[ \t]*\n?[ \t]*\d[\d ]*\n", completion) is not None
        return re.search(r"the answer is\s*-?[\d,]*\d\.", completion, re.I) is not None

    def trim(self, completion: str) -> str:
        lead, body = split_lead(completion)
        text = lead + super().trim(body)
        if self.format == "scratchpad":
            m = _SCRATCH_ANSWER_RE.search(text)
        else:
            m = re.search(r"the answer is\s*-?[\d,]*\d\.?", text, re.I)
        return text[: m.end()] if m else text

    # ---- reading and grading -------------------------------------------
    def parse(self, completion: str, problem: Problem | None = None) -> Parsed:
        if self.format == "scratchpad":
            ms = list(_SCRATCH_ANSWER_RE.finditer(completion))
            if ms:
                m = ms[-1]
                end_tag = completion.rfind("</scratch>", 0, m.end()) + len("</scratch>")
                return Parsed(completion[:end_tag].strip(), _norm_int(m.group(1)))
        ms = list(_ANSWER_RE.finditer(completion))
        if not ms:
            return Parsed(completion.strip(), None)
        m = ms[-1]
        return Parsed(completion[: m.start()].strip(), _norm_int(m.group(1)))

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and _norm_int(answer) == _norm_int(gold)

    def hint_leak(self, problem: Problem, completion: str) -> str | None:
        return eq.hint_phrase_leak(completion)

    # ---- audit ----------------------------------------------------------
    def audit(self, problem: Problem, parsed: Parsed) -> Audit:
        """Re-check the rationale against the true addition.

        Every step must hold, and a rationale must show one: with no readable step at all
        (a bare ``The answer is 85.``) the verdict is ``no_rationale``. The decomposition needs an
        intermediate step besides, at every length: a bare ``47 + 38 = 85`` or ``5 + 0 = 5``, or the
        question restated (``47 + 38 = (47 + 38) = 85``), is ``no_rationale`` too, and digits outside
        every equation (``= 4o.``) are a wrong step. The columns, carry and scratchpad formats write
        one step per column, so any column step they show is an intermediate one; the columns' closing
        carry (``Write/Add the last carry 1``) is checked, and the carry format line by line
        (star_core.tasks.arith_carry). ``first_bad_line`` names the first line that fails.
        """
        a, b = problem.meta["a"], problem.meta["b"]
        if self.format == "carry":
            return carry.audit_carry(a, b, parsed.rationale, parsed.answer)
        if self.format == "columns":
            steps, missing = audit_columns(a, b, parsed)
        elif self.format == "scratchpad":
            steps, missing = audit_scratch(a, b, parsed)
        else:
            steps, missing = audit_decomposition(a, b, parsed)
        bad = tuple(s.message for s in steps if not s.ok)
        return Audit(checked=len(steps), errors=bad, no_rationale=missing, first_bad_line=eq.first_bad(steps))

    # ---- synthetic questions (the fixture builders' run stores) -----------
    def synthetic_question(self, qi: int, split: str, rng: random.Random) -> SyntheticQuestion:
        """A sum of 1 to 5 digits (training) or 1 to 6 (evaluation) in the scratchpad's shape; the synthetic
        model gets fewer right the more digits it has."""
        d = 1 + qi % 5 if split == "train" else 1 + qi % 6
        lo = 10 ** (d - 1) if d > 1 else 0
        a, b = rng.randint(lo, 10**d - 1), rng.randint(lo, 10**d - 1)
        hint = _spaced(str(a + b))
        rat = _synthetic_scratch(a, b)
        return SyntheticQuestion(
            qid=f"add-{d}d-{split}-{qi:05d}",
            grp=str(d),
            question=f"{a} + {b}",
            gold=str(a + b),
            block=f"Input:\n{_spaced(str(a))} + {_spaced(str(b))}\nTarget:\n",
            hblock=f"Input:\n{_spaced(str(a))} + {_spaced(str(b))}\nAnswer: {hint}\nTarget:\n",
            hint=hint,
            rationale=rat,
            out=lambda ans: f"{rat}\n{_spaced(str(int(ans)))}",
            wrong=lambda: str(a + b + rng.choice([1, 10, -1, 100])),
            skill=0.55 - 0.09 * (d - 1),
        )


def _synthetic_scratch(a: int, b: int) -> str:
    """The synthetic questions' scratch block: one line per column, the operands' tails and the sum so far."""
    lines, carry_in = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    acc = ""
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry_in
        acc = str(s % 10) + acc
        carry_in = s // 10
        tail_a, tail_b = _spaced(str(int(str(a)[-i - 1 :] or 0))), _spaced(str(int(str(b)[-i - 1 :] or 0)))
        lines.append(f"{tail_a} + {tail_b} , {' '.join(acc)} C: {carry_in}")
    return "<scratch>\n" + "\n".join(lines) + "\n</scratch>"


def pad_widths(problems: list[Problem], pad: int, seed: int) -> list[Problem]:
    """``warm_start_pad``: each sum's reference trace written at a seeded width from its own digit count up to
    ``pad`` digits (``meta["pad"]``; the sums themselves keep their digit counts). 0 leaves them unpadded."""
    if pad:
        rng = random.Random(seed * 7919 + 11)
        for p in problems:
            d = int(p.meta["digits"])
            p.meta["pad"] = rng.randint(d, max(d, pad))
    return problems
