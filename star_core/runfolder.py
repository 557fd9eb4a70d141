"""A run folder is closed: what star reads or writes in it stays in it.

A run folder holds ``store.sqlite`` (with SQLite's ``-wal``, ``-shm`` and ``-journal`` beside it),
``config.yaml``, ``run.lock``, ``adapters/`` (with ``*.tmp`` folders while an adapter is saved), and the
dashboard's ``launch.json``, ``launch.log`` and ``annotations.sqlite``. Each of these is refused when its path
leaves the folder through a symbolic link (a link to another place inside the folder is fine), so a planted
link can neither make a run write to, delete or show a file elsewhere. ``run.lock`` may not be a link at all
(it is opened with ``O_NOFOLLOW``; see :mod:`star_core.runlock`).

:func:`safe_path` is the one check; the engine (start, resume, the store, the CLI's readers) and the
dashboard's run readers (``star_core.queries``) call it. It sits below the store (``star_core.store`` imports
it, never the other way): it owns the file names, and imports only :mod:`star_core.errors`. Nothing here imports
torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

from .errors import StoreError

#: The names of a run folder's files; the store and every reader use these.
DB_NAME = "store.sqlite"
CONFIG_NAME = "config.yaml"
ADAPTERS_DIR = "adapters"
#: What the engine reads or writes in a run folder; each must stay inside it (checked at start and resume).
ENGINE_FILES = (
    DB_NAME,
    f"{DB_NAME}-wal",
    f"{DB_NAME}-shm",
    f"{DB_NAME}-journal",
    CONFIG_NAME,
    ADAPTERS_DIR,
)


log = logging.getLogger("star")


class RunFolderError(StoreError):
    """A path of a run folder leads out of it (or is of the wrong kind); the message is one line."""


def _real(p: Path) -> Path:
    try:
        return Path(os.path.realpath(p))
    except (OSError, RuntimeError, ValueError):  # a loop of links
        raise RunFolderError(f"{p}: refused: a loop of symbolic links") from None


def safe_path(run_dir: str | os.PathLike, name: str) -> Path:
    """``run_dir / name``, or :class:`RunFolderError` when that path, once its links are followed (a dangling
    one included), is not inside ``run_dir``. The run folder itself may be a link (a runs root's entry)."""
    run_dir = Path(run_dir)
    p = run_dir / name
    root = _real(run_dir)
    real = _real(p)
    if real != root and root not in real.parents:
        raise RunFolderError(
            f"{p}: refused: {name} links out of the run folder (to {real}); a run folder's files stay in it"
        )
    return p


def check_closed(run_dir: str | os.PathLike, names: tuple[str, ...] = ENGINE_FILES) -> None:
    """:func:`safe_path` for each of ``names`` (the engine's files by default), and each entry of ``adapters/``."""
    for name in names:
        safe_path(run_dir, name)
    adapters = Path(run_dir) / ADAPTERS_DIR
    if adapters.is_dir() and not adapters.is_symlink():
        for entry in sorted(adapters.iterdir()):
            if not entry.name.endswith(".tmp"):  # *.tmp links are removed, never followed (clean_tmp_adapters)
                safe_path(run_dir, f"{ADAPTERS_DIR}/{entry.name}")


def unstarted(run_dir: str | os.PathLike) -> bool:
    """Whether the folder holds no run yet, so that ``star run --out`` may (re)start one in it: no store, a store
    still empty (0 bytes, or SQLite with no table: star died while creating it, before it wrote config.yaml), or
    star's tables with no run record (it died before the record was written). A damaged or foreign store is not
    unstarted, nor an empty one beside a config.yaml (a run's store truncated: refused, never overwritten)."""
    db = Path(run_dir) / DB_NAME
    if not db.exists():
        return True
    if store_blank(db):
        return not (Path(run_dir) / CONFIG_NAME).exists()
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is None
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False


def store_blank(db: Path) -> bool:
    """A store file that holds nothing: 0 bytes, or an SQLite database without a single table or index."""
    try:
        if db.stat().st_size == 0:
            return True
        with db.open("rb") as f:
            if not f.read(16).startswith(b"SQLite format 3"):
                return False
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        finally:
            con.close()
    except (OSError, sqlite3.DatabaseError):
        return False


def clean_tmp_adapters(run_dir: Path) -> list[Path]:
    """Remove ``adapters/*.tmp`` folders, half-written adapters of a run that died while saving one
    (a full disk, a kill); the store never points at them. Returns what was removed."""
    safe_path(run_dir, ADAPTERS_DIR)  # never a *.tmp of another folder
    gone = sorted((run_dir / ADAPTERS_DIR).glob("*.tmp"))
    for t in gone:
        log.info("removing a half-written adapter: %s", t)
        if t.is_symlink():  # the link goes, never what it points at
            t.unlink()
        elif t.is_dir():
            shutil.rmtree(t, ignore_errors=True)
        else:
            t.unlink(missing_ok=True)
    return gone
