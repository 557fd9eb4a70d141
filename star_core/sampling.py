"""Batched rationale sampling.

Three levers make it fast on a CPU:
- batching with left-padded suffixes;
- a shared prefix: all prompts of a call start with the same few-shot block, so
  its KV cache is computed once and repeated across the batch;
- stop-at-answer: a row leaves the batch as soon as its text holds a complete
  answer (``is_complete``), and its cache rows are dropped.

The decoding loop is ours (not ``model.generate``) because it needs the shared
cache with per-row padding between prefix and suffix and row pruning.
"""

from __future__ import annotations

import copy
import inspect
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import DynamicCache


@dataclass
class Generation:
    text: str
    """Decoded completion (up to where decoding stopped; not yet trimmed)."""
    prompt_tokens: int
    output_tokens: int
    truncated: bool
    """Hit max_new_tokens before a complete answer (or EOS)."""
    seconds: float
    """This row's share of the batch's wall time."""


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def _cache_kw(model) -> str:
    """Name of the forward() cache argument ("cache" in newer transformers, else "past_key_values")."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        cum = sp.cumsum(-1)
        sp[(cum - sp) > top_p] = 0
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int,
             is_complete: Callable[[str], bool], temperature: float = 0.0, top_p: float = 1.0,
             batch_size: int = 16, share_prefix: bool = True, seed: int = 0,
             on_batch: Callable[[list[int], list[Generation]], None] | None = None) -> list[Generation]:
    """Generate one completion per prompt; ``on_batch(indices, gens)`` fires per finished batch."""
    if not prompts:
        return []
    device = next(model.parameters()).device
    ids = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    eos = set(tokenizer.all_special_ids) - ({tokenizer.unk_token_id} if tokenizer.unk_token_id is not None else set())
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gen = torch.Generator().manual_seed(seed) if temperature > 0 else None

    P = 0
    prefix_cache = None
    if share_prefix and len(ids) > 1:
        P = max(0, min(_common_prefix_len(ids), min(len(s) for s in ids) - 1))
    if P > 0:
        prefix_cache = DynamicCache()
        model(input_ids=torch.tensor([ids[0][:P]], device=device), use_cache=True, logits_to_keep=1,
              **{_cache_kw(model): prefix_cache})

    # Longest suffixes first: less padding per batch.
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    results: list[Generation | None] = [None] * len(ids)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        t0 = time.perf_counter()
        outs = _generate_batch(model, tokenizer, [ids[i] for i in batch], P, prefix_cache, device, pad_id, eos,
                               max_new_tokens, is_complete, temperature, top_p, gen)
        dt = (time.perf_counter() - t0) / len(batch)
        gens = [Generation(text, len(ids[i]), n, trunc, dt) for i, (text, n, trunc) in zip(batch, outs)]
        for i, g in zip(batch, gens):
            results[i] = g
        if on_batch is not None:
            on_batch(batch, gens)
    return results  # type: ignore[return-value]


def _generate_batch(model, tokenizer, seqs, P, prefix_cache, device, pad_id, eos, max_new_tokens,
                    is_complete, temperature, top_p, gen):
    B = len(seqs)
    suffixes = [s[P:] for s in seqs]
    L = max(len(s) for s in suffixes)
    inp = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.ones((B, P + L), dtype=torch.long)
    for r, s in enumerate(suffixes):
        inp[r, L - len(s):] = torch.tensor(s)
        attn[r, P:P + L - len(s)] = 0
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    if prefix_cache is not None:
        cache = copy.deepcopy(prefix_cache)
        if B > 1:
            cache.batch_repeat_interleave(B)
    else:
        cache = DynamicCache()
    inp, attn, pos = inp.to(device), attn.to(device), pos.to(device)
    ckw = _cache_kw(model)
    out = model(input_ids=inp, attention_mask=attn, position_ids=pos[:, P:], use_cache=True, logits_to_keep=1,
                **{ckw: cache})
    logits = out.logits[:, -1, :]
    next_pos = pos[:, -1] + 1

    generated: list[list[int]] = [[] for _ in range(B)]
    texts = [""] * B
    finished = [False] * B
    truncated = [False] * B
    active = list(range(B))  # original row index of each live cache row
    for step in range(max_new_tokens):
        tok = _pick(logits, temperature, top_p, gen)
        keep: list[int] = []
        for j, r in enumerate(active):
            t = int(tok[j])
            if t in eos:
                finished[r] = True
                continue
            generated[r].append(t)
            texts[r] = tokenizer.decode(generated[r], skip_special_tokens=True)
            if is_complete(texts[r]):
                finished[r] = True
            else:
                keep.append(j)
        if not keep:
            break
        if step == max_new_tokens - 1:
            for j in keep:
                truncated[active[j]] = True
            break
        if len(keep) < len(active):
            idx = torch.tensor(keep, device=device)
            cache.batch_select_indices(idx)
            attn, next_pos, tok = attn[idx], next_pos[idx], tok[idx]
            active = [active[j] for j in keep]
        attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=-1)
        out = model(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos[:, None],
                    use_cache=True, **{ckw: cache})
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return [(texts[r], len(generated[r]), truncated[r]) for r in range(B)]


@torch.no_grad()
def generate_plain(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int) -> list[Generation]:
    """Reference: ``model.generate`` at batch size 1, greedy, stopping only at EOS (for the benchmark)."""
    device = next(model.parameters()).device
    res = []
    for p in prompts:
        enc = tokenizer(p, return_tensors="pt").to(device)
        t0 = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        res.append(Generation(tokenizer.decode(new, skip_special_tokens=True), enc["input_ids"].shape[1],
                              len(new), len(new) >= max_new_tokens, time.perf_counter() - t0))
    return res
