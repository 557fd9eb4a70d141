"""Read-only connections to a run store, for every query module.

:func:`open_store` opens ``store.sqlite`` read-only (``store.connect(.., readonly=True)``) and turns a missing
or unreadable store into :class:`RunUnavailable`, with a sentence that can be shown as is. No pandas here.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..runfolder import RunFolderError, safe_path
from ..store import DB_NAME, StoreError, connect


class RunUnavailable(StoreError):
    """The run folder cannot be read: ``kind`` is missing | empty | corrupt | not_found."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def db_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / DB_NAME


def fingerprint(run_dir: str | os.PathLike) -> tuple:
    """Cheap change detector (file stats of the db and its WAL), for cache keys."""
    out: list[Any] = []
    for suffix in ("", "-wal"):
        try:
            st_ = os.stat(str(db_path(run_dir)) + suffix)
            out += [st_.st_mtime_ns, st_.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


@contextmanager
def open_store(run_dir: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """A read-only connection; raises RunUnavailable for a missing or unreadable store, or one that links out of
    its run folder (``runfolder.safe_path``)."""
    p = db_path(run_dir)
    try:
        safe_path(run_dir, DB_NAME)
    except RunFolderError:
        raise RunUnavailable(
            "corrupt", f"refused: {DB_NAME} links out of the run folder; the dashboard reads no file outside it."
        ) from None
    if not p.is_file():
        raise RunUnavailable("missing", f"No run store in {Path(run_dir).name or run_dir}: store.sqlite is missing.")
    try:
        con = connect(p, readonly=True)
        con.execute("PRAGMA query_only=1")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as e:
        # A read-only folder with a cleanly closed WAL database: open it as immutable.
        if os.access(p.parent, os.W_OK):
            raise RunUnavailable("corrupt", f"The run store cannot be opened ({e}).") from e
        try:
            con = sqlite3.connect(f"file:{p}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e2:
            raise RunUnavailable("corrupt", f"The run store cannot be opened ({e2}).") from e2
    except sqlite3.DatabaseError as e:
        raise RunUnavailable("corrupt", f"The run store is not a readable SQLite database ({e}).") from e
    try:
        yield con
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and "no such" in str(e):
            raise RunUnavailable("empty", f"The run store is incomplete ({e}); the run may still be starting.") from e
        raise RunUnavailable("corrupt", f"The run store cannot be read ({e}).") from e
    finally:
        con.close()


def _run_row(con: sqlite3.Connection) -> sqlite3.Row:
    try:
        row = con.execute("SELECT * FROM runs ORDER BY id LIMIT 1").fetchone()
    except sqlite3.OperationalError as e:
        raise RunUnavailable("empty", "The run store has no tables yet; the run may still be starting.") from e
    if row is None:
        raise RunUnavailable("empty", "The run store holds no run yet (it may be starting, or it was never begun).")
    return row


def _rid(con: sqlite3.Connection) -> int:
    return int(_run_row(con)["id"])


def run_config(row: sqlite3.Row) -> dict[str, Any]:
    """The run's stored config (``runs.config_json``) as a dict; {} when it is missing or does not read as one."""
    try:
        cfg = json.loads(row["config_json"] or "{}")
    except (TypeError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}
