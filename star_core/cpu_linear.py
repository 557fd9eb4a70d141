"""Packed linear layers for decoding on the CPU.

On the CPU nearly all of a decoding step is the model's linear layers (a profile of the bundled
model at 16 rows: 76 % of the time in matrix products). PyTorch runs an fp32 ``nn.Linear``
through its BLAS; oneDNN, which PyTorch also ships, can instead pack each weight once into the
blocked layout its kernels read, and then multiply small row counts markedly faster on some CPUs
(1.6-1.9x over random weights of the bundled model's shapes at 16 rows, on this project's
2-core AMD EPYC test machine; see the README's benchmarks).

:func:`packed_linears` does that for the length of one decoding call: it packs every plain fp32
``nn.Linear`` of a CPU model, points the layer's ``forward`` at oneDNN's kernel, and puts
everything back when the block ends (an exception included). Packing costs about 0.4 s for the
bundled 135M model and holds a second copy of the weights while the call runs (not done when
that copy would take over half the memory still available); nothing is cached between calls, so
weights trained between calls are always the ones used.

The results are those of ``nn.Linear`` up to rounding (the sums run in another order, as they do
between two BLAS kernels). The first packed layer is checked against ``nn.Linear`` on random
input; if that check fails, or oneDNN is missing, the layers are left as they are and the log
says why, once. Layers it leaves alone: 4-bit and other subclasses of ``nn.Linear``, other
dtypes and devices, and layers whose ``forward`` something else already replaced (hooks).
Gradients do not flow through the packed kernel, so it refuses to run with gradients enabled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

log = logging.getLogger("star")

_SAID: set[str] = set()


def _say_once(why: str) -> None:
    if why not in _SAID:
        _SAID.add(why)
        log.info("packed CPU linear layers off (%s): torch's default kernel is used", why)


def _packable(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and isinstance(w, torch.Tensor)
        and w.dtype == torch.float32
        and w.device.type == "cpu"
        and "forward" not in module.__dict__
    )


def _ops_missing() -> str | None:
    if not torch.backends.mkldnn.is_available():
        return "this PyTorch build has no oneDNN"
    for name in ("_reorder_linear_weight", "_linear_pointwise"):
        if not hasattr(torch.ops.mkldnn, name):
            return f"torch.ops.mkldnn.{name} is missing in this PyTorch"
    return None


def _available_bytes() -> int | None:
    """The memory the system can still give (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _no_room(layers: list[torch.nn.Module]) -> str | None:
    """Why not, when the packed copies would take more than half the memory still available."""
    need = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    free = _available_bytes()
    if free is not None and need > free // 2:
        return (
            f"the packed weights ({need / 2**30:.1f} GiB) would take over half the free memory ({free / 2**30:.1f} GiB)"
        )
    return None


def _packed_forward(layer: torch.nn.Linear, packed: torch.Tensor):
    """A ``forward`` for ``layer`` through oneDNN with its packed weight (fp32 CPU input), else the layer's own."""
    bias = layer.bias

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu":
            return torch.nn.functional.linear(x, layer.weight, bias)
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    return forward


def _agrees(layer: torch.nn.Linear, forward, rows: int) -> bool:
    """The packed layer against ``nn.Linear`` on random input: equal up to fp32 rounding."""
    x = torch.randn((rows, layer.in_features), generator=torch.Generator().manual_seed(0))
    ref = torch.nn.functional.linear(x, layer.weight, layer.bias)
    got = forward(x)
    return got.shape == ref.shape and bool(torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * layer.in_features**0.5))


@contextlib.contextmanager
def packed_linears(model: torch.nn.Module, rows: int, enabled: bool = True) -> Iterator[int]:
    """For the block, run ``model``'s plain fp32 CPU ``nn.Linear`` layers through oneDNN with their
    weights packed for inputs of about ``rows`` rows. Yields how many layers were packed (0: none,
    the model runs as it is)."""
    layers = [m for m in model.modules() if _packable(m)] if enabled else []
    why = None
    if layers:
        why = _ops_missing() or ("gradients are enabled" if torch.is_grad_enabled() else None) or _no_room(layers)
    patched: list[torch.nn.Module] = []
    if layers and why is None:
        try:
            hint = max(2, int(rows))
            for i, layer in enumerate(layers):
                fwd = _packed_forward(layer, torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), hint))
                if i == 0 and not _agrees(layer, fwd, hint):
                    why = "oneDNN's result differs from nn.Linear's on this machine"
                    break
                layer.forward = fwd
                patched.append(layer)
        except RuntimeError as e:  # a build whose oneDNN cannot pack this weight
            why = f"oneDNN could not pack a weight: {str(e).splitlines()[0][:120]}"
        if why is not None:
            _restore(patched)
            patched = []
    if why is not None:
        _say_once(why)
    try:
        yield len(patched)
    finally:
        _restore(patched)


def _restore(layers: list[torch.nn.Module]) -> None:
    for layer in layers:
        layer.__dict__.pop("forward", None)
