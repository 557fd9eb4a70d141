"""A stand-in for `star run` used by the dashboard's Launch tests (no model, no torch).

`fake_star_cli.py run --out DIR ...` creates a run store and keeps heartbeating;
`fake_star_cli.py run --resume DIR` marks it running again. SIGTERM stores
status "stopped" and exits 143, like the real engine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
        print(f"resumed {run_dir}", flush=True)
    else:
        cfg = {"task": a.task, "model": a.model, "iterations": a.iterations, **dict(s.split("=", 1) for s in a.sets)}
        (run_dir / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in cfg.items()))
        store.create_run(run_dir.name, a.task, a.model, cfg, a.iterations, "cpu (fake)")
        store.begin_iteration(0, None)
        print(f"started {run_dir} with {' '.join(a.sets)}", flush=True)
    t0 = time.time()
    while not stopped and time.time() - t0 < 60:
        store.heartbeat()
        time.sleep(0.1)
    if stopped:
        store.set_status("stopped", message="stopped by signal")
        print("stopped", flush=True)
        return 143
    store.set_status("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
