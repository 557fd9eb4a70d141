"""Sampling throughput: star's decoder against the ``model.generate`` a user would write.

Same model, same few-shot prompts, same max_new_tokens, greedy, one process:

- ``model.generate`` at batch 1 (reference);
- ``model.generate`` batched, left padding and the task's ``stop_strings``, at the
  same batch size as ours (the baseline to beat);
- star's decoder (continuous batching, shared prefix cache, stop on token ids, and on the
  CPU the linear layers through oneDNN with packed weights).

On the CPU it also times ``model.generate`` batched with the same packed linear layers,
and star with torch's default linear kernel, so the two sources of star's speed
(the kernel, the decoder) show apart.

It reports rationales/s, tokens/s (tokens each sampler produced, up to where it
stopped), the ratios, and how many parsed answers agree with the batched
baseline. star runs twice: with shared-prefix attention (the prefix's KV once per
layer) and "before", copying the prefix's KV into every slot (``shared_attention=False``).

``--host-overhead`` instead measures decoding steps/s on a tiny random model, where
compute is small and host work is most of what is left, with a one-line prefix and
with a 3-exemplar arithmetic prefix, before and after. ``--prefix-sweep`` measures
decoding steps/s of star's decoder at prefix lengths 64/256/512 and batch 16/32/128,
before and after (``--model tiny`` for the tiny random model).

  python bench/bench_sampler.py [--device cpu|cuda] [--task arithmetic] [--n 32] [--batch-size 16]
                                [--dtype auto|fp32|bf16|int8] [--quantization none|4bit] [--baseline-n 8]
  python bench/bench_sampler.py --host-overhead
  python bench/bench_sampler.py --prefix-sweep [--model tiny] [--steps 16]

A benchmark, not a test: it prints a table and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hf_batched(model, tok, prompts, max_new_tokens, batch_size, stop_strings):
    """What a user would write: ``model.generate`` on left-padded batches with ``stop_strings``."""
    import torch

    texts, ntok = [], []
    pad = tok.pad_token_id
    for s in range(0, len(prompts), batch_size):
        enc = tok(prompts[s : s + batch_size], return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                stop_strings=list(stop_strings),
                tokenizer=tok,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        for row in new:
            keep = row[row != pad]
            texts.append(tok.decode(keep, skip_special_tokens=True))
            ntok.append(len(keep))
    return texts, ntok


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _load(a):
    """The model in the asked dtype, its tokenizer, the task, the run's data and the prompts."""
    import torch

    from star_core import config
    from star_core.models import load_base
    from star_core.rundata import load_data

    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = config.build(None, {"task": a.task, "model": a.model}, [f"n_eval={max(a.n, a.baseline_n)}"])
    data = load_data(cfg)
    loaded = load_base(a.model, a.quantization, a.device)
    model, tok = loaded.model, loaded.tokenizer
    if a.dtype == "fp32" and not loaded.quantized:
        model = model.float()
    elif a.dtype == "bf16":
        model = model.to(torch.bfloat16)
    elif a.dtype == "int8":  # dynamic int8 linear layers (CPU only)
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    prompts = [data.task.prompt(p, data.exemplars) for p in data.eval[: a.n]]
    return model, tok, data.task, data, prompts


def _timer(a):
    clock = time.process_time if a.cpu_time else time.perf_counter

    def timed(fn):
        sync(a.device)
        t0 = clock()
        out = fn()
        sync(a.device)
        return out, clock() - t0

    return timed


def throughput(a) -> None:
    import torch

    from star_core.cpu_linear import packed_linears
    from star_core.sampling import generate, generate_plain

    model, tok, task, data, prompts = _load(a)
    bs = a.batch_size
    timed = _timer(a)

    def star(batch_size, **kw):
        return generate(
            model,
            tok,
            prompts,
            max_new_tokens=a.max_new_tokens,
            is_complete=task.is_complete,
            stop_chars=task.stop_chars,
            batch_size=batch_size,
            **{"pack_linears": not a.no_pack, **kw},
        )

    # warm-up (first calls allocate, CUDA loads kernels)
    generate(model, tok, prompts[:4], max_new_tokens=8, is_complete=task.is_complete, stop_chars=task.stop_chars)
    hf_batched(model, tok, prompts[:2], 4, 2, task.stop_strings)

    def answer(text):
        return task.parse(task.trim(text)).answer

    head = (
        f"task={a.task} device={a.device} dtype={a.dtype} quantization={a.quantization} "
        f"threads={torch.get_num_threads()} clock={'cpu' if a.cpu_time else 'wall'} n={len(prompts)}"
    )
    if a.sweep:
        print(head)
        for b in a.sweep:
            out, t = timed(lambda b=b: star(b))
            right = sum(answer(o.text) == p.gold for o, p in zip(out, data.eval))
            print(
                f"star batch {b:4d}: {len(out) / t:7.2f} rationales/s, "
                f"{sum(o.output_tokens for o in out) / t:8.1f} tokens/s, right {right}/{len(out)}"
            )
        return
    rows = []
    if a.baseline_n:
        b1, t = timed(lambda: generate_plain(model, tok, prompts[: a.baseline_n], max_new_tokens=a.max_new_tokens))
        rows.append(("model.generate, batch 1, no stop", len(b1), sum(g.output_tokens for g in b1), t))
    (hf_texts, hf_tok), t = timed(lambda: hf_batched(model, tok, prompts, a.max_new_tokens, bs, task.stop_strings))
    rows.append((f"model.generate, batch {bs}, left padding + stop_strings", len(hf_texts), sum(hf_tok), t))
    if a.device == "cpu":  # the same generate with star's packed CPU linear layers: what is left is the decoder

        def hf_packed():
            with torch.no_grad(), packed_linears(model, bs) as n:
                return hf_batched(model, tok, prompts, a.max_new_tokens, bs, task.stop_strings), n

        ((_, hf_tok_p), n_packed), t = timed(hf_packed)
        rows.append((f"model.generate, batch {bs}, + {n_packed} packed linear layers", len(prompts), sum(hf_tok_p), t))
        plain, t = timed(lambda: star(bs, pack_linears=False))
        rows.append(
            (f"star, batch {bs}, torch's default linear kernel", len(plain), sum(g.output_tokens for g in plain), t)
        )
    ours, t = timed(lambda: star(bs))
    before, t0 = timed(lambda: star(bs, shared_attention=False))
    rows.append(
        (f"star before, batch {bs}, prefix KV copied per slot", len(before), sum(g.output_tokens for g in before), t0)
    )
    rows.append(
        (f"star, batch {bs}, continuous + shared-prefix attention", len(ours), sum(g.output_tokens for g in ours), t)
    )
    same = sum(answer(o.text) == answer(h) for o, h in zip(ours, hf_texts))
    same_before = sum(o.text == b.text for o, b in zip(ours, before))
    right = sum(answer(o.text) == p.gold for o, p in zip(ours, data.eval))
    print(f"{head.replace(' n=', f' model={a.model} n=')} batch={bs} max_new_tokens={a.max_new_tokens}")
    _print_rows(rows)
    print(
        f"same parsed answer as the batched baseline: {same}/{len(ours)}; right: {right}/{len(ours)}; "
        f"same text as before: {same_before}/{len(ours)}"
    )


def _print_rows(rows) -> None:
    """The table of samplers, with star's rationales/s over each row's (the last row is star's)."""
    star_r = rows[-1][1] / rows[-1][3]
    print(f"{'sampler':58} {'rationales':>10} {'tokens':>7} {'sec':>7} {'rat/s':>7} {'tok/s':>8} {'star/this':>9}")
    for label, n, ntok, t in rows:
        print(f"{label:58} {n:10d} {ntok:7d} {t:7.2f} {n / t:7.2f} {ntok / t:8.1f} {star_r / (n / t):8.2f}x")


def _tiny(layers: int = 1):
    from star_core.models import load_base
    from star_fixtures.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as d:
        return load_base(str(build_tiny_model(Path(d) / "tiny", layers=layers, hidden=64)), "none", "cpu")


def _steps_per_s(m, prompts, steps: int, shared: bool, clock) -> float:
    """Decoding steps/s: ``steps`` new tokens per row (no stop), less the same call's prefill (1 token)."""
    from star_core.sampling import generate

    kw = dict(is_complete=lambda t: False, stop_chars=".\n", batch_size=len(prompts), shared_attention=shared)
    generate(m.model, m.tokenizer, prompts, max_new_tokens=2, **kw)  # warm-up
    t0 = clock()
    generate(m.model, m.tokenizer, prompts, max_new_tokens=1, **kw)
    t1 = clock()
    generate(m.model, m.tokenizer, prompts, max_new_tokens=steps, **kw)
    t2 = clock()
    return (steps - 1) / max(1e-9, (t2 - t1) - (t1 - t0))


def _before_after(m, prompts, steps: int, clock, repeats: int) -> tuple[float, float]:
    """Median steps/s of ``repeats`` runs each, before (prefix copied) and after (shared), in turn."""
    import statistics

    runs = [
        (_steps_per_s(m, prompts, steps, False, clock), _steps_per_s(m, prompts, steps, True, clock))
        for _ in range(repeats)
    ]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def host_overhead(a) -> None:
    """Steps/s of the decoder on a tiny random model (compute small: host work dominates)."""
    import torch

    from star_core.tasks import get_task

    torch.set_num_threads(a.threads or 1)
    m = _tiny()
    task = get_task("arithmetic")
    prefixes = {
        "one-line": "Q: What is 1 + 2?\nA: 1 + 2 = 3. The answer is 3.\n\n",
        "3 exemplars": task.few_shot_prefix(task.exemplars(3, seed=0)),
    }
    steps = 64
    print(
        f"tiny random model, greedy, {steps} new tokens per row, one prompt per row, stop check on '.\\n', "
        f"median of {a.repeats} runs each, before and after in turn, clock={'cpu' if a.cpu_time else 'wall'}"
    )
    print(
        f"{'prefix':>12} {'tokens':>6} {'attention':>9} {'batch':>6} {'steps/s':>8} {'rows*steps/s':>13} {'vs 16':>6}"
    )
    clock = time.process_time if a.cpu_time else time.perf_counter
    for name, prefix in prefixes.items():
        n = len(m.tokenizer(prefix)["input_ids"])
        got = {
            bs: _before_after(m, [prefix + f"Q: What is {i} + {i}?\nA:" for i in range(bs)], steps, clock, a.repeats)
            for bs in (16, 128)
        }
        for j, label in enumerate(("copied", "shared")):
            for bs in (16, 128):
                r = got[bs][j]
                print(f"{name:>12} {n:6d} {label:>9} {bs:6d} {r:8.0f} {bs * r:13.0f} {r / got[16][j]:6.0%}")


def prefix_sweep(a) -> None:
    """Decoding steps/s of star's decoder at prefix lengths 64/256/512 and batch 16/32/128, before
    (prefix KV copied into every slot) and after (shared-prefix attention)."""
    import torch

    from star_core.models import load_base

    torch.set_num_threads(a.threads or 1)
    m = _tiny(layers=2) if a.model == "tiny" else load_base(a.model, a.quantization, a.device)
    tok = m.tokenizer
    text = "".join(
        f"Q: What is {i} + {2 * i + 7}?\nA: {i} + {2 * i + 7} = {3 * i + 7}. The answer is {3 * i + 7}.\n\n"
        for i in range(200)
    )
    ids = tok(text, add_special_tokens=False)["input_ids"]
    clock = time.process_time if a.cpu_time else time.perf_counter
    print(
        f"model={a.model} device={a.device} threads={torch.get_num_threads()} steps={a.steps} "
        f"median of {a.repeats} runs each, before and after in turn, clock={'cpu' if a.cpu_time else 'wall'}"
    )
    print(f"{'prefix':>6} {'batch':>6} {'before steps/s':>15} {'after steps/s':>14} {'after/before':>13}")
    for plen in (64, 256, 512):
        prefix = tok.decode(ids[:plen])
        for bs in (16, 32, 128):
            prompts = [prefix + f"Q: What is {i} + {3 * i}?\nA:" for i in range(bs)]
            r0, r1 = _before_after(m, prompts, a.steps, clock, a.repeats)
            print(f"{plen:6d} {bs:6d} {r0:15.2f} {r1:14.2f} {r1 / r0:12.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="arithmetic")
    ap.add_argument("--model", default="bundled:smollm2-135m")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8"],
        help="auto: as star loads it (fp32 on the CPU, bf16 on CUDA)",
    )
    ap.add_argument("--quantization", default="none", choices=["none", "4bit"])
    ap.add_argument("--n", type=int, default=32, help="questions for the batched samplers")
    ap.add_argument("--baseline-n", type=int, default=8, help="questions for the batch-1 reference (0: skip)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--sweep",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="only star's decoder, at these batch sizes (e.g. 16,32,64)",
    )
    ap.add_argument(
        "--no-pack",
        action="store_true",
        help="--sweep: star with torch's default linear kernel on the CPU (no oneDNN packing)",
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with this process's CPU time, not wall time: with --threads 1 another process on "
        "the other core does not change the figures",
    )
    ap.add_argument("--host-overhead", action="store_true", help="steps/s on a tiny model at batch 16 and 128")
    ap.add_argument("--prefix-sweep", action="store_true", help="steps/s at prefix 64/256/512, batch 16/32/128")
    ap.add_argument("--steps", type=int, default=16, help="--prefix-sweep: new tokens per row")
    ap.add_argument(
        "--repeats",
        type=int,
        default=0,
        help="steps/s: median of this many runs (0: 5 on the tiny model, 1 on a real one)",
    )
    a = ap.parse_args()
    a.repeats = a.repeats or (5 if a.host_overhead or a.model == "tiny" else 1)
    if a.host_overhead:
        host_overhead(a)
    elif a.prefix_sweep:
        prefix_sweep(a)
    else:
        throughput(a)


if __name__ == "__main__":
    main()
