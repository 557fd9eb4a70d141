"""The quantization policy (quantization=auto) and sampling from a full-precision copy over a 4-bit base."""

import logging

import pytest

torch = pytest.importorskip("torch")

from star_core import loop  # noqa: E402
from star_core.models import (  # noqa: E402
    AUTO_4BIT_GPU_SHARE,
    choose_quantization,
    count_parameters,
    full_precision_copy,
    load_adapter,
    load_base,
    want_sampling_copy,
    weight_bytes,
)

GiB = 2**30
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize(
    "quantization,dev,params,gpu,expect",
    [
        ("auto", CUDA, 135_000_000, 80 * GiB, False),  # the bundled model on an H100: bf16
        ("auto", CUDA, 8_000_000_000, 24 * GiB, True),  # 16 GiB of bf16 weights on a 24 GiB card: NF4
        ("auto", CUDA, 8_000_000_000, 80 * GiB, False),  # 16 GiB is 20% of 80 GiB: bf16
        ("auto", CUDA, 12_000_000_000, 80 * GiB, True),  # 24 GiB is 30%: NF4
        ("auto", CUDA, None, 80 * GiB, True),  # unknown size: the safe choice
        ("auto", CPU, 135_000_000, None, False),
        ("4bit", CPU, 135_000_000, None, True),
        ("none", CUDA, 70_000_000_000, 80 * GiB, False),
    ],
)
def test_choose_quantization(quantization, dev, params, gpu, expect):
    quant, why = choose_quantization(quantization, dev, params, gpu)
    assert quant is expect
    assert ("4-bit" in why) is expect and why
    if quantization == "auto" and dev.type == "cuda" and params:
        assert (2 * params > AUTO_4BIT_GPU_SHARE * gpu) is expect


def test_count_parameters_matches_the_loaded_model(tiny_model_dir):
    loaded = load_base(str(tiny_model_dir), "none", "cpu")
    assert count_parameters(str(tiny_model_dir)) == sum(p.numel() for p in loaded.model.parameters())


@pytest.fixture(scope="module")
def quantized_tiny(tiny_model_dir):
    pytest.importorskip("bitsandbytes")
    return load_base(str(tiny_model_dir), "4bit", "cpu")


def test_full_precision_copy(quantized_tiny, tiny_model_dir):
    assert quantized_tiny.quantized
    assert want_sampling_copy("auto", quantized_tiny)[0] is False  # no copy on the CPU unless asked
    assert want_sampling_copy("quantized", quantized_tiny)[0] is False
    assert want_sampling_copy("full", quantized_tiny)[0] is True
    plain = load_base(str(tiny_model_dir), "none", "cpu")
    assert want_sampling_copy("full", plain)[0] is False  # nothing to copy
    copy = full_precision_copy(quantized_tiny)
    assert not copy.quantized
    assert not any("4bit" in type(m).__name__ for m in copy.model.modules())
    assert any("4bit" in type(m).__name__ for m in quantized_tiny.model.modules())
    # the 4-bit layers are counted by their real shape, tied weights once
    assert weight_bytes(quantized_tiny.model) == weight_bytes(copy.model) == 2 * count_parameters(str(tiny_model_dir))


def test_run_samples_from_the_copy_with_the_adapter_merged(tiny_model_dir, tmp_path, caplog):
    pytest.importorskip("bitsandbytes")
    from helpers.tiny_runs import tiny_cfg

    cfg = tiny_cfg(
        tiny_model_dir,
        "arithmetic",
        iterations=1,
        quantization="4bit",
        sample_from="full",
        warm_start=4,
        learning_rate=3e-2,
    )
    with caplog.at_level(logging.INFO, logger="star"):
        run = loop.start(cfg, tmp_path / "run", progress=False)
    assert "sampling from a full-precision copy" in caplog.text
    # What sampled the last iteration: the copy with iteration 1's adapter merged.
    from star_core.store import RunStore

    runner = loop.Runner(cfg, run, RunStore(run), loop.load_data(cfg), progress=False)
    runner.use_adapter(runner.model_adapter(1))
    sampler = runner.sampling_model()
    assert not any("4bit" in type(m).__name__ for m in sampler.modules())
    ref = load_adapter(load_base(str(tiny_model_dir), "none", "cpu").model, run / runner.model_adapter(1))
    bare = load_base(str(tiny_model_dir), "none", "cpu").model
    ids = torch.tensor([[1, 5, 9, 17, 33]])
    with torch.no_grad():
        got, want, base = (m(input_ids=ids).logits for m in (sampler, ref, bare))
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, base, atol=1e-3)  # the adapter did change the model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_policy(tiny_model_dir):
    pytest.importorskip("bitsandbytes")
    small = load_base(str(tiny_model_dir), "auto", "cuda")
    assert not small.quantized  # a tiny model's bf16 weights fit easily
    q = load_base(str(tiny_model_dir), "4bit", "cuda")
    assert q.quantized and want_sampling_copy("auto", q)[0]
    assert next(full_precision_copy(q).model.parameters()).dtype == torch.bfloat16
