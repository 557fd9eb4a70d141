"""One sampling phase through the sampler seam: the local decoder against Ray workers.

The same 32 arithmetic evaluation questions (1-4 digits, the default 4-exemplar prompt, greedy,
``max_new_tokens=96``) on the bundled model, fp32 on the CPU, through:

- ``local1`` (``local2``): star's decoder in this process (``sampler=local``), 1 (2) torch threads;
- ``ray1``, ``ray2``: ``sampler=ray`` on a local Ray cluster with 1 and 2 workers of 1 CPU (1 torch
  thread each), the prompts split evenly into units.

For each it reports the wall time of the phase, the CPU time of every process involved (this one and
the Ray processes it started, polled with psutil while they live), and for Ray the time to start
the cluster (paid once per run, not per phase) and the decoding time the workers report. Greedy
outputs must be identical across all of them; the script says so.

  python bench/bench_ray.py [--n 32] [--modes local1,ray1,ray2] [--max-new-tokens 96]

A benchmark, not a test: it prints a table and writes nothing. Time it on a quiet machine (it prints
the load average before and after).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class TreeCPU:
    """CPU seconds (user + system) of this process and its descendants, polled every 0.1 s so that
    processes that exit between two polls lose at most their last 0.1 s."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> None:
        try:
            procs = [self.me, *self.me.children(recursive=True)]
        except self.psutil.Error:
            return
        for p in procs:
            try:
                c = p.cpu_times()
                self.seen[p.pid] = c.user + c.system
            except self.psutil.Error:
                pass

    def _poll(self) -> None:
        while not self.stop.is_set():
            self._sample()
            self.stop.wait(0.1)

    def __enter__(self) -> TreeCPU:
        self._sample()
        self.start = dict(self.seen)
        self.t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.t.join()
        self._sample()
        self.seconds = sum(v - self.start.get(pid, 0.0) for pid, v in self.seen.items())


def load_prompts(n: int):
    from star_core import config, loop

    cfg = config.StarConfig()
    config.apply(cfg, {"n_eval": n, "threads": 1}, "bench")
    data = loop.load_data(cfg.validate())
    return cfg, data.task, [data.task.prompt(p, data.exemplars, hint=False) for p in data.eval]


def run_local(cfg, task, prompts, max_new_tokens: int, threads: int):
    import torch

    from star_core.models import load_base
    from star_core.sampling import generate

    torch.set_num_threads(threads)
    loaded = load_base(cfg.model, "none", "cpu")
    with TreeCPU() as cpu:
        t0 = time.perf_counter()
        gens = generate(
            loaded.model,
            loaded.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            is_complete=task.is_complete,
            batch_size=cfg.batch_size if cfg.batch_size != "auto" else 32,
            stop_chars=task.stop_chars,
        )
        wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "cpu": cpu.seconds,
        "start": 0.0,
        "start_cpu": 0.0,
        "decode": sum(g.seconds for g in gens),
        "texts": [g.text for g in gens],
        "tokens": sum(g.output_tokens for g in gens),
    }


def run_ray(cfg, prompts, max_new_tokens: int, workers: int):
    from pathlib import Path

    from star_core import config
    from star_core.backends import RayBackend

    config.apply(
        cfg,
        {"sampler": "ray", "ray_workers": workers, "ray_cpus_per_worker": 1, "max_new_tokens": max_new_tokens},
        "bench",
    )
    cfg.validate()
    sampler = RayBackend(cfg, Path("."))
    texts: dict[int, str] = {}
    decode, tokens = [0.0], [0]

    def on_batch(idx, gens):
        for i, g in zip(idx, gens):
            texts[i] = g.text
            decode[0] += g.seconds
            tokens[0] += g.output_tokens

    with TreeCPU() as start_cpu:
        t0 = time.perf_counter()
        sampler.start()
        t1 = time.perf_counter()
    try:
        with TreeCPU() as cpu:  # the Ray processes are this process's descendants (a local cluster)
            sampler.generate(prompts, adapter=None, temperature=0.0, seed=0, on_batch=on_batch)
            t2 = time.perf_counter()
    finally:
        sampler.close()
    return {
        "wall": t2 - t1,
        "start": t1 - t0,
        "start_cpu": start_cpu.seconds,
        "cpu": cpu.seconds,
        "decode": decode[0],
        "texts": [texts[i] for i in range(len(prompts))],
        "tokens": tokens[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--modes", default="local1,ray1,ray2", help="local<threads>, ray<workers>, comma-separated")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    cfg, task, prompts = load_prompts(a.n)
    res = {}
    for i, mode in enumerate(a.modes.split(",")):
        kind, k = mode.rstrip("0123456789"), int(mode[len(mode.rstrip("0123456789")) :] or 1)
        cfg_m, task_m, _ = load_prompts(a.n)
        key = mode if mode not in res else f"{mode} (again, run {i + 1})"
        if kind == "local":
            res[key] = run_local(cfg_m, task_m, prompts, a.max_new_tokens, k)
        elif kind == "ray":
            res[key] = run_ray(cfg_m, prompts, a.max_new_tokens, k)
        else:
            raise SystemExit(f"--modes: {mode!r} is not local<threads> or ray<workers>")
        r, mode = res[key], key
        print(
            f"{mode:7} phase: wall {r['wall']:6.1f} s, cpu (all processes) {r['cpu']:6.1f} s, "
            f"{a.n / r['wall']:.2f} rationales/s; decoding as reported {r['decode']:6.1f} s (summed over "
            f"workers); cluster start: wall {r['start']:5.1f} s, cpu {r['start_cpu']:5.1f} s; "
            f"{r['tokens']} tokens; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    ref = next(iter(res.values()))["texts"]
    same = all(r["texts"] == ref for r in res.values())
    print(f"greedy outputs identical across {', '.join(res)}: {same}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
