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

from collections.abc import Callable

from .config import ConfigError, StarConfig
from .store import SampleRecord
from .tasks import Problem, Task, WarmStartError

#: The reason recorded with every warm-start example.
REASON = "reference rationale written by the task, not by the model: supervised warm start, not bootstrapped"


def problems(cfg: StarConfig, task: Task, train: list[Problem], evals: list[Problem]) -> list[Problem]:
    """The ``cfg.warm_start`` questions of the warm start (``Task.warm_start_problems``): never an evaluation or a
    training question. Raises ConfigError, naming the setting, when the data cannot supply them."""
    try:
        return task.warm_start_problems(cfg, train, evals)
    except WarmStartError as e:
        raise ConfigError(str(e)) from None


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
