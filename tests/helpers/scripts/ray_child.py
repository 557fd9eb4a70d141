"""One sampler=ray run for test_ray_sampler, in a process of its own (started in a new session).

Ray lives in the process that calls ``ray.init``: its C++ core worker ends that process outright (``_exit``,
``abort``) when it loses its raylet or GCS, ``ray.init`` installs a SIGTERM handler that calls ``sys.exit``, and
the run installs its own; the cluster's processes share the driver's process group. Run inside pytest, any
of these takes the test runner down with no summary line. Here they take down only this process, and the
test sees its exit status.

    python ray_child.py '{"model": DIR, "run": DIR, "settings": {...}, "kill_worker": false}'

prints one line ``RESULT {json}``: outcome (finished | driver died), the worker of each stored unit, the
killed worker, and whether Ray was still initialized after the run.
"""

import json
import os
import signal
import sys
from pathlib import Path


class DriverDies(Exception):
    """Stands for the driver dying in the middle of a phase."""


def kill_hook(out: dict):
    """Kill the worker of the phase's first unit (SIGKILL); the driver dies at the first unit that another
    worker delivers after that."""

    def hook(unit: int, worker: str) -> None:
        out["stored"].append(worker)
        if len(out["stored"]) == 1:
            pid = int(worker.rsplit(":", 1)[1])
            if pid <= 1 or pid in (os.getpid(), os.getppid()):  # never this process, its parent, or a group
                raise SystemExit(f"refusing to kill pid {pid}: not a Ray worker")
            os.kill(pid, signal.SIGKILL)  # it is decoding its next unit by now
            out["killed"].append(worker)
        elif worker not in out["killed"]:  # a restarted actor or the other worker carried on
            raise DriverDies()

    return hook


def main() -> int:
    spec = json.loads(sys.argv[1])
    from star_core import backends, loop
    from star_core import config as C

    cfg = C.StarConfig(task="arithmetic", model=spec["model"])
    C.apply(cfg, spec["settings"], "test")
    cfg.validate()
    out = {"outcome": None, "stored": [], "killed": []}
    if spec.get("kill_worker"):
        backends.RayBackend.on_unit = staticmethod(kill_hook(out))
    try:
        loop.start(cfg, Path(spec["run"]), progress=False)
        out["outcome"] = "finished"
    except DriverDies:
        out["outcome"] = "driver died"
    import ray

    out["ray_initialized"] = ray.is_initialized()
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
