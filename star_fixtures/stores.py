"""Run stores in the states a run can leave them in besides a clean finish: a file that is not SQLite, tables
without a run row, a run marked running (by a live or a dead process), and a one-line read for the tests."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from star_core.store import RunStore


def write_corrupt(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "store.sqlite").write_bytes(b"\x00garbage, not sqlite\xff" * 64)
    return run_dir


def write_half(run_dir: str | os.PathLike) -> Path:
    """Tables exist but no run row (a run that died while starting)."""
    st = RunStore(run_dir)
    st.close()
    return Path(run_dir)


def dead_pid() -> int:
    """A pid that is not alive on this host."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def set_running(run_dir: str | os.PathLike, pid: int | None = None, heartbeat_age: float = 0.0) -> None:
    """Mark a stored run as running with ``pid`` and a heartbeat ``heartbeat_age`` seconds old."""
    con = sqlite3.connect(Path(run_dir) / "store.sqlite")
    with con:
        con.execute(
            "UPDATE runs SET status='running', pid=?, heartbeat_at=?, updated_at=?",
            (pid if pid is not None else os.getpid(), time.time() - heartbeat_age, time.time() - heartbeat_age),
        )
    con.close()
