"""The range of every numeric config field (``StarConfig``), checked by ``StarConfig.validate``."""

from __future__ import annotations

import os
from typing import Any

#: Seeds up to 2**32 - 1: what every seeded library here accepts (torch.manual_seed gets seed * 7919 + ...).
MAX_SEED = 2**32 - 1
#: Most optimizer steps in one iteration (train_steps * steps_growth ** (iterations - 1)).
MAX_STEPS = 1_000_000


def max_threads() -> int:
    return 4 * (os.cpu_count() or 1)


#: The most digits of an arithmetic operand (digit ranges, warm_start_pad).
MAX_DIGITS = 30

#: The range of every numeric field: (low, high, bounds), bounds "[]", "(]" or "[)"; floats must also be
#: finite. A callable high is computed at validation (threads). Checked in validate(), before any data or
#: model is loaded.
RANGES: dict[str, tuple[Any, Any, str]] = {
    "iterations": (0, 100, "[]"),
    "seed": (0, MAX_SEED, "[]"),
    "n_train": (1, 1_000_000, "[]"),
    "n_eval": (1, 1_000_000, "[]"),
    "n_exemplars": (0, 32, "[]"),
    "max_new_tokens": (1, 8192, "[]"),
    "temperature": (0.0, 10.0, "[]"),
    "top_p": (0.0, 1.0, "(]"),
    "samples_per_question": (1, 64, "[]"),
    "max_kept_per_question": (0, 64, "[]"),
    "warm_start": (0, 1_000_000, "[]"),
    "warm_start_steps": (1, MAX_STEPS, "[]"),
    "warm_start_pad": (0, MAX_DIGITS, "[]"),
    "train_steps": (1, MAX_STEPS, "[]"),
    "steps_growth": (0.0, 10.0, "(]"),
    "learning_rate": (0.0, 1.0, "(]"),
    "warmup_steps": (0, MAX_STEPS, "[]"),
    "train_batch_size": (1, 4096, "[]"),
    "grad_accum": (1, 1024, "[]"),
    "max_grad_norm": (0.0, 1e6, "(]"),
    "lora_r": (1, 4096, "[]"),
    "lora_alpha": (1, 65536, "[]"),
    "lora_dropout": (0.0, 1.0, "[)"),
    "max_seq_len": (16, 1_048_576, "[]"),
    "threads": (0, max_threads, "[]"),
    "ray_workers": (1, 4096, "[]"),
    "ray_cpus_per_worker": (0.0, 1024.0, "(]"),
    "ray_gpus_per_worker": (0.0, 64.0, "[]"),
    "curriculum_rate": (0.0, 1.0, "(]"),
    "curriculum_keep": (0.0, 1.0, "[]"),
    "max_train_per_group": (0, 1_000_000, "[]"),
    "train_epochs": (0.0, 1000.0, "[]"),
}
MAX_BATCH_SIZE = 65536


def _num(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def range_text(name: str) -> str:
    """A numeric field's range in words (``>= 0 and <= 100``); empty for other fields."""
    if name not in RANGES:
        return ""
    lo, hi, bounds = RANGES[name]
    hi = hi() if callable(hi) else hi
    return f"{'>' if bounds[0] == '(' else '>='} {_num(lo)} and {'<' if bounds[1] == ')' else '<='} {_num(hi)}" + (
        " (finite)" if isinstance(lo, float) else ""
    )
