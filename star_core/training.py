"""LoRA fine-tuning on the kept examples.

A short, explicit loop: AdamW, linear warm-up then constant (as the paper),
gradient clipping, gradient accumulation, loss masked to the completion
(rationale + answer) tokens by default. Batches cycle through the kept set in
seeded shuffled epochs, so a run is reproducible and a restarted training run
gives the same adapter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

END = "\n\n"
"""Appended to every completion: the few-shot separator, so the model learns to stop."""


@dataclass
class TrainArgs:
    steps: int
    learning_rate: float
    warmup_steps: int
    batch_size: int
    grad_accum: int
    max_grad_norm: float
    mask_prompt: bool
    max_seq_len: int
    seed: int


def encode(tokenizer, prompt: str, completion: str, mask_prompt: bool, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels for one example; prompt tokens get label -100 when masked."""
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    c = tokenizer(completion + END, add_special_tokens=False)["input_ids"]
    ids = p + c
    labels = ([-100] * len(p) if mask_prompt else list(p)) + list(c)
    if len(ids) > max_len:  # keep the end: the completion matters most
        ids, labels = ids[-max_len:], labels[-max_len:]
    return ids, labels


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int, device) -> dict[str, torch.Tensor]:
    n = max(len(i) for i, _ in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab = torch.full((len(batch), n), -100, dtype=torch.long)
    att = torch.zeros((len(batch), n), dtype=torch.long)
    for r, (i, labels) in enumerate(batch):  # right padding for training
        ids[r, : len(i)] = torch.tensor(i)
        lab[r, : len(labels)] = torch.tensor(labels)
        att[r, : len(i)] = 1
    return {"input_ids": ids.to(device), "labels": lab.to(device), "attention_mask": att.to(device)}


_LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: ``lora_targets=auto``: the attention and MLP projections of each known ``config.model_type``;
#: any other model gets ``all-linear`` (every linear layer but the output head).
LORA_TARGETS: dict[str, list[str]] = {
    **{
        t: _LLAMA_STYLE
        for t in (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "olmo",
            "olmo2",
            "granite",
            "cohere",
            "smollm3",
            "deepseek_v3",
        )
    },
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_bigcode": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "bloom": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


def resolve_lora_targets(targets: Sequence[str], model) -> list[str]:
    """The module names to put LoRA on: ``["auto"]`` becomes the model type's known targets that the model
    has (else ``["all-linear"]``); ``["all-linear"]`` stays; other names must each match a module of the
    model, or ValueError names the missing ones and the model's linear layers."""
    targets = list(targets)
    base = getattr(model, "get_base_model", lambda: model)()
    names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules() if n}
    if targets == ["auto"]:
        known = [t for t in LORA_TARGETS.get(getattr(base.config, "model_type", None), []) if t in names]
        return known or ["all-linear"]
    if targets == ["all-linear"]:
        return targets
    missing = [t for t in targets if t not in names]
    if missing:
        linear = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in base.named_modules()
                if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"
            }
            - {"lm_head"}
        )
        raise ValueError(
            f"lora_targets {missing} match no module of this {getattr(base.config, 'model_type', '?')}"
            f" model (its linear layers: {', '.join(linear[:12])}); use lora_targets=auto"
        )
    return targets


def train(
    model,
    tokenizer,
    examples: Sequence[tuple[str, str]],
    args: TrainArgs,
    on_step: Callable[[int, float, float], None] | None = None,
) -> list[tuple[int, float, float, float]]:
    """Train the (peft) model in place. Returns [(step, loss, lr, seconds)]."""
    if not examples:
        return []
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = [encode(tokenizer, p, c, args.mask_prompt, args.max_seq_len) for p, c in examples]
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("no trainable parameters: LoRA was not attached")
    opt = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup_steps)))

    order: list[int] = []

    def next_batch() -> list[tuple[list[int], list[int]]]:
        nonlocal order
        out = []
        while len(out) < args.batch_size:
            if not order:
                order = list(range(len(data)))
                rng.shuffle(order)
            out.append(data[order.pop()])
        return out

    model.train()
    log: list[tuple[int, float, float, float]] = []
    try:
        for step in range(1, args.steps + 1):
            t0 = time.perf_counter()
            total = 0.0
            for _ in range(args.grad_accum):
                out = model(**_collate(next_batch(), pad_id, device))
                (out.loss / args.grad_accum).backward()
                total += float(out.loss.detach()) / args.grad_accum
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            log.append((step, total, lr, time.perf_counter() - t0))
            if on_step is not None:
                on_step(step, total, lr)
    finally:
        model.eval()
    return log
