"""A stand-in for `star run` used by the dashboard's Launch tests (no model, no torch).

`fake_star_cli.py run --out DIR ...` creates a run store and keeps heartbeating;
`fake_star_cli.py run --resume DIR` marks it running again. SIGTERM stores
status "stopped" and exits 143, like the real engine. It logs like the engine ("INFO ..."), with a library
warning and a progress bar in between (the noise the dashboard filters out), and finishes after
$STAR_FAKE_SECONDS seconds (default 60; $STAR_FAKE_RESUME_SECONDS after a resume).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from star_core.store import RunStore


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--out")
    ap.add_argument("--resume")
    ap.add_argument("--task", default="arithmetic")
    ap.add_argument("--model", default="fake")
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    run_dir = Path(a.resume or a.out)
    store = RunStore(run_dir)
    stopped = False

    def on_term(signum, frame):
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, on_term)
    if a.resume:
        store.set_status("running", message="resumed")
        print(f"INFO resumed {run_dir}", flush=True)
    else:
        cfg = {"task": a.task, "model": a.model, "iterations": a.iterations, **dict(s.split("=", 1) for s in a.sets)}
        (run_dir / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in cfg.items()))
        store.create_run(run_dir.name, a.task, a.model, cfg, a.iterations, "cpu (fake)")
        store.begin_iteration(0, None)
        print(f"INFO started {run_dir} with {' '.join(a.sets)}", flush=True)
    print("/site-packages/lib/noise.py:12: UserWarning: a library warning\n  warnings.warn(", flush=True)
    print("iter 1 train:  45%|####      | 18/40 [00:10<00:12, 1.80step/s]\r", end="", flush=True)
    t0 = time.time()
    limit = float(os.environ.get("STAR_FAKE_SECONDS", "60"))
    if a.resume:
        limit = float(os.environ.get("STAR_FAKE_RESUME_SECONDS", limit))
    while not stopped and time.time() - t0 < limit:
        store.heartbeat()
        time.sleep(0.1)
    if stopped:
        store.set_status("stopped", message="stopped by signal")
        print("INFO stopped", flush=True)
        return 143
    store.set_status("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
