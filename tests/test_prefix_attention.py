"""Shared-prefix attention: the exact merge of the two softmax pieces, the decoder's use of it (same
tokens and logits as copying the prefix, slots that do not grow with the prefix), and the fallback."""

import logging

import pytest

torch = pytest.importorskip("torch")

from helpers.decoding import PREFIX, many_prompts, never, same  # noqa: E402


def full_attention(q, pk, pv, k, v, mask, scale):
    """Plain softmax attention over the prefix (repeated per row) followed by each row's suffix."""
    rows, heads = q.shape[:2]
    g = heads // k.shape[1]
    keys = torch.cat([pk.expand(rows, -1, -1, -1), k], dim=2).repeat_interleave(g, dim=1)
    vals = torch.cat([pv.expand(rows, -1, -1, -1), v], dim=2).repeat_interleave(g, dim=1)
    see = torch.cat([torch.ones(*mask.shape[:3], pk.shape[2], dtype=torch.bool), mask], dim=-1)
    s = (q @ keys.transpose(2, 3) * scale).masked_fill(~see, float("-inf"))
    return (torch.softmax(s, -1) @ vals).transpose(1, 2)


@pytest.mark.parametrize("q_len", [1, 4])
def test_cascade_equals_softmax_over_the_concatenation(q_len):
    """Grouped queries (6 heads on 2 KV heads), a padded suffix, causal queries when q_len > 1:
    the merged pieces equal one softmax over prefix + suffix columns."""
    from star_core.prefix_attention import cascade_attention, suffix_mask

    g = torch.Generator().manual_seed(0)
    rows, P, T, D = 3, 7, 5, 8
    q = torch.randn(rows, 6, q_len, D, generator=g)
    pk, pv = torch.randn(1, 2, P, D, generator=g), torch.randn(1, 2, P, D, generator=g)
    k, v = torch.randn(rows, 2, T, D, generator=g), torch.randn(rows, 2, T, D, generator=g)
    pad = torch.ones(rows, T, dtype=torch.long)
    pad[1, :2] = 0  # row 1: two padding columns
    if q_len == 1:
        mask = pad.bool()[:, None, None, :]
    else:  # the last q_len columns are the queries' own, causal among themselves
        mask = torch.cat(
            [pad.bool()[:, None, None, : T - q_len].expand(-1, 1, q_len, -1), suffix_mask(pad[:, -q_len:])], -1
        )
    ours = cascade_attention(q, k, v, mask, pk, pv, D**-0.5)
    ref = full_attention(q, pk, pv, k, v, mask, D**-0.5)
    assert ours.shape == (rows, q_len, 6, D)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_a_query_that_sees_no_suffix_column_attends_to_the_prefix_alone():
    """A left-padding query in a prefill sees only the prefix: finite, and exactly prefix attention."""
    from star_core.prefix_attention import cascade_attention

    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 2, 1, 4, generator=g)
    pk, pv = torch.randn(1, 1, 3, 4, generator=g), torch.randn(1, 1, 3, 4, generator=g)
    k, v = torch.randn(1, 1, 2, 4, generator=g), torch.randn(1, 1, 2, 4, generator=g)
    none = torch.zeros(1, 1, 1, 2, dtype=torch.bool)
    out = cascade_attention(q, k, v, none, pk, pv, 0.5)
    ref = (torch.softmax(q @ pk.transpose(2, 3) * 0.5, -1) @ pv).transpose(1, 2)
    torch.testing.assert_close(out, ref)


def record_slots(monkeypatch):
    """The decoder's slot caches, as it creates them."""
    from star_core import sampling

    made = []

    class Recorded(sampling.SlotCache):
        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(sampling, "SlotCache", Recorded)
    return made


def test_slot_memory_does_not_grow_with_the_prefix(tiny, monkeypatch):
    """With a 1x and a 4x few-shot prefix, the slots' cache columns are the same with shared-prefix
    attention; copying the prefix (today's fallback) makes them grow by the prefix."""
    from star_core.sampling import generate

    qs = [p[len(PREFIX) :] for p in many_prompts(6)]
    width = {}
    for shared in (True, False):
        for reps in (1, 4):
            made = record_slots(monkeypatch)
            prompts = [PREFIX * reps + q for q in qs]
            generate(
                tiny.model,
                tiny.tokenizer,
                prompts,
                max_new_tokens=6,
                is_complete=never,
                batch_size=6,
                shared_attention=shared,
            )
            width[shared, reps] = made[-1].layers[0].kb.shape[2]
    p1 = len(tiny.tokenizer(PREFIX)["input_ids"])
    assert width[True, 1] == width[True, 4]
    assert width[False, 4] - width[False, 1] >= 3 * p1 - 2
    assert width[True, 4] < width[False, 4] - 3 * p1


def test_same_logits_and_samples_as_copying_the_prefix(tiny, monkeypatch):
    """At temperature 0.8 the shared prefix gives the logits of today's path at every step (so the
    same distribution), and with the same seed the same samples; the attention went through it."""
    from star_core import prefix_attention, sampling

    real_pick, real_attn = sampling._pick, prefix_attention.cascade_attention
    seen, calls = [], []

    def pick(logits, *a):
        seen[-1].append(logits.clone())
        return real_pick(logits, *a)

    def attn(*a):
        calls.append(1)
        return real_attn(*a)

    monkeypatch.setattr(sampling, "_pick", pick)
    monkeypatch.setattr(prefix_attention, "cascade_attention", attn)
    runs = []
    for shared in (True, False):
        seen.append([])
        runs.append(
            sampling.generate(
                tiny.model,
                tiny.tokenizer,
                many_prompts(10),
                max_new_tokens=12,
                is_complete=never,
                batch_size=4,
                temperature=0.8,
                seed=3,
                stop_chars="7",
                shared_attention=shared,
            )
        )
    assert calls, "shared-prefix attention was not used"
    assert same(runs[0], runs[1])
    assert len(seen[0]) == len(seen[1])
    for a, b in zip(*seen):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_fallback_for_a_model_without_attention_interface(tiny, monkeypatch, caplog):
    """A model whose attention does not go through the interface: one log line, today's path, same tokens."""
    from star_core import prefix_attention, sampling

    prompts = many_prompts(8)
    kw = dict(max_new_tokens=10, is_complete=never, batch_size=3)
    shared = sampling.generate(tiny.model, tiny.tokenizer, prompts, **kw)
    monkeypatch.setattr(prefix_attention, "_FALLBACK_LOGGED", set())
    monkeypatch.setattr(tiny.model, "_supports_attention_backend", False)
    monkeypatch.setattr(prefix_attention, "cascade_attention", None)  # would fail if called
    with caplog.at_level(logging.INFO, logger="star"):
        copied = sampling.generate(tiny.model, tiny.tokenizer, prompts, **kw)
        sampling.generate(tiny.model, tiny.tokenizer, prompts, **kw)
    lines = [r.getMessage() for r in caplog.records if "shared-prefix attention off" in r.getMessage()]
    assert len(lines) == 1 and "AttentionInterface" in lines[0]
    assert same(shared, copied)


def test_models_with_sliding_window_layers_keep_the_copied_prefix():
    """A shared prefix would bypass a sliding window's mask: such a model is not switched."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from star_core.prefix_attention import supports

    kw = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    full = Qwen2ForCausalLM(Qwen2Config(**kw))
    sliding = Qwen2ForCausalLM(Qwen2Config(**kw, use_sliding_window=True, sliding_window=8, max_window_layers=0))
    assert supports(full) is None
    assert "sliding_attention" in supports(sliding)


def test_attention_setting_restored_even_when_decoding_fails(tiny):
    from star_core.sampling import generate

    def boom(_text):
        raise ValueError("boom")

    before = tiny.model.config._attn_implementation
    with pytest.raises(ValueError):
        generate(tiny.model, tiny.tokenizer, many_prompts(4), max_new_tokens=4, is_complete=boom, batch_size=2)
    assert tiny.model.config._attn_implementation == before != "star_prefix"


def test_auto_batch_counts_no_prefix_per_row(tiny, monkeypatch):
    """batch_size=auto sizes rows by suffix + new tokens with the shared prefix, by the whole prompt without."""
    from star_core import sampling

    asked = []
    monkeypatch.setattr(sampling, "auto_batch_size", lambda m, d, n: asked.append(n) or 4)
    prompts = many_prompts(5)
    longest = max(len(tiny.tokenizer(p)["input_ids"]) for p in prompts)
    for shared in (True, False):
        sampling.generate(
            tiny.model,
            tiny.tokenizer,
            prompts,
            max_new_tokens=3,
            is_complete=never,
            batch_size="auto",
            shared_attention=shared,
        )
    P = len(tiny.tokenizer(PREFIX)["input_ids"])
    assert asked[1] == longest + 3
    assert asked[0] <= longest + 3 - (P - 2)


# ---- CUDA (run by scripts/gpu_check.sh on a GPU machine; skipped elsewhere) -----------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cascade_on_cuda(dtype):
    """On the GPU, in fp32 and bf16: the merge against one softmax over the concatenation (in fp32)."""
    from star_core.prefix_attention import cascade_attention

    g = torch.Generator().manual_seed(2)
    rows, P, T, D = 64, 400, 40, 64
    q, pk, pv = (torch.randn(*shape, generator=g) for shape in ((rows, 9, 1, D), (1, 3, P, D), (1, 3, P, D)))
    k, v = torch.randn(rows, 3, T, D, generator=g), torch.randn(rows, 3, T, D, generator=g)
    mask = torch.rand(rows, 1, 1, T, generator=g) > 0.2
    ref = full_attention(q, pk, pv, k, v, mask, D**-0.5)
    out = cascade_attention(
        *(t.to("cuda", dtype) for t in (q, k, v)), mask.cuda(), pk.to("cuda", dtype), pv.to("cuda", dtype), D**-0.5
    )
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.float().cpu(), ref, atol=tol, rtol=tol)


@cuda
def test_shared_prefix_on_cuda_same_tokens_and_less_memory(tiny_model_dir):
    """The tiny model on CUDA in fp32: shared-prefix attention gives today's tokens, and its peak
    memory with a long prefix at batch 64 is below the copied prefix's."""
    from star_core.models import load_base
    from star_core.sampling import generate

    m = load_base(str(tiny_model_dir), "none", "cuda")
    model = m.model.float()
    prompts = [PREFIX * 12 + p[len(PREFIX) :] for p in many_prompts(64)]
    peaks, outs = [], []
    for shared in (True, False):
        torch.cuda.reset_peak_memory_stats()
        outs.append(
            generate(
                model,
                m.tokenizer,
                prompts,
                max_new_tokens=16,
                is_complete=never,
                batch_size=64,
                shared_attention=shared,
            )
        )
        peaks.append(torch.cuda.max_memory_allocated())
    assert same(*outs)
    assert peaks[0] < peaks[1]
