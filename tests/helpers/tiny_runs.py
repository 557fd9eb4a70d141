"""The settings of a tiny-model run of the STaR loop (seconds on a CPU), for the tests that run the loop."""

from __future__ import annotations

from star_core import config as C


def tiny_cfg(model_dir, task, **kw):
    sets = {
        "n_train": 6,
        "n_eval": 4,
        "max_new_tokens": 8,
        "batch_size": 4,
        "train_steps": 2,
        "train_batch_size": 2,
        "lora_r": 4,
        "lora_alpha": 8,
        "iterations": 2,
        "warmup_steps": 1,
        "threads": 1,
    }
    sets.update(kw)
    cfg = C.StarConfig(task=task, model=str(model_dir))
    C.apply(cfg, sets, "test")
    return cfg.validate()
