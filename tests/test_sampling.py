"""The decoder must produce exactly what plain greedy decoding produces, and what the previous
static-batch decoder (tests/helpers/reference_decoder.py) produced, stops included."""

import sqlite3
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from helpers.decoding import PREFIX, QUESTIONS, many_prompts, never, same  # noqa: E402


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batched_equals_plain_greedy(tiny, share_prefix, batch_size):
    from star_core.sampling import generate, generate_plain

    prompts = [PREFIX + q for q in QUESTIONS]
    ours = generate(
        tiny.model,
        tiny.tokenizer,
        prompts,
        max_new_tokens=12,
        is_complete=never,
        batch_size=batch_size,
        share_prefix=share_prefix,
    )
    ref = generate_plain(tiny.model, tiny.tokenizer, prompts, max_new_tokens=12)
    for o, r in zip(ours, ref):
        assert o.text == r.text[: len(o.text)]
        assert o.output_tokens == r.output_tokens or o.output_tokens < 12
        assert o.prompt_tokens == r.prompt_tokens


@pytest.mark.parametrize("batch_size", [3, 8, 64])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_continuous_batching_matches_previous_decoder(tiny, batch_size, share_prefix):
    """24 prompts through 3 or 8 slots: rows finish at different steps (stop characters that the tiny
    model emits often), later prompts take their slots; every output is token for token the previous
    decoder's, stops and truncations included."""
    from helpers.reference_decoder import generate_reference
    from star_core.sampling import generate

    prompts = many_prompts()
    for chars in ("7", "e", " "):

        def done(t, chars=chars):
            return chars in t.lstrip()

        ours = generate(
            tiny.model,
            tiny.tokenizer,
            prompts,
            max_new_tokens=30,
            is_complete=done,
            batch_size=batch_size,
            share_prefix=share_prefix,
            stop_chars=chars,
        )
        ref = generate_reference(
            tiny.model,
            tiny.tokenizer,
            prompts,
            max_new_tokens=30,
            is_complete=done,
            batch_size=batch_size,
            share_prefix=share_prefix,
        )
        assert same(ours, ref), chars
        stopped = sum(not g.truncated for g in ours)
        assert 0 < stopped < len(ours)  # a mix of early stops and truncations: slots were refilled


def test_padding_columns_are_dropped_without_changing_outputs(tiny):
    """Many short prompts after one long one through 2 slots: the cache drops padding columns
    that no live row needs (it would otherwise grow with every admitted prompt)."""
    from helpers.reference_decoder import generate_reference
    from star_core import sampling
    from star_core.slot_cache import SlotLayer

    prompts = [PREFIX + "Q: What is 1 + 1?" + " x" * 40 + "\nA:"] + many_prompts(30, seed=1)
    widths = []
    real_drop = SlotLayer.drop_columns

    def spy(self, start, stop):
        widths.append(stop - start)
        real_drop(self, start, stop)

    SlotLayer.drop_columns = spy
    try:
        ours = sampling.generate(
            tiny.model, tiny.tokenizer, prompts, max_new_tokens=40, is_complete=never, batch_size=2, stop_chars="7"
        )
    finally:
        SlotLayer.drop_columns = real_drop
    ref = generate_reference(tiny.model, tiny.tokenizer, prompts, max_new_tokens=40, is_complete=never, batch_size=2)
    assert widths, "no compaction happened"
    assert same(ours, ref)


def test_stop_at_answer_and_truncation(tiny):
    from star_core.sampling import generate

    prompts = [PREFIX + q for q in QUESTIONS]
    # stop as soon as 3 characters are produced: every row stops early, none truncated
    short = generate(
        tiny.model, tiny.tokenizer, prompts, max_new_tokens=30, is_complete=lambda t: len(t) >= 3, batch_size=3
    )
    assert all(not g.truncated for g in short)
    assert all(len(g.text) >= 3 or g.output_tokens < 30 for g in short)  # stopped by the check or at EOS
    assert sum(g.output_tokens for g in short) < 30 * len(short)  # stop-at-answer cut decoding short
    full = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=5, is_complete=never, batch_size=3)
    assert all(g.truncated or g.output_tokens < 5 for g in full)
    for s, f in zip(short, full):  # pruning rows must not change the survivors' text
        assert f.text.startswith(s.text[: len(f.text)]) or s.text.startswith(f.text)


def test_on_batch_delivers_every_row_once(tiny):
    from star_core.sampling import generate

    prompts = many_prompts(11)
    seen: list[int] = []
    out = generate(
        tiny.model,
        tiny.tokenizer,
        prompts,
        max_new_tokens=10,
        is_complete=lambda t: "e" in t,
        batch_size=4,
        stop_chars="e",
        on_batch=lambda idx, gens: seen.extend(idx),
    )
    assert sorted(seen) == list(range(11))
    assert all(g is not None and g.seconds >= 0 for g in out)


def test_sampling_is_seeded(tiny):
    from star_core.sampling import generate

    prompts = [PREFIX + q for q in QUESTIONS]
    a = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=8, is_complete=never, temperature=1.0, seed=3)
    b = generate(tiny.model, tiny.tokenizer, prompts, max_new_tokens=8, is_complete=never, temperature=1.0, seed=3)
    assert [g.text for g in a] == [g.text for g in b]


def test_stop_token_mask(tiny):
    from star_core.sampling import stop_token_mask

    tok = tiny.tokenizer
    mask = stop_token_mask(tok, ".\n")
    for i in range(len(tok)):
        text = tok.decode([i])
        assert bool(mask[i]) == (
            "." in text or "\n" in text or i in {tok.eos_token_id, tok.bos_token_id, tok.pad_token_id}
        ), (i, text)


# ---- each task's stop characters ------------------------------------------------------------
def completions_for(task_name: str, fmt: str = "decomposition") -> tuple[object, list[str]]:
    """The task and completions to check: recorded raw outputs of the demo runs where there are any,
    and each task's own exemplar rationales written as completions."""
    from star_core.tasks import get_task

    task = get_task(task_name, format=fmt) if task_name == "arithmetic" else get_task(task_name)
    texts = []
    for ex in task.exemplars(task.default_exemplars, seed=0):
        texts.append(" " + task.format_target(ex.rationale, ex.answer) + "\n\nQ: next")
    demo = Path(__file__).resolve().parents[1] / "sample_data" / "runs"
    for db in demo.glob("*/store.sqlite") if fmt == "decomposition" else ():  # the demos' arithmetic format
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            texts += [
                r[0] for r in con.execute("SELECT raw_output FROM samples WHERE task = ? LIMIT 400", (task_name,))
            ]
        finally:
            con.close()
    return task, texts


@pytest.mark.parametrize(
    "task_name,fmt",
    [
        ("arithmetic", "decomposition"),
        ("arithmetic", "columns"),
        ("arithmetic", "carry"),
        ("arithmetic", "scratchpad"),
        ("commonsenseqa", ""),
        ("gsm8k", ""),
    ],
)
def test_is_complete_turns_true_only_on_a_stop_char(task_name, fmt):
    """The decoder asks is_complete only after a token holding one of task.stop_chars: so along any
    completion, is_complete may turn true only at such a character."""
    task, texts = completions_for(task_name, fmt or "decomposition")
    own = task.default_exemplars
    flips = 0
    for text in texts:
        prev = task.is_complete("")
        for i in range(1, len(text) + 1):
            now = task.is_complete(text[:i])
            if now and not prev:
                flips += 1
                assert text[i - 1] in task.stop_chars, (task_name, text[:i])
            prev = now
    assert flips >= own  # at least every exemplar completion completes: the check did run


# ---- CUDA (run by scripts/gpu_check.sh on a GPU machine; skipped elsewhere) -----------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_cuda_decoder_matches_previous_decoder(tiny_model_dir):
    from helpers.reference_decoder import generate_reference
    from star_core.models import load_base
    from star_core.sampling import generate

    m = load_base(str(tiny_model_dir), "none", "cuda")
    model = m.model.float()
    prompts = many_prompts()

    def done(t):
        return "e" in t.lstrip()

    ours = generate(model, m.tokenizer, prompts, max_new_tokens=30, is_complete=done, batch_size=8, stop_chars="e")
    ref = generate_reference(model, m.tokenizer, prompts, max_new_tokens=30, is_complete=done, batch_size=8)
    assert same(ours, ref)
    sampled = generate(model, m.tokenizer, prompts, max_new_tokens=8, is_complete=never, temperature=1.0, seed=1)
    again = generate(model, m.tokenizer, prompts, max_new_tokens=8, is_complete=never, temperature=1.0, seed=1)
    assert [g.text for g in sampled] == [g.text for g in again]


@cuda
def test_auto_batch_size_on_cuda(tiny_model_dir):
    from star_core.models import load_base
    from star_core.sampling import CUDA_MAX_BATCH, auto_batch_size

    m = load_base(str(tiny_model_dir), "none", "cuda")
    assert 16 <= auto_batch_size(m.model, m.device, 400) <= CUDA_MAX_BATCH
