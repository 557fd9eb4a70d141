"""One writer per run: an OS-level lock on ``RUN_DIR/run.lock``.

``star run --out X`` and ``star run --resume X`` take it before they write anything to the run (the
config, the store), and hold it until the process ends. A second one on the same folder fails at once,
naming the holder's pid (written into the lock file). The lock is ``fcntl.flock`` on an open file: the
kernel releases it when the holder exits in any way, ``kill -9`` included, so it is never stale. The
file itself stays (removing it would let a third process lock a different file of the same name).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = "run.lock"


class RunLocked(RuntimeError):
    """Another process holds the run's lock; the message names its pid."""


class RunLock:
    """A held lock; :meth:`release` (or the process's end) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(run_dir: str | os.PathLike) -> dict | None:
    """What the lock file says about the process that took it last (pid, host, since), if readable."""
    try:
        data = json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def acquire(run_dir: str | os.PathLike, what: str = "star run") -> RunLock:
    """Take ``RUN_DIR/run.lock`` (creating the folder if needed) or raise :class:`RunLocked`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        h = holder(run_dir) or {}
        pid = h.get("pid")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["since"])) if h.get("since") else None
        who = (
            f"pid {pid}" + (f" on {h['host']}" if h.get("host") else "") + (f", since {since}" if since else "")
            if pid
            else "a process that has not written its pid yet"
        )
        raise RunLocked(
            f"{run_dir} is in use by another star process ({who}); one process at a time writes a "
            f"run. Wait for it to end, or stop it (kill -TERM {pid or 'PID'}), then try again."
        ) from None
    os.ftruncate(fd, 0)
    os.write(
        fd,
        (
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "what": what}) + "\n"
        ).encode(),
    )
    os.fsync(fd)
    return RunLock(path, fd)
