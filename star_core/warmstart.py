"""The warm start: supervised fine-tuning on reference rationales before iteration 1.

It is supervised, not bootstrapped: the rationales are the task's own reference
ones (arithmetic: the rationale format worked out by the task; GSM8K: the
reference solutions of the training file), not the model's. A run with
``warm_start=N`` records it at iteration 0, after the few-shot baseline:

* N samples of phase ``warm_start`` with decision ``reference``, each kept, with its
  training example (``train_examples.iteration`` 0, source ``reference``);
* the adapter ``adapters/warm_start``, trained for ``warm_start_steps`` steps (its losses are
  iteration 0's), after which iteration 0's stage is ``trained``;
* an evaluation of the warm-started model, phase ``warm_eval``.

Iteration 1 samples with the warm-started model, and the reference examples join every later
iteration's training set (``RunStore.training_set``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .config import ConfigError, StarConfig
from .store import SampleRecord
from .tasks import Problem, Task

#: The reason recorded with every warm-start example.
REASON = "reference rationale written by the task, not by the model: supervised warm start, not bootstrapped"


def problems(cfg: StarConfig, task: Task, train: list[Problem], evals: list[Problem]) -> list[Problem]:
    """The ``cfg.warm_start`` questions of the warm start: never an evaluation or a training question.
    Raises ConfigError, naming the setting, when the data cannot supply them."""
    n = cfg.warm_start
    if task.name == "arithmetic":
        try:
            out = task.disjoint_problems(
                n,
                tuple(cfg.warm_start_digits),
                cfg.seed,
                train + evals,  # type: ignore[attr-defined]
                "warm",
            )
        except ValueError as e:
            raise ConfigError(f"warm_start={n}, warm_start_digits={list(cfg.warm_start_digits)}: {e}") from None
        return pad_widths(out, cfg.warm_start_pad, cfg.seed)
    if task.name == "gsm8k":
        # the training file in the run's seeded order: STaR's questions are its first n_train
        pool = task.load("train", path=cfg.train_file, limit=cfg.n_train + n, seed=cfg.seed)
        used = {p.id for p in train} | {" ".join(p.question.split()).lower() for p in evals}
        out = [
            p
            for p in pool
            if p.id not in used and " ".join(p.question.split()).lower() not in used and task.reference_rationale(p)
        ][:n]
        if len(out) < n:
            raise ConfigError(
                f"warm_start={n}: the training file holds only {len(out)} questions with a "
                f"reference solution beyond the n_train={cfg.n_train} that STaR uses; lower "
                "warm_start or n_train, or pass a larger --train-file"
            )
        return out
    raise ConfigError(f"warm_start: the {task.name} task has no reference rationales")


def pad_widths(problems: list[Problem], pad: int, seed: int) -> list[Problem]:
    """``warm_start_pad``: each sum's reference trace written at a seeded width from its own digit count up to
    ``pad`` digits (``meta["pad"]``; the sums themselves keep their digit counts). 0 leaves them unpadded."""
    if pad:
        rng = random.Random(seed * 7919 + 11)
        for p in problems:
            d = int(p.meta["digits"])
            p.meta["pad"] = rng.randint(d, max(d, pad))
    return problems


def records(task: Task, problems: list[Problem], train_prompt: Callable[[Problem], str]) -> list[SampleRecord]:
    """One kept ``warm_start`` sample per problem: its reference rationale, audited like any rationale."""
    out = []
    for p in problems:
        target = task.format_target(task.reference_rationale(p) or "", p.gold)
        parsed = task.parse(target, p)
        audit = task.audit(p, parsed)
        prompt = train_prompt(p)
        out.append(
            SampleRecord(
                iteration=0,
                task=task.name,
                split="train",
                phase="warm_start",
                question_id=p.id,
                question=p.question,
                prompt=prompt,
                raw_output=target,
                gold=p.gold,
                decision="reference",
                reason=REASON,
                correct=task.is_correct(parsed.answer, p.gold),
                kept=True,
                grp=p.group,
                rationale=parsed.rationale,
                answer=parsed.answer,
                audit=audit.to_dict(),
                train_prompt=prompt,
                train_completion=target.rstrip(),
                train_iteration=0,
            )
        )
    return out
