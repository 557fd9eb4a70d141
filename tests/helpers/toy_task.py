"""A toy task, whole in this one module: count the letters of a made-up word.

``tests/test_task_plugin.py`` registers it with one line, ``TASKS["letters"] = "helpers.toy_task:LettersTask"`` (what a
line of ``star_core.tasks.TASKS`` is), and the engine runs it with no other file changed.
"""

from __future__ import annotations

import random
import re

from star_core.tasks import Audit, Exemplar, Parsed, Problem, Task, WarmStartError

_ANSWER_RE = re.compile(r"the answer is (\d+)\.", re.I)


class LettersTask(Task):
    """``Q: How many letters are in "kepo"?`` answered `` k-e-p-o: 4 letters. The answer is 4.``"""

    name = "letters"
    default_exemplars = 2
    stop_strings = ("\n", "Q:")
    answer_end_chars = "."
    warm_start_references = True  # reference_rationale spells every word out

    @staticmethod
    def _words(prefix: str, n: int, seed: int) -> list[Problem]:
        rng = random.Random(f"{prefix}-{seed}")
        words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 6))) for _ in range(n)]
        return [Problem(f"{prefix}-{i}", w, str(len(w)), group=str(len(w))) for i, w in enumerate(words)]

    # ---- data and prompts -------------------------------------------------
    def load(self, split: str, path: str | None = None, limit: int | None = None, seed: int = 0) -> list[Problem]:
        return self._words(split, limit or 50, seed)

    def exemplars(self, n: int, seed: int = 0, path: str | None = None) -> list[Exemplar]:
        return [Exemplar(p, self.reference_rationale(p), p.gold) for p in self._words("exemplar", n, seed)]

    def format_question(self, problem: Problem, hint: bool = False) -> str:
        q = f'Q: How many letters are in "{problem.question}"?'
        return q + (f" (Hint: the answer is {problem.gold}.)" if hint else "") + "\nA:"

    def format_target(self, rationale: str, answer: str) -> str:
        return f" {rationale.strip()} The answer is {answer}."

    def reference_rationale(self, problem: Problem) -> str:
        return f"{'-'.join(problem.question)}: {len(problem.question)} letters."

    # ---- reading and grading ----------------------------------------------
    def parse(self, completion: str, problem: Problem | None = None) -> Parsed:
        ms = list(_ANSWER_RE.finditer(completion))
        if not ms:
            return Parsed(completion.strip(), None)
        return Parsed(completion[: ms[-1].start()].strip(), ms[-1].group(1))

    def audit(self, problem: Problem, parsed: Parsed) -> Audit:
        """One step: the spelled-out word has the letters it claims."""
        m = re.fullmatch(r"([a-z](?:-[a-z])*): (\d+) letters\.", parsed.rationale)
        if m is None:
            return Audit(no_rationale="the word is not spelled out")
        n = len(m.group(1).split("-"))
        return Audit(1, () if n == int(m.group(2)) else (f"{m.group(1)} has {n} letters, not {m.group(2)}",))

    # ---- what the rest of the engine asks ---------------------------------
    def warm_start_problems(self, cfg, train: list[Problem], evals: list[Problem]) -> list[Problem]:
        used = {p.question for p in train + evals}
        pool = [p for p in self._words("warm", 20, cfg.seed) if p.question not in used]  # at most 20 words
        if len(pool) < cfg.warm_start:
            raise WarmStartError(f"warm_start={cfg.warm_start}: only {len(pool)} new words")
        return pool[: cfg.warm_start]
