"""The batched sampler must produce exactly what plain greedy decoding produces."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from star_core.models import load_base

    return load_base(str(tiny_model_dir), quantization="none", device="cpu")


PREFIX = "Q: What is 1 + 2?\nA: 1 + 2 = 3. The answer is 3.\n\nQ: What is 4 + 4?\nA: 4 + 4 = 8. The answer is 8.\n\n"
QUESTIONS = ["Q: What is 47 + 38?\nA:", "Q: What is 3 + 5?\nA:", "Q: What is 123 + 456?\nA:",
             "Q: Where would you put a plate?\nA:", "Q: What is 9 + 9?\nA:"]


def never(_text):
    return False


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batched_equals_plain_greedy(tiny, share_prefix, batch_size):
    from star_core.sampling import generate, generate_plain

    prompts = [PREFIX + q for q in QUESTIONS]
    ours = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=12, is_complete=never,
                    batch_size=batch_size, share_prefix=share_prefix)
    ref = generate_plain(tiny.model, tiny.tokenizer, prompts, max_new_tokens=12)
    for o, r in zip(ours, ref):
        assert o.text == r.text[: len(o.text)]
        assert o.output_tokens == r.output_tokens or o.output_tokens < 12
        assert o.prompt_tokens == r.prompt_tokens


def test_stop_at_answer_and_truncation(tiny):
    from star_core.sampling import generate

    prompts = [PREFIX + q for q in QUESTIONS]
    # stop as soon as 3 characters are produced: every row stops early, none truncated
    short = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=30,
                     is_complete=lambda t: len(t) >= 3, batch_size=3)
    assert all(not g.truncated for g in short)
    assert all(len(g.text) >= 3 or g.output_tokens < 30 for g in short)  # stopped by the check or at EOS
    assert sum(g.output_tokens for g in short) < 30 * len(short)  # stop-at-answer cut decoding short
    full = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=5, is_complete=never, batch_size=3)
    assert all(g.truncated or g.output_tokens < 5 for g in full)
    for s, f in zip(short, full):  # pruning rows must not change the survivors' text
        assert f.text.startswith(s.text[: len(f.text)]) or s.text.startswith(f.text)


def test_sampling_is_seeded(tiny):
    from star_core.sampling import generate

    prompts = [PREFIX + q for q in QUESTIONS]
    a = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=8, is_complete=never,
                 temperature=1.0, seed=3)
    b = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=8, is_complete=never,
                 temperature=1.0, seed=3)
    assert [g.text for g in a] == [g.text for g in b]
