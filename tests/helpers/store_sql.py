"""Plain SQL on a run's store in the tests: the rows as tuples (``query``) or as dicts (``rows``).

``readonly=True`` opens the file read-only (``mode=ro``): for the recorded demo stores, and for a store another
process is writing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from star_core.store import DB_NAME


@contextlib.contextmanager
def opened(run: Path, *, readonly: bool = False, timeout: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to ``run``'s store, closed on leaving."""
    path = Path(run) / DB_NAME
    if readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    else:
        con = sqlite3.connect(path, timeout=timeout)
    try:
        yield con
    finally:
        con.close()


def query(run: Path, sql: str, *args, readonly: bool = False) -> list[tuple]:
    """Every row of ``sql`` on ``run``'s store, as tuples."""
    with opened(run, readonly=readonly) as con:
        return con.execute(sql, args).fetchall()


def rows(run: Path, sql: str, *args, readonly: bool = False) -> list[dict]:
    """Every row of ``sql`` on ``run``'s store, as dicts keyed by column name."""
    with opened(run, readonly=readonly) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql, args)]
