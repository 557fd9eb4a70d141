"""The file check and the connection: is this file a star run store, of which schema version, and how to open it.

:func:`check` reads only (a read-only connection) and refuses, in one line naming the file, what the writer must
never add tables to: a zero-byte, truncated or garbage file, another program's SQLite database, a damaged store
or one of an unknown schema version. Nothing here imports torch.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import StoreError
from ..runfolder import safe_path
from .aggregates import AGGREGATES_VERSION
from .schema import PROMPT_SQL, READABLE_VERSIONS, SCHEMA_VERSION, STAR_TABLES

SQLITE_HEADER = b"SQLite format 3\x00"
_REMEDY = "restore it from a copy, or start a new run in another folder"


def check(db_path: str | os.PathLike, deep: bool = False) -> None:
    """Raise StoreError, one line naming the file, unless ``db_path`` is a readable star run store.

    Reads only (a read-only connection): a zero-byte, truncated or garbage file, an SQLite database
    of another program and a store of an unknown schema version are refused before anything opens it
    for writing. ``deep`` also runs ``PRAGMA quick_check``, which finds damage in the middle of the file."""
    p = Path(db_path)
    safe_path(p.parent, p.name)  # a store that links out of its run folder is refused, never read
    _check_head(p)
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as e:
        raise StoreError(f"{p}: the run store cannot be opened ({e}); {_REMEDY}") from None
    try:
        try:
            try:
                tables = _table_names(con)
            except sqlite3.OperationalError:
                if os.access(p.parent, os.W_OK):
                    raise
                con.close()  # a read-only folder with a cleanly closed WAL store: read it as immutable
                con = sqlite3.connect(f"file:{p}?mode=ro&immutable=1", uri=True)
                tables = _table_names(con)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{p}: the run store is damaged ({e}); {_REMEDY}") from None
        _check_tables(p, tables)
        try:
            _check_version(p, con)
            if deep:
                _quick_check(p, con)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{p}: the run store is damaged ({e}); {_REMEDY}") from None
    finally:
        con.close()


def _check_head(p: Path) -> None:
    """Refuse a missing, unreadable, empty or non-SQLite file from its first 100 bytes."""
    if not p.is_file():
        raise StoreError(f"{p.parent}: not a run folder (no {p.name})")
    try:
        with p.open("rb") as f:
            head = f.read(100)
    except OSError as e:
        raise StoreError(f"{p}: cannot read the run store ({e.strerror or e})") from None
    if not head:
        raise StoreError(
            f"{p}: the run store is empty (0 bytes; the run never started, or the file was truncated); {_REMEDY}"
        )
    if not head.startswith(SQLITE_HEADER) or len(head) < 100:
        raise StoreError(f"{p}: not an SQLite database (garbage, or a truncated or overwritten file); {_REMEDY}")


def _table_names(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _check_tables(p: Path, tables: set[str]) -> None:
    """Refuse another program's database, and a store that lacks one of star's tables."""
    if "runs" not in tables or "meta" not in tables:
        other = ", ".join(sorted(tables)[:8]) or "none"
        raise StoreError(
            f"{p}: an SQLite database that is not a star run store (its tables: {other}); "
            f"star does not write to it: use another run folder"
        )
    missing = [t for t in STAR_TABLES if t not in tables]
    if missing:
        raise StoreError(
            f"{p}: the run store lacks star's tables {', '.join(missing)} (damaged, or written "
            f"by another program); {_REMEDY}"
        )


def _check_version(p: Path, con: sqlite3.Connection) -> None:
    """Refuse a schema version this star does not read (a store without one is version 1)."""
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is not None and str(row[0]) not in {str(v) for v in READABLE_VERSIONS}:
        raise StoreError(
            f"{p}: run store schema version {row[0]}; this star reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )


def _quick_check(p: Path, con: sqlite3.Connection) -> None:
    """``PRAGMA quick_check``: refuse a store damaged in the middle of the file."""
    rows = [
        ln
        for r in con.execute("PRAGMA quick_check")
        for ln in str(r[0]).splitlines()
        if ln.strip() and not ln.startswith("*** in database")
    ]
    if rows != ["ok"]:
        more = f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else ""
        raise StoreError(
            f"{p}: the run store is damaged (quick_check: {rows[0]}{more}); "
            f"`sqlite3 {p} .recover` may save part of it; {_REMEDY}"
        )


def connect(db_path: str | os.PathLike, readonly: bool = False) -> sqlite3.Connection:
    """Open the database. Readers use ``readonly=True`` and never write."""
    p = Path(db_path)
    if readonly:
        if not p.exists():
            raise StoreError(f"{p}: no run store here")
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    else:
        con = sqlite3.connect(p, timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA busy_timeout=10000")
    return con


def schema_version(con: sqlite3.Connection) -> int:
    """The store's schema version (``meta.schema_version``): 1 for a store written before the prefix table,
    and for a new, still empty file (its samples table is created at the current version)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        return SCHEMA_VERSION
    if row is None:  # version 1 wrote no version; a store whose creation died early may lack it too
        cols = {r[1] for r in con.execute("PRAGMA table_info(samples)")}
        return 1 if "prompt" in cols else SCHEMA_VERSION
    return int(row[0]) if str(row[0]).isdigit() else 0


def has_aggregates(con: sqlite3.Connection) -> bool:
    """Whether the store's aggregate tables (``AGGREGATES``) are this star's: a version 2 store whose
    aggregates were built by this version. Readers fall back to reading the samples otherwise."""
    if schema_version(con) < 2:
        return False
    try:
        row = con.execute("SELECT value FROM meta WHERE key='aggregates_version'").fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None and row[0] == AGGREGATES_VERSION


def prompt_column(con: sqlite3.Connection) -> str:
    """The select-list expression of a sample's full prompt, named ``prompt``, for this store's version."""
    return "prompt" if schema_version(con) == 1 else PROMPT_SQL
