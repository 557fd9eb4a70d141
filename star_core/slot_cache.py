"""The decoder's in-place KV cache: one preallocated buffer per layer, one row per decoding slot.

:class:`SlotLayer` writes each step's keys and values at the next column instead of a ``torch.cat`` of the
whole cache; a slot's rows are overwritten when a new prompt takes the slot, finished rows are dropped
(``select``) and padding columns no live row needs any more are removed (``drop_columns``). Used by
:mod:`star_core.sampling`.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class SlotLayer(DynamicLayer):
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
    """A KV cache of :class:`SlotLayer` layers, one row per decoding slot."""

    def __init__(self):
        super().__init__(layer_class_to_replicate=SlotLayer)

    def slot_layers(self, n: int) -> list[SlotLayer]:
        """The cache's layers, ``n`` of them (created empty on the first prefill)."""
        while len(self.layers) < n:
            self.layers.append(SlotLayer())
        return self.layers
