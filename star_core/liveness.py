"""Whether a run's process is alive: the stored status, corrected for a writer that is gone.

The writer (``store.RunStore``) records its pid, host and a heartbeat with every status it writes; a
"running" row whose pid is dead on this host, or whose heartbeat is older than :data:`HEARTBEAT_STALE_S`, is
read as "crashed". Standard library only: ``star run --resume`` and the runs list use it without pandas.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

#: A run whose heartbeat is older than this (seconds) is taken for crashed.
HEARTBEAT_STALE_S = 600.0

#: Statuses a run can be resumed from (``star run --resume``).
RESUMABLE = ("crashed", "stopped")


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live (not zombie) process on this host."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def effective_status(row: sqlite3.Row | dict, now: float | None = None) -> str:
    """The stored status, except that a "running" run whose process is gone is "crashed"."""
    status = row["status"]
    if status != "running":
        return status
    now = time.time() if now is None else now
    host = row["host"]
    if (host is None or host == os.uname().nodename) and not pid_alive(row["pid"]):
        return "crashed"
    hb = row["heartbeat_at"] or row["updated_at"]
    if hb is not None and now - hb > HEARTBEAT_STALE_S:
        return "crashed"
    return "running"
