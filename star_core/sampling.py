"""Batched rationale sampling with continuous batching.

The decoder keeps a fixed number of *slots* busy:
- a shared prefix: every prompt of a call starts with the same few-shot block,
  so its KV cache is computed once and kept once per layer; every row attends to
  it through shared-prefix attention (:mod:`star_core.prefix_attention`), so the
  slots hold only each row's suffix. For a model that cannot (its attention does
  not go through transformers' attention interface), the prefix's cache is
  copied into each slot instead, as before, and the log says so once;
- continuous batching: when a row finishes, the next waiting prompt takes its
  slot; its suffix is prefilled against the prefix cache and written into the
  slot's cache rows, right-aligned, so the batch stays full;
- stop detection on token ids: a task names the characters its completions can
  only become complete on (``stop_chars``, e.g. ``"\\n.)"``). A boolean mask over
  the vocabulary marks the tokens that hold one of them (and EOS); each step
  looks the sampled tokens up in that mask on the device, and only the flagged
  rows are copied to the host and decoded to run ``is_complete``. Host work per
  step does not grow with the batch.
- an in-place KV cache (:class:`SlotCache`): one buffer per layer, written at
  the next column, instead of a ``torch.cat`` of the whole cache every step.
  Columns of padding that no live row needs any more are dropped now and then.

Greedy outputs are the same tokens as decoding each prompt alone (see
``tests/test_sampling.py``, which also checks the previous static-batch decoder).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from star_core.prefix_attention import shared_prefix_for, shared_prefix_mode, suffix_mask, supports

log = logging.getLogger("star")

#: ``batch_size`` on the CPU when the config says ``auto`` (measured best on 2 cores: README).
CPU_AUTO_BATCH = 32
#: Largest batch ``auto`` picks on CUDA.
CUDA_MAX_BATCH = 512


@dataclass
class Generation:
    text: str
    """Decoded completion (up to where decoding stopped; not yet trimmed)."""
    prompt_tokens: int
    output_tokens: int
    truncated: bool
    """Hit max_new_tokens before a complete answer (or EOS)."""
    seconds: float
    """This row's share of the wall time between two deliveries."""


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
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def eos_ids(tokenizer) -> set[int]:
    return set(tokenizer.all_special_ids) - ({tokenizer.unk_token_id} if tokenizer.unk_token_id is not None else set())


def batch_decoder(tokenizer) -> Callable[[list[list[int]]], list[str]]:
    """``seqs -> texts`` as ``tokenizer.batch_decode(seqs, skip_special_tokens=True)`` gives them,
    straight from the Rust tokenizer when no Python post-processing applies (much less overhead)."""
    fast = getattr(tokenizer, "_tokenizer", None)
    if (
        fast is not None
        and hasattr(fast, "decode_batch")
        and not getattr(tokenizer, "clean_up_tokenization_spaces", True)
    ):
        return lambda seqs: fast.decode_batch(seqs, skip_special_tokens=True)
    return lambda seqs: tokenizer.batch_decode(seqs, skip_special_tokens=True)


def stop_token_mask(tokenizer, stop_chars: str) -> torch.Tensor:
    """Bool mask over the vocabulary: tokens that may complete an answer.

    A token is marked when its text holds one of ``stop_chars`` or when it is an
    end-of-sequence token. A byte fragment (a token that is not whole UTF-8 on its
    own) shows its ASCII bytes when decoded alone, and bytes of a multi-byte
    character never decode to ASCII, so for ASCII ``stop_chars`` this is exact;
    for others every fragment is marked too (marking too many only costs a host
    check, never a wrong stop). Cached on the tokenizer per character set.
    """
    memo = tokenizer.__dict__.setdefault("_star_stop_masks", {})
    if stop_chars not in memo:
        n = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
        frag = not stop_chars.isascii()
        mask = torch.tensor([any(c in t for c in stop_chars) or (frag and "\ufffd" in t) for t in texts])
        for i in eos_ids(tokenizer):
            if i < n:
                mask[i] = True
        memo[stop_chars] = mask
    return memo[stop_chars]


class _SlotLayer(DynamicLayer):
    """A cache layer backed by one preallocated buffer ``[rows, heads, capacity, dim]``.

    ``update`` writes the new columns in place; ``keys``/``values`` are views of
    the filled part. Rows can be overwritten (a new prompt in a slot), selected
    (pruning finished rows) and compacted (dropping padding columns).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.n = 0
        self.kb = self.vb = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def _reserve(self, rows: int, like: torch.Tensor, need: int) -> None:
        if self.kb is None or self.kb.shape[0] != rows:
            cap = need + 64
            self.kb = like.new_zeros((rows, like.shape[1], cap, like.shape[3]))
            self.vb = like.new_zeros((rows, like.shape[1], cap, like.shape[3]))
            self.device, self.is_initialized = like.device, True
            return
        if need > self.kb.shape[2]:
            cap = max(need, 2 * self.kb.shape[2])
            for name in ("kb", "vb"):
                old = getattr(self, name)
                new = old.new_zeros((old.shape[0], old.shape[1], cap, old.shape[3]))
                new[:, :, : self.n] = old[:, :, : self.n]
                setattr(self, name, new)

    def _views(self) -> None:
        self.keys, self.values = self.kb[:, :, : self.n], self.vb[:, :, : self.n]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.shape[-2]
        self._reserve(key_states.shape[0], key_states, self.n + q)
        self.kb[:, :, self.n : self.n + q] = key_states
        self.vb[:, :, self.n : self.n + q] = value_states
        self.n += q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.n if self.is_initialized else 0

    def place(self, rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor, P: int, length: int) -> None:
        """Write a freshly prefilled ``[len(rows), H, P + S, D]`` cache into ``rows``: its first
        ``P`` columns (the shared prefix) at the start, its ``S`` suffix columns at the end of
        ``length`` columns; what lies between is padding (masked)."""
        S = k.shape[2] - P
        self._reserve(self.kb.shape[0] if self.kb is not None else len(rows), k, length)
        self.n = max(self.n, length)
        for buf, src in ((self.kb, k), (self.vb, v)):
            blk = src.new_zeros((len(rows), src.shape[1], length, src.shape[3]))
            blk[:, :, :P] = src[:, :, :P]
            blk[:, :, length - S :] = src[:, :, P:]
            buf[rows, :, :length] = blk
        self._views()

    def select(self, rows: torch.Tensor) -> None:
        self.kb, self.vb = self.kb[rows], self.vb[rows]
        self._views()

    def drop_columns(self, start: int, stop: int) -> None:
        """Remove columns ``[start, stop)`` (padding no live row attends to)."""
        w = self.n - stop
        for buf in (self.kb, self.vb):
            buf[:, :, start : start + w] = buf[:, :, stop : self.n].clone()
        self.n = start + w
        self._views()


class SlotCache(Cache):
    """A KV cache of :class:`_SlotLayer` layers, one row per decoding slot."""

    def __init__(self):
        super().__init__(layer_class_to_replicate=_SlotLayer)


def auto_batch_size(model, device: torch.device, tokens_per_row: int) -> int:
    """``batch_size=auto``: on CUDA, as many rows as half the free memory holds (KV cache and
    logits per row), between 16 and ``CUDA_MAX_BATCH``; on the CPU, ``CPU_AUTO_BATCH``."""
    if device.type != "cuda":
        return CPU_AUTO_BATCH
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    elt = next(model.parameters()).element_size() if next(model.parameters()).is_floating_point() else 2
    per_row = 2 * cfg.num_hidden_layers * heads * head_dim * tokens_per_row * max(elt, 2)
    per_row += 2 * cfg.vocab_size * 4  # logits and softmax in fp32
    free, _ = torch.cuda.mem_get_info(device)
    rows = int(free * 0.5 // per_row)
    return max(16, min(CUDA_MAX_BATCH, rows))


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    is_complete: Callable[[str], bool],
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int | str = 16,
    share_prefix: bool = True,
    shared_attention: bool = True,
    seed: int = 0,
    stop_chars: str | None = None,
    on_batch: Callable[[list[int], list[Generation]], None] | None = None,
) -> list[Generation]:
    """Generate one completion per prompt.

    ``is_complete(text)`` says when a row's answer is done. With ``stop_chars`` it is
    asked only when a token holding one of those characters arrives (the caller
    promises ``is_complete`` turns true only on such a character); without, every
    live row is asked every step. ``on_batch(indices, gens)`` receives finished rows
    in groups of about ``batch_size`` (each group one store transaction).
    ``shared_attention=False`` copies the prefix's cache into every slot (the path
    before shared-prefix attention; for benchmarks and tests).
    """
    if not prompts:
        return []
    device = next(model.parameters()).device
    ids = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    eos = eos_ids(tokenizer)
    decode = batch_decoder(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gen = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    P = 0
    prefix_cache = None
    if share_prefix and len(ids) > 1:
        P = max(0, min(_common_prefix_len(ids), min(len(s) for s in ids) - 1))
    if batch_size in ("auto", 0):  # with shared-prefix attention a slot holds no copy of the prefix
        held = P if shared_attention and P > 0 and supports(model) is None else 0
        batch_size = auto_batch_size(model, device, max(len(s) for s in ids) - held + max_new_tokens)
    slots = max(1, min(int(batch_size), len(ids)))
    ckw = _cache_kw(model)
    shared = None  # the prefix's K/V once per layer (shared-prefix attention), or None: copied into each slot
    if P > 0:
        prefix_cache = DynamicCache()
        model(
            input_ids=torch.tensor([ids[0][:P]], device=device), use_cache=True, logits_to_keep=1, **{ckw: prefix_cache}
        )
        shared = shared_prefix_for(model, prefix_cache, shared_attention)
    C = 0 if shared is not None else P  # prefix columns each slot's cache holds
    mode = shared_prefix_mode(model) if shared is not None else contextlib.nullcontext()
    extra = {"star_prefix": shared} if shared is not None else {}

    # Longest suffixes first: a later prompt's suffix always fits in the columns a slot already has.
    waiting = sorted(range(len(ids)), key=lambda i: -len(ids[i]))[::-1]  # pop() from the end
    results: list[Generation | None] = [None] * len(ids)
    trig = stop_token_mask(tokenizer, stop_chars).to(device) if stop_chars is not None else None

    cache = SlotCache()
    rows = slots
    row_prompt = [-1] * rows  # prompt index in each row, -1 when free
    row_start = [0] * rows  # first cache column of the row's suffix
    buf = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    cnt = torch.zeros(rows, dtype=torch.long, device=device)
    live = torch.zeros(rows, dtype=torch.bool, device=device)
    attn = torch.zeros((rows, 0), dtype=torch.long, device=device)
    next_pos = torch.zeros(rows, dtype=torch.long, device=device)
    logits = None
    done: list[tuple[int, Generation]] = []
    n_live = 0  # rows holding a prompt (kept by admit and finish, not recounted per step)
    t_last = time.perf_counter()

    def admit(free: list[int]) -> None:
        """Prefill waiting prompts into the ``free`` rows."""
        nonlocal attn, logits, n_live
        take = [waiting.pop() for _ in range(min(len(free), len(waiting)))]
        if not take:
            return
        free = free[: len(take)]
        suf = [ids[i][P:] for i in take]
        S = max(len(s) for s in suf)
        k = len(take)
        inp = torch.full((k, S), pad_id, dtype=torch.long)
        a = torch.ones((k, P + S), dtype=torch.long)
        for j, s in enumerate(suf):
            inp[j, S - len(s) :] = torch.tensor(s)
            a[j, P : P + S - len(s)] = 0
        pos = (a.cumsum(-1) - 1).clamp(min=0)
        a, pos = a.to(device), pos.to(device)
        if shared is not None:  # the suffixes only, attending to the shared prefix
            tmp, mask = DynamicCache(), suffix_mask(a[:, P:])
        else:
            tmp, mask = copy.deepcopy(prefix_cache) if prefix_cache is not None else DynamicCache(), a
            if prefix_cache is not None and k > 1:
                tmp.batch_repeat_interleave(k)
        calls0 = shared.calls if shared is not None else 0
        out = model(
            input_ids=inp.to(device),
            attention_mask=mask,
            position_ids=pos[:, P:],
            use_cache=True,
            logits_to_keep=1,
            **{ckw: tmp},
            **extra,
        )
        if shared is not None and shared.calls < (calls0 + len(tmp.layers)):
            raise RuntimeError("shared-prefix attention: a layer's attention did not go through star_prefix")
        T = max(attn.shape[1], C + S)
        assert T - C >= S, "suffixes must arrive longest first"
        if attn.shape[1] < T:  # the first admission sets the width
            attn = torch.cat([attn, attn.new_zeros((rows, T - attn.shape[1]))], dim=1)
        r = torch.tensor(free, device=device)
        for layer, src in zip(_layers(cache, len(tmp.layers)), tmp.layers):
            layer.place(r, src.keys, src.values, C, T)
        row_mask = a.new_zeros((k, T))
        row_mask[:, :C] = a[:, :C]
        row_mask[:, T - S :] = a[:, P:]
        attn[r] = row_mask
        next_pos[r] = pos[:, -1] + 1
        cnt[r] = 0
        live[r] = True
        lg = out.logits[:, -1, :]
        if logits is None:
            logits = lg.new_zeros((rows, lg.shape[-1]))
        logits[r] = lg
        n_live += len(take)
        for j, (row, i) in enumerate(zip(free, take)):
            row_prompt[row] = i
            row_start[row] = T - len(suf[j])

    def finish(row: int, text: str, n: int, truncated: bool) -> None:
        nonlocal n_live
        n_live -= 1
        i = row_prompt[row]
        row_prompt[row] = -1
        done.append((i, Generation(text, len(ids[i]), n, truncated, 0.0)))

    def deliver(force: bool) -> None:
        nonlocal t_last
        if done and (force or len(done) >= slots):
            now = time.perf_counter()
            dt = (now - t_last) / len(done)
            t_last = now
            idx = [i for i, _ in done]
            gens = [Generation(g.text, g.prompt_tokens, g.output_tokens, g.truncated, dt) for _, g in done]
            for i, g in zip(idx, gens):
                results[i] = g
            done.clear()
            if on_batch is not None:
                on_batch(idx, gens)

    with mode:
        admit(list(range(rows)))
        ar = torch.arange(rows, device=device)
        while True:
            tok = _pick(logits, temperature, top_p, gen)
            tok = torch.where(live, tok, torch.full_like(tok, pad_id))
            buf[ar, cnt.clamp(max=max_new_tokens - 1)] = tok
            cnt += live.long()
            flag = live & (cnt >= max_new_tokens)
            flag |= live & trig[tok] if trig is not None else live
            hit = flag.nonzero().squeeze(1)
            freed: list[int] = []
            if hit.numel():
                counts = cnt[hit].tolist()
                seqs = [t[: c - (t[c - 1] in eos)] for t, c in zip(buf[hit, : max(counts)].tolist(), counts)]
                for row, c, t, text in zip(hit.tolist(), counts, seqs, decode(seqs)):
                    if len(t) < c:  # ended with EOS (not part of the text)
                        finish(row, text, c - 1, False)
                    elif is_complete(text):
                        finish(row, text, c, False)
                    elif c >= max_new_tokens:
                        finish(row, text, c, True)
                    else:
                        continue
                    freed.append(row)
                if freed:
                    live[torch.tensor(freed, device=device)] = False
            deliver(False)
            if n_live == 0 and not waiting:
                break
            if freed and not waiting and rows - n_live >= max(1, rows // 4):
                # No prompt left to take the free rows: shrink the batch.
                keep = [r for r in range(rows) if row_prompt[r] >= 0]
                kt = torch.tensor(keep, device=device)
                for layer in cache.layers:
                    layer.select(kt)
                tok, attn, next_pos, buf, cnt, live = (x[kt] for x in (tok, attn, next_pos, buf, cnt, live))
                row_prompt = [row_prompt[r] for r in keep]
                row_start = [row_start[r] for r in keep]
                rows = len(keep)
                ar = torch.arange(rows, device=device)
            attn = torch.cat([attn, attn.new_ones((rows, 1))], dim=-1)
            out = model(
                input_ids=tok[:, None],
                attention_mask=attn[:, None, None, :].bool() if shared is not None else attn,
                position_ids=next_pos[:, None],
                use_cache=True,
                **{ckw: cache},
                **extra,
            )
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
            if freed and waiting:
                admit(freed)
            # Drop padding columns that no live row reaches back to. The earliest live column only moves
            # when rows finish (and the bar only rises as the cache grows), so check only then.
            first = min((row_start[r] for r in range(rows) if row_prompt[r] >= 0), default=C) if freed else C
            if first - C >= max(32, (attn.shape[1] - C) // 2):
                for layer in cache.layers:
                    layer.drop_columns(C, first)
                attn = torch.cat([attn[:, :C], attn[:, first:]], dim=1)
                row_start = [s - (first - C) for s in row_start]
    deliver(True)
    return results  # type: ignore[return-value]


def _layers(cache: SlotCache, n: int) -> list[_SlotLayer]:
    while len(cache.layers) < n:
        cache.layers.append(_SlotLayer())
    return cache.layers


@torch.no_grad()
def generate_plain(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int) -> list[Generation]:
    """Reference: ``model.generate`` at batch size 1, greedy, stopping only at EOS (for the benchmark)."""
    device = next(model.parameters()).device
    res = []
    for p in prompts:
        enc = tokenizer(p, return_tensors="pt").to(device)
        t0 = time.perf_counter()
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[0, enc["input_ids"].shape[1] :]
        res.append(
            Generation(
                tokenizer.decode(new, skip_special_tokens=True),
                enc["input_ids"].shape[1],
                len(new),
                len(new) >= max_new_tokens,
                time.perf_counter() - t0,
            )
        )
    return res
