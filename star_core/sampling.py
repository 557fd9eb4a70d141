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
- an in-place KV cache (:class:`star_core.slot_cache.SlotCache`): one buffer per
  layer, written at the next column, instead of a ``torch.cat`` of the whole cache
  every step. Columns of padding that no live row needs any more are dropped now
  and then.

:func:`generate` is the entry point; :class:`Decoder` holds one call's state (slots,
cache, per-row tokens, the waiting prompts) and its steps.

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

from star_core.cpu_linear import packed_linears
from star_core.prefix_attention import shared_prefix_for, shared_prefix_mode, suffix_mask, supports
from star_core.slot_cache import SlotCache

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


class Decoder:
    """The state of one :func:`generate` call, and the steps that move it on.

    ``rows`` slots decode at once; each holds one prompt (``row_prompt``, -1 when free) whose suffix
    starts at cache column ``row_start``. Per row, on the device: the tokens so far (``buf``), how many
    (``cnt``), whether it still decodes (``live``), its attention mask (``attn``) and next position
    (``next_pos``). ``waiting`` holds the prompts not yet admitted, ``done`` the finished rows not yet
    delivered, ``results`` every delivered one. The shared prefix (``P`` tokens) is computed once:
    with shared-prefix attention (``shared``) the slots hold none of it (``C`` = 0 columns), else each
    slot's cache starts with a copy of it (``C`` = ``P``).
    """

    def __init__(
        self,
        model,
        tokenizer,
        ids: list[list[int]],
        *,
        max_new_tokens: int,
        is_complete: Callable[[str], bool],
        temperature: float,
        top_p: float,
        seed: int,
        on_batch: Callable[[list[int], list[Generation]], None] | None,
    ) -> None:
        self.model, self.ids, self.max_new_tokens = model, ids, max_new_tokens
        self.is_complete, self.temperature, self.top_p, self.on_batch = is_complete, temperature, top_p, on_batch
        self.device = device = next(model.parameters()).device
        self.eos = eos_ids(tokenizer)
        self.decode = batch_decoder(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.gen = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
        self.ckw = _cache_kw(model)
        self.P, self.C = 0, 0
        self.prefix_cache = None
        self.shared = None  # the prefix's K/V once per layer (shared-prefix attention), or None: copied into each slot
        self.extra: dict = {}
        self.trig: torch.Tensor | None = None
        # Longest suffixes first: a later prompt's suffix always fits in the columns a slot already has.
        self.waiting = sorted(range(len(ids)), key=lambda i: -len(ids[i]))[::-1]  # pop() from the end
        self.results: list[Generation | None] = [None] * len(ids)
        self.done: list[tuple[int, Generation]] = []

    # ---- before the first step ----------------------------------------------------------------
    def share_prefix(self, share: bool, shared_attention: bool, batch_size: int | str) -> int:
        """Prefill the prompts' common prefix once (with ``share``), and return the number of slots
        (``batch_size``, or for ``auto`` what the device holds)."""
        ids, model, device = self.ids, self.model, self.device
        P = 0
        if share and len(ids) > 1:
            P = max(0, min(_common_prefix_len(ids), min(len(s) for s in ids) - 1))
        if batch_size in ("auto", 0):  # with shared-prefix attention a slot holds no copy of the prefix
            held = P if shared_attention and P > 0 and supports(model) is None else 0
            batch_size = auto_batch_size(model, device, max(len(s) for s in ids) - held + self.max_new_tokens)
        slots = max(1, min(int(batch_size), len(ids)))
        if P > 0:
            self.prefix_cache = DynamicCache()
            model(
                input_ids=torch.tensor([ids[0][:P]], device=device),
                use_cache=True,
                logits_to_keep=1,
                **{self.ckw: self.prefix_cache},
            )
            self.shared = shared_prefix_for(model, self.prefix_cache, shared_attention)
        self.P = P
        self.C = 0 if self.shared is not None else P  # prefix columns each slot's cache holds
        self.extra = {"star_prefix": self.shared} if self.shared is not None else {}
        return slots

    def allocate(self, rows: int, tokenizer, stop_chars: str | None) -> None:
        """The slots' cache and per-row tensors, for ``rows`` rows; the stop mask of ``stop_chars``."""
        device = self.device
        self.trig = stop_token_mask(tokenizer, stop_chars).to(device) if stop_chars is not None else None
        self.cache = SlotCache()
        self.slots = self.rows = rows
        self.row_prompt = [-1] * rows  # prompt index in each row, -1 when free
        self.row_start = [0] * rows  # first cache column of the row's suffix
        self.buf = torch.full((rows, self.max_new_tokens), self.pad_id, dtype=torch.long, device=device)
        self.cnt = torch.zeros(rows, dtype=torch.long, device=device)
        self.live = torch.zeros(rows, dtype=torch.bool, device=device)
        self.attn = torch.zeros((rows, 0), dtype=torch.long, device=device)
        self.next_pos = torch.zeros(rows, dtype=torch.long, device=device)
        self.ar = torch.arange(rows, device=device)
        self.logits: torch.Tensor | None = None
        self.n_live = 0  # rows holding a prompt (kept by admit and finish, not recounted per step)
        self.t_last = time.perf_counter()

    # ---- continuous batching ----------------------------------------------------------------
    def _prefill(self, suf: list[list[int]]):
        """Run the suffixes ``suf`` (left-padded to the longest) against the prefix: their cache, the
        model's output, their attention mask over prefix and suffix, and their positions."""
        P, shared, device = self.P, self.shared, self.device
        S = max(len(s) for s in suf)
        k = len(suf)
        inp = torch.full((k, S), self.pad_id, dtype=torch.long)
        a = torch.ones((k, P + S), dtype=torch.long)
        for j, s in enumerate(suf):
            inp[j, S - len(s) :] = torch.tensor(s)
            a[j, P : P + S - len(s)] = 0
        pos = (a.cumsum(-1) - 1).clamp(min=0)
        a, pos = a.to(device), pos.to(device)
        if shared is not None:  # the suffixes only, attending to the shared prefix
            tmp, mask = DynamicCache(), suffix_mask(a[:, P:])
        else:
            tmp, mask = copy.deepcopy(self.prefix_cache) if self.prefix_cache is not None else DynamicCache(), a
            if self.prefix_cache is not None and k > 1:
                tmp.batch_repeat_interleave(k)
        calls0 = shared.calls if shared is not None else 0
        out = self.model(
            input_ids=inp.to(device),
            attention_mask=mask,
            position_ids=pos[:, P:],
            use_cache=True,
            logits_to_keep=1,
            **{self.ckw: tmp},
            **self.extra,
        )
        if shared is not None and shared.calls < (calls0 + len(tmp.layers)):
            raise RuntimeError("shared-prefix attention: a layer's attention did not go through star_prefix")
        return tmp, out, a, pos

    def admit(self, free: list[int]) -> None:
        """Prefill waiting prompts into the ``free`` rows."""
        take = [self.waiting.pop() for _ in range(min(len(free), len(self.waiting)))]
        if not take:
            return
        free = free[: len(take)]
        P, C, rows = self.P, self.C, self.rows
        suf = [self.ids[i][P:] for i in take]
        S = max(len(s) for s in suf)
        tmp, out, a, pos = self._prefill(suf)
        T = max(self.attn.shape[1], C + S)
        assert T - C >= S, "suffixes must arrive longest first"
        if self.attn.shape[1] < T:  # the first admission sets the width
            self.attn = torch.cat([self.attn, self.attn.new_zeros((rows, T - self.attn.shape[1]))], dim=1)
        r = torch.tensor(free, device=self.device)
        for layer, src in zip(self.cache.slot_layers(len(tmp.layers)), tmp.layers):
            layer.place(r, src.keys, src.values, C, T)
        row_mask = a.new_zeros((len(take), T))
        row_mask[:, :C] = a[:, :C]
        row_mask[:, T - S :] = a[:, P:]
        self.attn[r] = row_mask
        self.next_pos[r] = pos[:, -1] + 1
        self.cnt[r] = 0
        self.live[r] = True
        lg = out.logits[:, -1, :]
        if self.logits is None:
            self.logits = lg.new_zeros((rows, lg.shape[-1]))
        self.logits[r] = lg
        self.n_live += len(take)
        for j, (row, i) in enumerate(zip(free, take)):
            self.row_prompt[row] = i
            self.row_start[row] = T - len(suf[j])

    def finish(self, row: int, text: str, n: int, truncated: bool) -> None:
        self.n_live -= 1
        i = self.row_prompt[row]
        self.row_prompt[row] = -1
        self.done.append((i, Generation(text, len(self.ids[i]), n, truncated, 0.0)))

    def deliver(self, force: bool) -> None:
        """Hand the finished rows to ``on_batch`` once a batch of them is ready (``force``: now)."""
        done = self.done
        if done and (force or len(done) >= self.slots):
            now = time.perf_counter()
            dt = (now - self.t_last) / len(done)
            self.t_last = now
            idx = [i for i, _ in done]
            gens = [Generation(g.text, g.prompt_tokens, g.output_tokens, g.truncated, dt) for _, g in done]
            for i, g in zip(idx, gens):
                self.results[i] = g
            done.clear()
            if self.on_batch is not None:
                self.on_batch(idx, gens)

    # ---- one step ------------------------------------------------------------------------
    def next_tokens(self) -> torch.Tensor:
        """Pick every row's next token (padding for free rows) and append it to the row's tokens."""
        live = self.live
        tok = _pick(self.logits, self.temperature, self.top_p, self.gen)
        tok = torch.where(live, tok, torch.full_like(tok, self.pad_id))
        self.buf[self.ar, self.cnt.clamp(max=self.max_new_tokens - 1)] = tok
        self.cnt += live.long()
        return tok

    def stops(self, tok: torch.Tensor) -> list[int]:
        """Finish the rows whose answer is complete, that ended with EOS or that ran out of tokens; their
        rows, now free. Only rows whose new token may complete an answer are decoded on the host."""
        live, cnt, max_new_tokens, trig = self.live, self.cnt, self.max_new_tokens, self.trig
        flag = live & (cnt >= max_new_tokens)
        flag |= live & trig[tok] if trig is not None else live
        hit = flag.nonzero().squeeze(1)
        freed: list[int] = []
        if hit.numel():
            eos, finish, is_complete = self.eos, self.finish, self.is_complete
            counts = cnt[hit].tolist()
            seqs = [t[: c - (t[c - 1] in eos)] for t, c in zip(self.buf[hit, : max(counts)].tolist(), counts)]
            for row, c, t, text in zip(hit.tolist(), counts, seqs, self.decode(seqs)):
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
                live[torch.tensor(freed, device=self.device)] = False
        return freed

    def shrink(self, tok: torch.Tensor) -> torch.Tensor:
        """Drop the free rows (no prompt is left to take them); ``tok`` of the rows kept."""
        keep = [r for r in range(self.rows) if self.row_prompt[r] >= 0]
        kt = torch.tensor(keep, device=self.device)
        for layer in self.cache.layers:
            layer.select(kt)
        tok, self.attn, self.next_pos, self.buf, self.cnt, self.live = (
            x[kt] for x in (tok, self.attn, self.next_pos, self.buf, self.cnt, self.live)
        )
        self.row_prompt = [self.row_prompt[r] for r in keep]
        self.row_start = [self.row_start[r] for r in keep]
        self.rows = len(keep)
        self.ar = torch.arange(self.rows, device=self.device)
        return tok

    def forward(self, tok: torch.Tensor) -> None:
        """One decoding step of the model on every row's new token: the next logits."""
        self.attn = attn = torch.cat([self.attn, self.attn.new_ones((self.rows, 1))], dim=-1)
        out = self.model(
            input_ids=tok[:, None],
            attention_mask=attn[:, None, None, :].bool() if self.shared is not None else attn,
            position_ids=self.next_pos[:, None],
            use_cache=True,
            **{self.ckw: self.cache},
            **self.extra,
        )
        self.logits = out.logits[:, -1, :]
        self.next_pos = self.next_pos + 1

    def drop_padding(self, freed: list[int]) -> None:
        """Drop padding columns that no live row reaches back to. The earliest live column only moves
        when rows finish (and the bar only rises as the cache grows), so check only then."""
        C, row_prompt, row_start = self.C, self.row_prompt, self.row_start
        first = min((row_start[r] for r in range(self.rows) if row_prompt[r] >= 0), default=C) if freed else C
        if first - C >= max(32, (self.attn.shape[1] - C) // 2):
            for layer in self.cache.layers:
                layer.drop_columns(C, first)
            self.attn = torch.cat([self.attn[:, :C], self.attn[:, first:]], dim=1)
            self.row_start = [s - (first - C) for s in row_start]

    def run(self) -> list[Generation]:
        """Decode until every prompt is finished and delivered."""
        mode = shared_prefix_mode(self.model) if self.shared is not None else contextlib.nullcontext()
        with mode:
            self.admit(list(range(self.rows)))
            while True:
                tok = self.next_tokens()
                freed = self.stops(tok)
                self.deliver(False)
                if self.n_live == 0 and not self.waiting:
                    break
                if freed and not self.waiting and self.rows - self.n_live >= max(1, self.rows // 4):
                    tok = self.shrink(tok)  # no prompt left to take the free rows: shrink the batch
                self.forward(tok)
                if freed and self.waiting:
                    self.admit(freed)
                self.drop_padding(freed)
        self.deliver(True)
        return self.results  # type: ignore[return-value]


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
    pack_linears: bool = True,
) -> list[Generation]:
    """Generate one completion per prompt.

    ``is_complete(text)`` says when a row's answer is done. With ``stop_chars`` it is
    asked only when a token holding one of those characters arrives (the caller
    promises ``is_complete`` turns true only on such a character); without, every
    live row is asked every step. ``on_batch(indices, gens)`` receives finished rows
    in groups of about ``batch_size`` (each group one store transaction).
    ``shared_attention=False`` copies the prefix's cache into every slot (the path
    before shared-prefix attention; for benchmarks and tests). ``pack_linears``: on
    the CPU, run the fp32 linear layers through oneDNN with packed weights for the
    call (:mod:`star_core.cpu_linear`); False keeps torch's default kernel.
    """
    if not prompts:
        return []
    ids = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    dec = Decoder(
        model,
        tokenizer,
        ids,
        max_new_tokens=max_new_tokens,
        is_complete=is_complete,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        on_batch=on_batch,
    )
    hint = CPU_AUTO_BATCH if batch_size in ("auto", 0) else int(batch_size)
    with packed_linears(model, min(hint, len(ids)), enabled=pack_linears):
        slots = dec.share_prefix(share_prefix, shared_attention, batch_size)
        dec.allocate(slots, tokenizer, stop_chars)
        return dec.run()


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
