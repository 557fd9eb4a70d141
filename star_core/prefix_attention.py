"""Shared-prefix ("cascade") attention: the few-shot prefix's keys and values once per layer.

Every prompt of a decoding call starts with the same few-shot block. Instead of
copying that block's KV cache into every batch row, :class:`SharedPrefix` keeps it
once per layer (``[1, kv_heads, P, head_dim]``) and the decoder's cache holds only
each row's own suffix. Each attention call then computes, per layer:

- the prefix part: all rows' queries against the shared block in one batched
  product (``[kv_heads, rows * group * q, dim] @ [kv_heads, dim, P]``), so the
  prefix is read once per step, not once per row;
- the suffix part: each row's queries against its own cached columns, under the
  decoder's mask (padding, and causality inside a freshly prefilled suffix);
- the exact merge of the two softmax pieces: with ``m`` the larger of the two
  pieces' maxima, ``out = (Σ e^{s1-m} v1 + Σ e^{s2-m} v2) / (Σ e^{s1-m} + Σ e^{s2-m})``,
  i.e. each piece weighted by its log-sum-exp. No approximation: the same softmax
  as over the concatenated columns, only rounded differently.

It plugs into transformers through its attention interface: the function is
registered as ``attn_implementation="star_prefix"`` (with ``sdpa``'s mask builder),
the decoder switches the model to it for the call (:func:`shared_prefix_mode`) and
passes the :class:`SharedPrefix` as the ``star_prefix`` keyword, which the model's
layers hand to the attention function. Without that keyword the function is plain
``sdpa``. A model whose attention does not go through the interface (or that has
sliding-window layers, whose masks the prefix would bypass) is not switched: the
decoder keeps copying the prefix and logs one line saying so (:func:`supports`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

log = logging.getLogger("star")

NAME = "star_prefix"


@dataclass
class SharedPrefix:
    """The prefix's keys and values, one ``[1, kv_heads, P, head_dim]`` pair per layer."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    calls: int = field(default=0)
    """Attention calls that used the prefix (a check that every layer went through it)."""

    @classmethod
    def from_cache(cls, cache) -> SharedPrefix:
        return cls([layer.keys for layer in cache.layers], [layer.values for layer in cache.layers])


def suffix_mask(pad: torch.Tensor) -> torch.Tensor:
    """``[rows, 1, S, S]`` bool mask for prefilling left-padded suffixes after a shared prefix:
    causal inside the suffix, padding columns hidden (``pad``: ``[rows, S]``, 1 for a real token).
    A padding query sees no suffix column (only the prefix), which keeps its output finite."""
    S = pad.shape[1]
    causal = torch.ones((S, S), dtype=torch.bool, device=pad.device).tril()
    return causal[None, None] & pad.bool()[:, None, None, :]


def cascade_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    prefix_k: torch.Tensor,
    prefix_v: torch.Tensor,
    scaling: float,
) -> torch.Tensor:
    """Attention of ``query [rows, heads, q, dim]`` over a shared prefix (``[1, kv_heads, P, dim]``,
    visible to every query) followed by each row's suffix (``key``/``value``:
    ``[rows, kv_heads, T, dim]``; ``mask``: ``[rows, 1, q, T]`` bool, True = attend).
    Returns ``[rows, q, heads, dim]`` as the transformers attention functions do."""
    rows, heads, q, dim = query.shape
    kvh = key.shape[1]
    gq = heads // kvh * q
    qs = (query * scaling).reshape(rows, kvh, gq, dim)  # query head h uses kv head h // (heads // kvh)
    # The prefix: every row's queries against the shared keys in one product, [kv_heads, rows * gq, P].
    s1 = torch.matmul(qs.transpose(0, 1).reshape(kvh, rows * gq, dim), prefix_k[0].transpose(1, 2)).float()
    s2 = torch.matmul(qs, key.transpose(2, 3)).float()  # each row's own suffix, [rows, kv_heads, gq, T]
    if mask is not None:
        s2.view(rows, kvh, -1, q, s2.shape[-1]).masked_fill_(~mask[:, :, None], float("-inf"))
    # One max over both pieces (the prefix's is finite: it has no masked column), then each piece's
    # exponentials and sums against it: the two log-sum-exps merged exactly.
    top = torch.maximum(s1.amax(-1, keepdim=True).view(kvh, rows, gq, 1).transpose(0, 1), s2.amax(-1, keepdim=True))
    s2.sub_(top).exp_()
    s1.sub_(top.transpose(0, 1).reshape(kvh, rows * gq, 1)).exp_()
    den = s1.sum(-1, keepdim=True).view(kvh, rows, gq, 1).transpose(0, 1) + s2.sum(-1, keepdim=True)
    o1 = torch.matmul(s1.to(value.dtype), prefix_v[0]).view(kvh, rows, gq, dim).transpose(0, 1)
    out = ((o1.float() + torch.matmul(s2.to(value.dtype), value).float()) / den).to(query.dtype)
    return out.reshape(rows, heads, q, dim).transpose(1, 2).contiguous()


def star_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    star_prefix: SharedPrefix | None = None,
    **kwargs,
):
    """The registered attention function (``attn_implementation="star_prefix"``)."""
    if star_prefix is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    odd = [k for k in ("softcap", "s_aux", "sliding_window") if kwargs.get(k) is not None]
    if odd:  # the merge above knows plain softmax attention only: refuse rather than answer wrong
        raise NotImplementedError(f"shared-prefix attention does not handle {', '.join(odd)}")
    i = module.layer_idx
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    star_prefix.calls += 1
    out = cascade_attention(query, key, value, attention_mask, star_prefix.keys[i], star_prefix.values[i], scale)
    return out, None


AttentionInterface.register(NAME, star_prefix_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports(model) -> str | None:
    """``None`` when the model can decode with the shared prefix, else why not (for the log)."""
    base = _base(model)
    if not getattr(base, "_supports_attention_backend", False):
        return f"{type(base).__name__} does not route its attention through transformers' AttentionInterface"
    cfg = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    if cfg is not base.config or getattr(cfg, "sub_configs", None):
        return f"{type(base).__name__} is a composite model"
    if getattr(cfg, "attn_logit_softcapping", None) is not None:
        return f"{type(base).__name__} caps its attention logits"
    kinds = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"} or getattr(cfg, "use_sliding_window", False):
        return f"{type(base).__name__} has non-full attention layers ({', '.join(sorted(kinds))})"
    return None


_FALLBACK_LOGGED: set[str] = set()


def shared_prefix_for(model, prefix_cache, wanted: bool = True) -> SharedPrefix | None:
    """The prefix (a cache of its tokens alone) for shared-prefix attention, or None when not
    ``wanted`` or when the model cannot use it (said once per reason in the log): the caller
    then copies the prefix's cache into every slot, as before."""
    if not wanted:
        return None
    why = supports(model)
    if why is not None:
        if why not in _FALLBACK_LOGGED:
            _FALLBACK_LOGGED.add(why)
            log.info("shared-prefix attention off (%s): the prefix's cache is copied into every slot", why)
        return None
    return SharedPrefix.from_cache(prefix_cache)


@contextlib.contextmanager
def shared_prefix_mode(model) -> Iterator[None]:
    """Switch the model's attention to :func:`star_prefix_attention` for the block, then back."""
    cfg = _base(model).config
    old = cfg._attn_implementation
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = old
