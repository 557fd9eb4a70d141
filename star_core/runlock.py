"""One writer per run: an OS-level lock on ``RUN_DIR/run.lock``.

``star run --out X`` and ``star run --resume X`` take it before they write anything to the run (the
config, the store), and hold it until the process ends. A second one on the same folder fails at once,
naming the holder's pid (written into the lock file). The lock is ``fcntl.flock`` on an open file: the
kernel releases it when the holder exits in any way, ``kill -9`` included, so it is never stale. The
file itself stays (removing it would let a third process lock a different file of the same name).

The lock file is opened with ``O_NOFOLLOW`` and must be a plain file with one name: a symbolic link, a hard
link to a file elsewhere, a folder or a device named ``run.lock`` is refused (:class:`RunFolderError`, one
line). The holder's details are written over the old ones in place, padded with spaces, never truncating.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path

from .runfolder import RunFolderError

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
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            data = json.loads(os.read(fd, 64_000).decode()) if stat.S_ISREG(os.fstat(fd).st_mode) else None
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _open(path: Path) -> int:
    """The lock file's descriptor: opened without following a link, created if missing, never truncated."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "a symbolic link" if path.is_symlink() else ""
        why = f"is {kind}" if kind else f"cannot be opened ({e.strerror or e})"
        raise RunFolderError(
            f"{path}: {why}; star's run lock must be a plain file in the run folder (a link is never "
            f"followed): move it away, then try again"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        kind = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "not a plain file"
        raise RunFolderError(
            f"{path}: is {kind}; star's run lock must be a plain file of its own: move it away, then try again"
        )
    return fd


def acquire(run_dir: str | os.PathLike, what: str = "star run") -> RunLock:
    """Take ``RUN_DIR/run.lock`` (creating the folder if needed) or raise :class:`RunLocked`
    (:class:`RunFolderError` for a lock file that is a link, a folder or not a plain file)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = _open(path)
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
    info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "what": what})
    data = info.encode() + b"\n"
    os.pwrite(fd, data.ljust(os.fstat(fd).st_size, b" "), 0)  # over the old details, padded: never truncated
    os.fsync(fd)
    return RunLock(path, fd)
