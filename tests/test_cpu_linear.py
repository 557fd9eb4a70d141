"""Packed CPU linear layers (star_core.cpu_linear): the model's outputs are nn.Linear's up to rounding,
the layers are put back after the block (an exception included), and anything it cannot pack, or a
machine where the packed kernel disagrees, leaves the model as it is and says why in the log."""

import contextlib
import logging

import pytest

torch = pytest.importorskip("torch")

from helpers.decoding import many_prompts, never, same  # noqa: E402

needs_onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"),
    reason="this PyTorch has no oneDNN linear kernel",
)


def _plain_linears(model):
    return [m for m in model.modules() if type(m) is torch.nn.Linear]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@needs_onednn
def test_packed_model_gives_the_same_logits_and_is_put_back(tiny):
    from star_core import cpu_linear

    ids = torch.randint(0, tiny.model.config.vocab_size, (3, 9), generator=torch.Generator().manual_seed(1))
    ref = _logits(tiny.model, ids)
    calls = []

    with torch.no_grad(), cpu_linear.packed_linears(tiny.model, rows=3) as n:
        assert n == len(_plain_linears(tiny.model)) > 0
        packed = tiny.model.lm_head.forward
        tiny.model.lm_head.forward = lambda x: (calls.append(1), packed(x))[1]  # count the packed calls
        got = _logits(tiny.model, ids)
    assert calls, "the packed kernel was not used"
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert all("forward" not in m.__dict__ for m in _plain_linears(tiny.model))
    assert torch.equal(_logits(tiny.model, ids), ref)  # back to torch's kernel: bit for bit as before


@needs_onednn
def test_layers_are_put_back_when_the_block_fails(tiny):
    from star_core import cpu_linear

    with pytest.raises(ValueError), torch.no_grad(), cpu_linear.packed_linears(tiny.model, rows=4) as n:
        assert n > 0
        raise ValueError("decoding failed")
    assert all("forward" not in m.__dict__ for m in _plain_linears(tiny.model))


def test_what_it_leaves_alone(tiny, caplog):
    """Off, gradients on, a hooked layer's own forward, subclasses (4-bit layers are) and other dtypes."""
    from star_core import cpu_linear

    with torch.no_grad(), cpu_linear.packed_linears(tiny.model, rows=4, enabled=False) as n:
        assert n == 0
    cpu_linear._SAID.clear()
    with caplog.at_level(logging.INFO, logger="star"), cpu_linear.packed_linears(tiny.model, rows=4) as n:
        assert n == 0
    assert ("gradients are enabled" if cpu_linear._ops_missing() is None else "oneDNN") in caplog.text

    class Sub(torch.nn.Linear):
        pass

    hooked = torch.nn.Linear(8, 8)
    hooked.forward = lambda x: x  # e.g. an offloading hook
    m = torch.nn.Sequential(Sub(8, 8), hooked, torch.nn.Linear(8, 8).double(), torch.nn.Linear(8, 8))
    assert [cpu_linear._packable(x) for x in m] == [False, False, False, True]


@needs_onednn
def test_a_disagreeing_kernel_is_not_used(tiny, monkeypatch, caplog):
    from star_core import cpu_linear

    real = cpu_linear._packed_forward

    def off_by_one(layer, packed):
        f = real(layer, packed)
        return lambda x: f(x) + 1.0

    monkeypatch.setattr(cpu_linear, "_packed_forward", off_by_one)
    cpu_linear._SAID.clear()
    with caplog.at_level(logging.INFO, logger="star"), torch.no_grad():
        with cpu_linear.packed_linears(tiny.model, rows=4) as n:
            assert n == 0
            assert all("forward" not in m.__dict__ for m in _plain_linears(tiny.model))
    assert "differs from nn.Linear" in caplog.text


def test_a_torch_without_onednn_falls_back(tiny, monkeypatch, caplog):
    from star_core import cpu_linear

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    cpu_linear._SAID.clear()
    with caplog.at_level(logging.INFO, logger="star"), torch.no_grad():
        with cpu_linear.packed_linears(tiny.model, rows=4) as n:
            assert n == 0
    assert "no oneDNN" in caplog.text


@needs_onednn
def test_decoder_same_tokens_with_and_without_packing(tiny, monkeypatch):
    """Continuous batching over a shared prefix, greedy: the packed decoding call gives the tokens of the
    unpacked one, and it did go through the packed layers."""
    from star_core import cpu_linear, sampling

    packed_counts = []
    real = cpu_linear.packed_linears

    @contextlib.contextmanager
    def spy(*a, **k):
        with real(*a, **k) as n:
            packed_counts.append(n)
            yield n

    monkeypatch.setattr(sampling, "packed_linears", spy)
    prompts = many_prompts(12, seed=3)
    kw = dict(max_new_tokens=20, is_complete=never, batch_size=4, stop_chars="7")
    on = sampling.generate(tiny.model, tiny.tokenizer, prompts, **kw)
    off = sampling.generate(tiny.model, tiny.tokenizer, prompts, pack_linears=False, **kw)
    assert packed_counts[0] == len(_plain_linears(tiny.model)) and packed_counts[1] == 0
    assert same(on, off)


def test_no_packing_when_memory_is_short(tiny, monkeypatch, caplog):
    from star_core import cpu_linear

    need = sum(m.weight.numel() * 4 for m in _plain_linears(tiny.model))
    monkeypatch.setattr(cpu_linear, "_available_bytes", lambda: 2 * need - 1)
    cpu_linear._SAID.clear()
    with caplog.at_level(logging.INFO, logger="star"), torch.no_grad():
        with cpu_linear.packed_linears(tiny.model, rows=4) as n:
            assert n == 0
    assert "half the free memory" in caplog.text
    monkeypatch.setattr(cpu_linear, "_available_bytes", lambda: 2 * need)
    with torch.no_grad(), cpu_linear.packed_linears(tiny.model, rows=4) as n:
        assert n == (len(_plain_linears(tiny.model)) if cpu_linear._ops_missing() is None else 0)


@pytest.mark.parametrize("setting", [True, False])
def test_the_config_setting_reaches_the_decoder(monkeypatch, setting):
    """``pack_cpu_linears`` in a run's config is what the decoder is called with (both backends call ``decode``)."""
    from star_core import backends, config, sampling

    seen = {}
    monkeypatch.setattr(sampling, "generate", lambda *a, **kw: seen.update(kw) or [])
    cfg = config.build(None, {}, [f"pack_cpu_linears={str(setting).lower()}"])
    task = config.make_task(cfg)
    backends.decode(None, None, backends.DecodeSettings.of(cfg), task, ["Q"], temperature=0.0, seed=0)
    assert seen["pack_linears"] is setting
