"""Today's decoder before continuous batching, kept as the reference the new one must match.

Static batches of left-padded suffixes over a shared prefix cache; every step
decodes every live row's text in Python. Tests only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache

from star_core.sampling import Generation, _cache_kw, _common_prefix_len, _pick


@torch.no_grad()
def generate_reference(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    is_complete: Callable[[str], bool],
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    share_prefix: bool = True,
    seed: int = 0,
    on_batch: Callable[[list[int], list[Generation]], None] | None = None,
) -> list[Generation]:
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
        model(
            input_ids=torch.tensor([ids[0][:P]], device=device),
            use_cache=True,
            logits_to_keep=1,
            **{_cache_kw(model): prefix_cache},
        )

    # Longest suffixes first: less padding per batch.
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    results: list[Generation | None] = [None] * len(ids)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        t0 = time.perf_counter()
        outs = _generate_batch(
            model,
            tokenizer,
            [ids[i] for i in batch],
            P,
            prefix_cache,
            device,
            pad_id,
            eos,
            max_new_tokens,
            is_complete,
            temperature,
            top_p,
            gen,
        )
        dt = (time.perf_counter() - t0) / len(batch)
        gens = [Generation(text, len(ids[i]), n, trunc, dt) for i, (text, n, trunc) in zip(batch, outs)]
        for i, g in zip(batch, gens):
            results[i] = g
        if on_batch is not None:
            on_batch(batch, gens)
    return results  # type: ignore[return-value]


def _generate_batch(
    model, tokenizer, seqs, P, prefix_cache, device, pad_id, eos, max_new_tokens, is_complete, temperature, top_p, gen
):
    B = len(seqs)
    suffixes = [s[P:] for s in seqs]
    L = max(len(s) for s in suffixes)
    inp = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.ones((B, P + L), dtype=torch.long)
    for r, s in enumerate(suffixes):
        inp[r, L - len(s) :] = torch.tensor(s)
        attn[r, P : P + L - len(s)] = 0
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    if prefix_cache is not None:
        cache = copy.deepcopy(prefix_cache)
        if B > 1:
            cache.batch_repeat_interleave(B)
    else:
        cache = DynamicCache()
    inp, attn, pos = inp.to(device), attn.to(device), pos.to(device)
    ckw = _cache_kw(model)
    out = model(
        input_ids=inp, attention_mask=attn, position_ids=pos[:, P:], use_cache=True, logits_to_keep=1, **{ckw: cache}
    )
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
        out = model(
            input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos[:, None], use_cache=True, **{ckw: cache}
        )
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return [(texts[r], len(generated[r]), truncated[r]) for r in range(B)]
