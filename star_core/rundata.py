"""A run's data: its task, training and evaluation questions, exemplars and warm-start questions."""

from __future__ import annotations

from dataclasses import dataclass

from . import warmstart
from .config import StarConfig, make_task
from .errors import RunError
from .tasks import Exemplar, Problem, Task


@dataclass
class Data:
    task: Task
    train: list[Problem]
    eval: list[Problem]
    exemplars: list[Exemplar]
    exemplar_source: str
    warm: list[Problem]
    """The warm start's questions (empty without one)."""
    direct_exemplars: list[Exemplar]
    """The exemplars without rationales, for the direct-answer baseline (empty without one)."""


def load_data(cfg: StarConfig) -> Data:
    task = make_task(cfg)
    n_ex = cfg.n_exemplars or task.default_exemplars
    exemplars = task.exemplars(n_ex, seed=cfg.seed, path=cfg.exemplars_file)
    source = f"file {cfg.exemplars_file}" if cfg.exemplars_file else f"task default (seed {cfg.seed})"
    train = task.load("train", path=cfg.train_file, limit=cfg.n_train, seed=cfg.seed)
    ex_ids = {e.problem.id for e in exemplars}
    train = [p for p in train if p.id not in ex_ids]
    evals = task.load("eval", path=cfg.eval_file, limit=cfg.n_eval, seed=cfg.seed)
    if not train:
        where = f" in {cfg.train_file}" if cfg.train_file else ""
        raise RunError(f"no training questions{where} (other than the exemplars): check --train-file / n_train")
    if not evals:
        where = f" in {cfg.eval_file}" if cfg.eval_file else ""
        raise RunError(f"no evaluation questions{where}: check --eval-file / n_eval")
    warm = warmstart.problems(cfg, task, train, evals) if cfg.warm_start else []
    direct = task.direct_exemplars(exemplars) if cfg.direct_baseline else []
    return Data(task, train, evals, exemplars, source, warm, direct)
