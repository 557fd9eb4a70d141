"""What the ``star`` command prints for an error it knows: one line and its exit status, never a traceback."""

from __future__ import annotations

import argparse
import errno
import sqlite3

from .configfile import printable


def _disk_full(e: BaseException) -> str | None:
    """What ran out of space, when ``e`` (or an exception it was raised from or during) is a full disk:
    an OSError ENOSPC (an adapter or file write) or SQLite's "database or disk is full"."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return f"{e.strerror or 'no space left on device'}" + (f": {e.filename}" if e.filename else "")
        if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
            return f"the run store: {e}"
        e = e.__cause__ or e.__context__
    return None


def error_line(e: BaseException, a: argparse.Namespace) -> tuple[int, str] | None:
    """(exit status, the one line for stderr) of a known error; None for a bug (its traceback is due)."""
    from .config import ConfigError, ModelError
    from .store import StoreError
    from .tasks import DataError

    if isinstance(e, (ConfigError, DataError, ModelError, StoreError)):
        return 2, f"star: error: {printable(str(e))}"
    from .errors import RunError, Stopped

    full = _disk_full(e)
    if full:
        run = getattr(a, "resume", None) or getattr(a, "out", None)
        again = f"star run --resume {run}" if a.cmd == "run" and run else "the command again"
        return 2, (
            f"star: error: disk full ({printable(full)}); the run store keeps every committed batch: free some "
            f"space, then run {printable(again)}"
        )
    if isinstance(e, RunError):
        return 2, f"star: error: {printable(str(e))}"
    if isinstance(e, (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)):
        return 2, f"star: error: {printable(f'{e.filename}: {e.strerror}')}"
    if isinstance(e, RecursionError):
        return 2, "star: error: an input is nested too deeply to read"
    if isinstance(e, sqlite3.DatabaseError):
        return 2, f"star: error: the run store cannot be read or written ({printable(str(e))})"
    if isinstance(e, Stopped):
        return 143, "star: stopped; resume with `star run --resume RUN_DIR`"
    return None
