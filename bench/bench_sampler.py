"""Sampling throughput: our batched sampler vs plain ``model.generate`` at batch size 1.

Same model, same few-shot prompts, same max_new_tokens, greedy, one process.
The plain baseline stops only at EOS (what ``generate`` does by default); ours
batches, shares the few-shot prefix's KV cache and stops each row at its answer.

  python bench/bench_sampler.py [--task arithmetic] [--n 32] [--baseline-n 8] [--batch-size 16]

This is a benchmark, not a test: it prints a table and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="arithmetic")
    ap.add_argument("--model", default="bundled:smollm2-135m")
    ap.add_argument("--n", type=int, default=32, help="questions for our sampler")
    ap.add_argument("--baseline-n", type=int, default=8, help="questions for the batch-1 baseline (slow)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()

    import torch

    from star_core import config as C
    from star_core.loop import load_data
    from star_core.models import load_base
    from star_core.sampling import generate, generate_plain

    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = C.build(None, {"task": a.task, "model": a.model}, [f"n_eval={max(a.n, a.baseline_n)}"])
    data = load_data(cfg)
    loaded = load_base(a.model, "none", "cpu")
    task, ex = data.task, data.exemplars
    prompts = [task.prompt(p, ex) for p in data.eval[: a.n]]

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0

    # warm-up (first calls allocate)
    generate(loaded.model, loaded.tokenizer, prompts[:2], max_new_tokens=4, is_complete=task.is_complete)
    rows = []
    base, tb = timed(lambda: generate_plain(loaded.model, loaded.tokenizer, prompts[: a.baseline_n],
                                            max_new_tokens=a.max_new_tokens))
    rows.append(("model.generate, batch 1", len(base), sum(g.output_tokens for g in base), tb))
    for label, kw in [
        (f"ours, batch {a.batch_size}, no prefix sharing", {"share_prefix": False}),
        (f"ours, batch {a.batch_size}, shared prefix + stop-at-answer", {"share_prefix": True}),
    ]:
        out, t = timed(lambda kw=kw: generate(loaded.model, loaded.tokenizer, prompts,
                                              max_new_tokens=a.max_new_tokens, is_complete=task.is_complete,
                                              batch_size=a.batch_size, **kw))
        rows.append((label, len(out), sum(g.output_tokens for g in out), t))
        ours = out
    same = sum(task.parse(task.trim(o.text)).answer == task.parse(task.trim(b.text)).answer
               for o, b in zip(ours, base))
    print(f"task={a.task} model={a.model} threads={torch.get_num_threads()} max_new_tokens={a.max_new_tokens}")
    print(f"{'sampler':52} {'rationales':>10} {'tokens':>7} {'sec':>7} {'rat/s':>7} {'tok/s':>7}")
    for label, n, tok, t in rows:
        print(f"{label:52} {n:10d} {tok:7d} {t:7.1f} {n / t:7.2f} {tok / t:7.1f}")
    r0 = rows[0][1] / rows[0][3]
    print("speed-up in rationales/s vs model.generate batch 1: "
          + ", ".join(f"{lbl.split(',', 1)[1].strip()}: {n / t / r0:.1f}x" for lbl, n, _, t in rows[1:]))
    print(f"same parsed answer as the baseline on {same}/{len(base)} shared questions")


if __name__ == "__main__":
    main()
