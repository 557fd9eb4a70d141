"""The run store: one SQLite database (WAL mode) per run folder.

A run folder holds ``config.yaml`` (the resolved config), ``store.sqlite`` and
``adapters/iter_<i>/`` (peft adapters). The database is the single source of
truth: the CLI summary and the dashboard read only from it.

Writes happen in short transactions (one sampling batch, one training run, one
evaluation batch), so that a reader never sees half a batch, and a killed run
resumes from the last committed batch. Samples carry a UNIQUE key, so a
resumed batch can never be stored twice. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "store.sqlite"
CONFIG_NAME = "config.yaml"
ADAPTERS_DIR = "adapters"
SCHEMA_VERSION = 2
#: The schema versions this star reads (version 1 stores are read as they are; the writer migrates them).
READABLE_VERSIONS = (1, 2)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  task TEXT NOT NULL,
  model TEXT NOT NULL,
  config_json TEXT NOT NULL,
  status TEXT NOT NULL,            -- running | finished | crashed | stopped
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  heartbeat_at REAL,
  pid INTEGER,
  host TEXT,
  device TEXT,                     -- e.g. "cpu (no quantization)", "cuda 4-bit nf4"
  iterations_planned INTEGER NOT NULL,
  error TEXT
);
CREATE TABLE IF NOT EXISTS iterations (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,      -- 0 = few-shot baseline (evaluation, and the warm start if any)
  stage TEXT NOT NULL,             -- STAGES: pending | sampled | rationalized | trained | done
  started_at REAL NOT NULL,
  finished_at REAL,
  train_steps INTEGER,             -- planned optimizer steps for this iteration
  n_train_examples INTEGER,
  adapter_path TEXT,               -- relative to the run folder
  PRIMARY KEY (run_id, iteration)
);
CREATE TABLE IF NOT EXISTS exemplars (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  task TEXT NOT NULL,
  position INTEGER NOT NULL,
  question_id TEXT NOT NULL,
  question TEXT NOT NULL,
  rationale TEXT NOT NULL,
  answer TEXT NOT NULL,
  source TEXT NOT NULL,            -- "train split (seed 0)", "file ...", "built-in"
  PRIMARY KEY (run_id, task, position)
);
CREATE TABLE IF NOT EXISTS train_examples (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,      -- the iteration whose model is trained on it (0: the warm start,
                                   -- whose examples join every later iteration's training set)
  sample_id INTEGER NOT NULL REFERENCES samples(id),
  task TEXT NOT NULL,
  question_id TEXT NOT NULL,
  source TEXT NOT NULL,            -- TRAIN_SOURCE: correct | rationalized | reference (warm start)
  prompt TEXT NOT NULL,            -- training prompt (no hint; prefix only if configured)
  completion TEXT NOT NULL,        -- rationale + answer, the tokens the loss is on
  UNIQUE (run_id, iteration, sample_id)
);
CREATE TABLE IF NOT EXISTS train_losses (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,
  step INTEGER NOT NULL,
  loss REAL NOT NULL,
  lr REAL NOT NULL,
  seconds REAL,
  PRIMARY KEY (run_id, iteration, step)
);
CREATE TABLE IF NOT EXISTS metrics (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,
  task TEXT NOT NULL,
  split TEXT NOT NULL,
  grp TEXT NOT NULL,               -- 'all' or a digit count for arithmetic
  n INTEGER NOT NULL,
  n_correct INTEGER NOT NULL,
  accuracy REAL NOT NULL,
  PRIMARY KEY (run_id, iteration, task, split, grp)
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL,
  at REAL NOT NULL,
  kind TEXT NOT NULL,              -- started | resumed | stage | progress | finished | crashed
  message TEXT NOT NULL
);
"""

#: Version 1's samples table: the full prompt in every row.
SAMPLES_V1 = """
CREATE TABLE IF NOT EXISTS samples (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,
  task TEXT NOT NULL,
  split TEXT NOT NULL,             -- train | eval
  phase TEXT NOT NULL,             -- PHASES: sample | rationalize | warm_start | eval | warm_eval | direct_eval
  question_id TEXT NOT NULL,
  k INTEGER NOT NULL DEFAULT 0,    -- sample index when k>1 samples per question
  grp TEXT NOT NULL DEFAULT 'all', -- arithmetic: digit count
  question TEXT NOT NULL,
  prompt TEXT NOT NULL,            -- full prompt, few-shot prefix included
  hint TEXT,                       -- the hint shown (rationalize phase only)
  raw_output TEXT NOT NULL,
  rationale TEXT,
  answer TEXT,
  gold TEXT NOT NULL,
  correct INTEGER NOT NULL,        -- parsed answer == gold
  decision TEXT NOT NULL,          -- DECISIONS: correct | rationalized | reference | wrong | unparsable
                                   -- | truncated | hint_leak | unfaithful | no_rationale | duplicate | over_limit
  kept INTEGER NOT NULL,           -- became a training example
  reason TEXT NOT NULL,
  audit_faithful INTEGER,          -- 1 / 0 (unfaithful or no_rationale) / NULL (nothing checkable)
  audit_json TEXT,
  prompt_tokens INTEGER,
  output_tokens INTEGER,
  seconds REAL,
  created_at REAL NOT NULL,
  UNIQUE (run_id, iteration, task, phase, question_id, k)
);
CREATE INDEX IF NOT EXISTS samples_browse
  ON samples (run_id, iteration, task, split, phase, decision);
CREATE INDEX IF NOT EXISTS samples_question ON samples (run_id, question_id);
CREATE INDEX IF NOT EXISTS samples_grp ON samples (run_id, task, grp);
"""

#: The per-row contributions to ``eval_counts`` ({r}: "new." or "old." in a trigger, "" in a query). A NULL
#: (no audit) counts 0: in a trigger under the writer's INSERT OR IGNORE a NULL in a NOT NULL column would
#: silently drop the update.
_EVAL_SUMS = (
    "{r}correct",
    "{r}correct = 1 AND {r}audit_faithful = 1",
    "coalesce(CASE WHEN json_valid({r}audit_json) THEN json_extract({r}audit_json, '$.verdict') END, '')"
    " != 'no_rationale'",
    "coalesce(CASE WHEN json_valid({r}audit_json) THEN json_extract({r}audit_json, '$.version') END, 1) >= 2",
)
_EVAL_KEY = ("run_id", "iteration", "phase", "task", "split", "grp")
_OUTCOME_KEY = ("run_id", "task", "phase", "question_id")
#: Each aggregate table: (its key columns, the SELECT over samples that builds it, {cond} narrowing the rows).
AGGREGATES = {
    "question_outcomes": (
        _OUTCOME_KEY,
        "SELECT run_id, task, phase, question_id, min(grp), count(*),"
        " sum(DISTINCT 1 << iteration),"
        " coalesce(sum(DISTINCT CASE WHEN correct != 0 THEN 1 << iteration END), 0) FROM samples"
        " WHERE phase IN ('sample', 'eval', 'warm_eval') AND iteration BETWEEN 0 AND 62{cond}"
        " GROUP BY run_id, task, phase, question_id",
    ),
    "eval_counts": (
        _EVAL_KEY,
        "SELECT run_id, iteration, phase, task, split, grp, count(*), "
        + ", ".join(f"coalesce(sum({e.format(r='')}), 0)" for e in _EVAL_SUMS)
        + " FROM samples WHERE phase IN ('eval', 'warm_eval', 'direct_eval'){cond}"
        " GROUP BY run_id, iteration, phase, task, split, grp",
    ),
    "mask_counts": (
        ("run_id", "task", "phase", "grp", "n", "asked", "solved"),
        "SELECT run_id, task, phase, grp, n, asked, solved, count(*) FROM question_outcomes WHERE 1{cond}"
        " GROUP BY run_id, task, phase, grp, n, asked, solved",
    ),
    "train_counts": (
        ("run_id", "iteration", "task", "source"),
        "SELECT run_id, iteration, task, source, count(*) FROM train_examples WHERE 1{cond}"
        " GROUP BY run_id, iteration, task, source",
    ),
    "sample_counts": (
        ("run_id", "iteration", "task", "split", "phase", "decision", "grp", "correct", "kept"),
        "SELECT run_id, iteration, task, split, phase, decision, grp, correct, kept, count(*)"
        " FROM samples WHERE 1{cond} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
    ),
}
#: Bump when an aggregate table changes: the writer then rebuilds them all from the samples.
AGGREGATES_VERSION = "4"


def _recompute(table: str, *refs: str) -> str:
    """Trigger statements that rebuild ``table``'s rows of the keys of ``refs`` ("old.", "new.")."""
    key, select = AGGREGATES[table]
    match = " OR ".join("(" + " AND ".join(f"{c} = {r}{c}" for c in key) + ")" for r in refs)
    return f"  DELETE FROM {table} WHERE {match};\n  INSERT INTO {table} {select.format(cond=f' AND ({match})')};\n"


_AGGREGATES = f"""CREATE TABLE IF NOT EXISTS question_outcomes (
  run_id INTEGER NOT NULL,
  task TEXT NOT NULL,
  phase TEXT NOT NULL,             -- OUTCOME_PHASES: sample | eval | warm_eval
  question_id TEXT NOT NULL,
  grp TEXT NOT NULL,
  n INTEGER NOT NULL,              -- samples (more than the bits of asked: several per iteration)
  asked INTEGER NOT NULL,          -- bit i: the question has a sample of iteration i (i < OUTCOME_BITS)
  solved INTEGER NOT NULL,         -- bit i: one of them is correct
  PRIMARY KEY (run_id, task, phase, question_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS samples_outcome_ins AFTER INSERT ON samples
WHEN new.phase IN ('sample', 'eval', 'warm_eval') AND new.iteration BETWEEN 0 AND 62 BEGIN
  INSERT INTO question_outcomes VALUES (new.run_id, new.task, new.phase, new.question_id, new.grp, 1,
                                        1 << new.iteration, (new.correct != 0) << new.iteration)
  ON CONFLICT DO UPDATE SET n = n + 1, asked = asked | excluded.asked, solved = solved | excluded.solved,
                            grp = min(grp, excluded.grp);
END;
CREATE TRIGGER IF NOT EXISTS samples_outcome_upd
AFTER UPDATE OF run_id, task, phase, question_id, iteration, correct, grp ON samples BEGIN
{_recompute("question_outcomes", "old.", "new.")}END;
CREATE TRIGGER IF NOT EXISTS samples_outcome_del AFTER DELETE ON samples BEGIN
{_recompute("question_outcomes", "old.")}END;
CREATE TABLE IF NOT EXISTS mask_counts (
  run_id INTEGER NOT NULL,
  task TEXT NOT NULL,
  phase TEXT NOT NULL,
  grp TEXT NOT NULL,
  n INTEGER NOT NULL,
  asked INTEGER NOT NULL,
  solved INTEGER NOT NULL,
  q INTEGER NOT NULL,              -- questions of question_outcomes with these values
  PRIMARY KEY (run_id, task, phase, grp, n, asked, solved)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS outcome_mask_ins AFTER INSERT ON question_outcomes BEGIN
  INSERT INTO mask_counts VALUES (new.run_id, new.task, new.phase, new.grp, new.n, new.asked, new.solved, 1)
  ON CONFLICT DO UPDATE SET q = q + 1;
END;
CREATE TRIGGER IF NOT EXISTS outcome_mask_del AFTER DELETE ON question_outcomes BEGIN
  UPDATE mask_counts SET q = q - 1 WHERE run_id = old.run_id AND task = old.task AND phase = old.phase
    AND grp = old.grp AND n = old.n AND asked = old.asked AND solved = old.solved;
END;
CREATE TRIGGER IF NOT EXISTS outcome_mask_upd AFTER UPDATE ON question_outcomes BEGIN
  UPDATE mask_counts SET q = q - 1 WHERE run_id = old.run_id AND task = old.task AND phase = old.phase
    AND grp = old.grp AND n = old.n AND asked = old.asked AND solved = old.solved;
  INSERT INTO mask_counts VALUES (new.run_id, new.task, new.phase, new.grp, new.n, new.asked, new.solved, 1)
  ON CONFLICT DO UPDATE SET q = q + 1;
END;
CREATE TABLE IF NOT EXISTS train_counts (
  run_id INTEGER NOT NULL,
  iteration INTEGER NOT NULL,
  task TEXT NOT NULL,
  source TEXT NOT NULL,            -- TRAIN_SOURCE
  n INTEGER NOT NULL,              -- training examples stored
  PRIMARY KEY (run_id, iteration, task, source)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS train_count_ins AFTER INSERT ON train_examples BEGIN
  INSERT INTO train_counts VALUES (new.run_id, new.iteration, new.task, new.source, 1)
  ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS train_count_del AFTER DELETE ON train_examples BEGIN
  UPDATE train_counts SET n = n - 1 WHERE run_id = old.run_id AND iteration = old.iteration AND task = old.task
    AND source = old.source;
END;
CREATE TRIGGER IF NOT EXISTS train_count_upd AFTER UPDATE OF run_id, iteration, task, source ON train_examples BEGIN
  UPDATE train_counts SET n = n - 1 WHERE run_id = old.run_id AND iteration = old.iteration AND task = old.task
    AND source = old.source;
  INSERT INTO train_counts VALUES (new.run_id, new.iteration, new.task, new.source, 1)
  ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TABLE IF NOT EXISTS eval_counts (
  run_id INTEGER NOT NULL,
  iteration INTEGER NOT NULL,
  phase TEXT NOT NULL,             -- EVAL_PHASES
  task TEXT NOT NULL,
  split TEXT NOT NULL,
  grp TEXT NOT NULL,
  n INTEGER NOT NULL,
  n_correct INTEGER NOT NULL,
  n_faithful INTEGER NOT NULL,     -- right and faithful
  n_rationale INTEGER NOT NULL,    -- audit verdict not no_rationale
  n_audited INTEGER NOT NULL,      -- audit version 2 or later
  PRIMARY KEY (run_id, iteration, phase, task, split, grp)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS samples_eval_ins AFTER INSERT ON samples
WHEN new.phase IN ('eval', 'warm_eval', 'direct_eval') BEGIN
  INSERT INTO eval_counts VALUES (new.run_id, new.iteration, new.phase, new.task, new.split, new.grp, 1,
    {", ".join(f"coalesce({e.format(r='new.')}, 0)" for e in _EVAL_SUMS)})
  ON CONFLICT DO UPDATE SET n = n + 1, n_correct = n_correct + excluded.n_correct,
    n_faithful = n_faithful + excluded.n_faithful, n_rationale = n_rationale + excluded.n_rationale,
    n_audited = n_audited + excluded.n_audited;
END;
CREATE TRIGGER IF NOT EXISTS samples_eval_upd
AFTER UPDATE OF run_id, iteration, phase, task, split, grp, correct, audit_faithful, audit_json ON samples
WHEN old.phase IN ('eval', 'warm_eval', 'direct_eval') OR new.phase IN ('eval', 'warm_eval', 'direct_eval') BEGIN
{_recompute("eval_counts", "old.", "new.")}END;
CREATE TRIGGER IF NOT EXISTS samples_eval_del AFTER DELETE ON samples
WHEN old.phase IN ('eval', 'warm_eval', 'direct_eval') BEGIN
{_recompute("eval_counts", "old.")}END;
"""

#: Version 2's samples: the few-shot prefix stored once (``prompt_prefixes``, keyed by its SHA-256) and the
#: prompt's tail per row; ``sample_counts`` holds the number of samples per combination of the browser's
#: filter columns, and ``question_outcomes`` each question's iterations asked and solved (bit masks, for
#: newly solved and lost questions), both kept by triggers (so every write keeps them true); ``samples_fts``
#: is a trigram index (detail=none: which rows hold a trigram, not where) over the searched text, kept by
#: triggers too.
SAMPLES_V2 = (
    """
CREATE TABLE IF NOT EXISTS prompt_prefixes (
  id INTEGER PRIMARY KEY,
  sha256 TEXT NOT NULL UNIQUE,
  text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,
  task TEXT NOT NULL,
  split TEXT NOT NULL,             -- train | eval
  phase TEXT NOT NULL,             -- PHASES: sample | rationalize | warm_start | eval | warm_eval | direct_eval
  question_id TEXT NOT NULL,
  k INTEGER NOT NULL DEFAULT 0,    -- sample index when k>1 samples per question
  grp TEXT NOT NULL DEFAULT 'all', -- arithmetic: digit count
  question TEXT NOT NULL,
  prefix_id INTEGER REFERENCES prompt_prefixes(id),  -- the shared few-shot prefix (NULL: none)
  prompt_tail TEXT NOT NULL,       -- the rest of the prompt: prompt = prefix text || prompt_tail
  hint TEXT,                       -- the hint shown (rationalize phase only)
  raw_output TEXT NOT NULL,
  rationale TEXT,
  answer TEXT,
  gold TEXT NOT NULL,
  correct INTEGER NOT NULL,        -- parsed answer == gold
  decision TEXT NOT NULL,          -- DECISIONS: correct | rationalized | reference | wrong | unparsable
                                   -- | truncated | hint_leak | unfaithful | no_rationale | duplicate | over_limit
  kept INTEGER NOT NULL,           -- became a training example
  reason TEXT NOT NULL,
  audit_faithful INTEGER,          -- 1 / 0 (unfaithful or no_rationale) / NULL (nothing checkable)
  audit_json TEXT,
  prompt_tokens INTEGER,
  output_tokens INTEGER,
  seconds REAL,
  created_at REAL NOT NULL,
  UNIQUE (run_id, iteration, task, phase, question_id, k)
);
-- every filter of the sample browser but the text search and the question id, then id (the rowid): the
-- keyset paging seeks (filter values, id) here, one seek per sample_counts row of the filter
CREATE INDEX IF NOT EXISTS samples_browse
  ON samples (run_id, iteration, task, split, phase, decision, grp, correct, kept);
CREATE INDEX IF NOT EXISTS samples_question ON samples (run_id, question_id);
CREATE INDEX IF NOT EXISTS samples_grp ON samples (run_id, task, grp);
CREATE TABLE IF NOT EXISTS sample_counts (
  run_id INTEGER NOT NULL,
  iteration INTEGER NOT NULL,
  task TEXT NOT NULL,
  split TEXT NOT NULL,
  phase TEXT NOT NULL,
  decision TEXT NOT NULL,
  grp TEXT NOT NULL,
  correct INTEGER NOT NULL,
  kept INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (run_id, iteration, task, split, phase, decision, grp, correct, kept)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS samples_count_ins AFTER INSERT ON samples BEGIN
  INSERT INTO sample_counts VALUES (new.run_id, new.iteration, new.task, new.split, new.phase, new.decision,
                                    new.grp, new.correct, new.kept, 1)
  ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS samples_count_del AFTER DELETE ON samples BEGIN
  UPDATE sample_counts SET n = n - 1 WHERE run_id = old.run_id AND iteration = old.iteration AND task = old.task
    AND split = old.split AND phase = old.phase AND decision = old.decision AND grp = old.grp
    AND correct = old.correct AND kept = old.kept;
END;
CREATE TRIGGER IF NOT EXISTS samples_count_upd
AFTER UPDATE OF run_id, iteration, task, split, phase, decision, grp, correct, kept ON samples BEGIN
  UPDATE sample_counts SET n = n - 1 WHERE run_id = old.run_id AND iteration = old.iteration AND task = old.task
    AND split = old.split AND phase = old.phase AND decision = old.decision AND grp = old.grp
    AND correct = old.correct AND kept = old.kept;
  INSERT INTO sample_counts VALUES (new.run_id, new.iteration, new.task, new.split, new.phase, new.decision,
                                    new.grp, new.correct, new.kept, 1)
  ON CONFLICT DO UPDATE SET n = n + 1;
END;
"""
    + _AGGREGATES
    + """CREATE INDEX IF NOT EXISTS train_examples_sample ON train_examples (run_id, sample_id);
CREATE VIRTUAL TABLE IF NOT EXISTS samples_fts USING fts5(
  question_id, question, rationale, raw_output,
  content='samples', content_rowid='id', tokenize='trigram', detail='none');
CREATE TRIGGER IF NOT EXISTS samples_fts_ins AFTER INSERT ON samples BEGIN
  INSERT INTO samples_fts(rowid, question_id, question, rationale, raw_output)
  VALUES (new.id, new.question_id, new.question, new.rationale, new.raw_output);
END;
CREATE TRIGGER IF NOT EXISTS samples_fts_del AFTER DELETE ON samples BEGIN
  INSERT INTO samples_fts(samples_fts, rowid, question_id, question, rationale, raw_output)
  VALUES ('delete', old.id, old.question_id, old.question, old.rationale, old.raw_output);
END;
CREATE TRIGGER IF NOT EXISTS samples_fts_upd AFTER UPDATE OF question_id, question, rationale, raw_output
ON samples BEGIN
  INSERT INTO samples_fts(samples_fts, rowid, question_id, question, rationale, raw_output)
  VALUES ('delete', old.id, old.question_id, old.question, old.rationale, old.raw_output);
  INSERT INTO samples_fts(rowid, question_id, question, rationale, raw_output)
  VALUES (new.id, new.question_id, new.question, new.rationale, new.raw_output);
END;
"""
)

# ---- the vocabularies of the text columns, defined once ---------------------
#: ``iterations.stage``, in order. Iteration i >= 1 goes through all of them. Iteration 0 goes
#: pending -> done, or with a warm start pending -> trained (the warm-start adapter) -> done.
STAGES = ("pending", "sampled", "rationalized", "trained", "done")
#: ``samples.phase``: what produced the row, in words.
PHASES = {
    "sample": "first attempt",
    "rationalize": "hinted retry",
    "warm_start": "warm start: reference rationale (supervised, not bootstrapped)",
    "eval": "evaluation",
    "warm_eval": "evaluation after the warm start",
    "direct_eval": "direct-answer evaluation (few-shot, no rationale)",
}
#: The split each phase reads.
PHASE_SPLIT = {
    "sample": "train",
    "rationalize": "train",
    "warm_start": "train",
    "eval": "eval",
    "warm_eval": "eval",
    "direct_eval": "eval",
}
#: Phases that evaluate a model on the eval split: nothing is kept from them.
EVAL_PHASES = ("eval", "warm_eval", "direct_eval")
#: ``samples.decision`` (star_core.filtering decides all but ``reference``).
DECISIONS = (
    "correct",
    "rationalized",
    "reference",
    "wrong",
    "unparsable",
    "truncated",
    "hint_leak",
    "unfaithful",
    "no_rationale",
    "duplicate",
    "over_limit",
)
#: Decisions that make a sample a training example.
KEPT_DECISIONS = ("correct", "rationalized", "reference")
#: ``train_examples.source`` of a kept sample, by its phase.
TRAIN_SOURCE = {"sample": "correct", "rationalize": "rationalized", "warm_start": "reference"}


class StoreError(RuntimeError):
    """The store is missing, unreadable or from an unknown schema."""


#: The tables every star store has; a SQLite file without them is not a run store.
STAR_TABLES = (
    "meta",
    "runs",
    "iterations",
    "exemplars",
    "samples",
    "train_examples",
    "train_losses",
    "metrics",
    "events",
)
SQLITE_HEADER = b"SQLite format 3\x00"
_REMEDY = "restore it from a copy, or start a new run in another folder"


def check(db_path: str | os.PathLike, deep: bool = False) -> None:
    """Raise StoreError, one line naming the file, unless ``db_path`` is a readable star run store.

    Reads only (a read-only connection): a zero-byte, truncated or garbage file, an SQLite database
    of another program and a store of an unknown schema version are refused before anything opens it
    for writing. ``deep`` also runs ``PRAGMA quick_check``, which finds damage in the middle of the file."""
    p = Path(db_path)
    from .runfolder import safe_path

    safe_path(p.parent, p.name)  # a store that links out of its run folder is refused, never read
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
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as e:
        raise StoreError(f"{p}: the run store cannot be opened ({e}); {_REMEDY}") from None
    try:
        try:
            try:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.OperationalError:
                if os.access(p.parent, os.W_OK):
                    raise
                con.close()  # a read-only folder with a cleanly closed WAL store: read it as immutable
                con = sqlite3.connect(f"file:{p}?mode=ro&immutable=1", uri=True)
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{p}: the run store is damaged ({e}); {_REMEDY}") from None
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
        try:
            row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is not None and str(row[0]) not in {str(v) for v in READABLE_VERSIONS}:
                raise StoreError(
                    f"{p}: run store schema version {row[0]}; this star reads versions "
                    f"{', '.join(map(str, READABLE_VERSIONS))}"
                )
            if deep:
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
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{p}: the run store is damaged ({e}); {_REMEDY}") from None
    finally:
        con.close()


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


#: ``question_outcomes`` covers these phases and iterations below this (a 64-bit mask per question).
OUTCOME_PHASES = ("sample", "eval", "warm_eval")
OUTCOME_BITS = 63
#: The full prompt of a version 2 sample row (a column expression of ``samples``, named ``prompt``).
PROMPT_SQL = (
    "coalesce((SELECT p.text FROM prompt_prefixes p WHERE p.id = samples.prefix_id), '')"
    " || samples.prompt_tail AS prompt"
)
#: A shared prefix shorter than this is left in the rows.
MIN_PREFIX_CHARS = 64


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


def split_prompt(prompt: str, known: Iterable[str] = ()) -> str:
    """The few-shot prefix of ``prompt``: the longest of ``known`` it starts with, else the text up to its
    last blank line (the few-shot block ends with one; the question block after it has none)."""
    best = ""
    for k in known:
        if len(k) > len(best) and prompt.startswith(k):
            best = k
    if best:
        return best
    cut = prompt.rfind("\n\n")
    return prompt[: cut + 2] if cut >= 0 else ""


class PrefixTable:
    """The ``prompt_prefixes`` of one store, in memory: each distinct prefix once, keyed by its SHA-256."""

    def __init__(self, con: sqlite3.Connection):
        self.ids: dict[str, int] = {r[1]: r[0] for r in con.execute("SELECT id, text FROM prompt_prefixes")}
        self.order = sorted(self.ids, key=len, reverse=True)

    def _id(self, con: sqlite3.Connection, text: str) -> int:
        if text not in self.ids:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            con.execute("INSERT OR IGNORE INTO prompt_prefixes(sha256, text) VALUES (?, ?)", (digest, text))
            self.ids[text] = con.execute("SELECT id FROM prompt_prefixes WHERE sha256=?", (digest,)).fetchone()[0]
            self.order = sorted(self.ids, key=len, reverse=True)
        return self.ids[text]

    def split_batch(self, con: sqlite3.Connection, prompts: list[str]) -> list[tuple[int | None, str]]:
        """(prefix id or None, tail) for each prompt; prefix text + tail == prompt. A batch shares its
        prefix: the common start of its prompts up to the last blank line in it is tried first."""
        known = list(self.order)
        if len(prompts) > 1:
            common = os.path.commonprefix(prompts)
            cut = common.rfind("\n\n")
            if cut + 2 >= MIN_PREFIX_CHARS:
                known.insert(0, common[: cut + 2])
        out: list[tuple[int | None, str]] = []
        last = ""
        for p in prompts:
            pre = last if last and p.startswith(last) else split_prompt(p, known)
            if len(pre) < MIN_PREFIX_CHARS:
                out.append((None, p))
                continue
            last = pre
            out.append((self._id(con, pre), p[len(pre) :]))
        return out


def statements(script: str) -> list[str]:
    """The SQL statements of ``script`` (trigger bodies kept whole), to run inside a transaction, which
    ``executescript`` would commit."""
    out, cur = [], ""
    for line in script.splitlines(keepends=True):
        cur += line
        if sqlite3.complete_statement(cur):
            out.append(cur.strip())
            cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


_SAMPLE_COLS = (
    "id, run_id, iteration, task, split, phase, question_id, k, grp, question, hint, raw_output, "
    "rationale, answer, gold, correct, decision, kept, reason, audit_faithful, audit_json, prompt_tokens, "
    "output_tokens, seconds, created_at"
)


def rebuild_aggregates(con: sqlite3.Connection) -> None:
    """Rebuild every table of ``AGGREGATES`` from the samples (inside the caller's transaction)."""
    for table, (_, select) in AGGREGATES.items():  # mask_counts after question_outcomes, whose triggers it has
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} {select.format(cond='')}")
    con.execute("DELETE FROM mask_counts")
    con.execute(f"INSERT INTO mask_counts {AGGREGATES['mask_counts'][1].format(cond='')}")
    con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('aggregates_version', ?)", (AGGREGATES_VERSION,))


def migrate_v1(con: sqlite3.Connection, chunk: int = 5000) -> int:
    """Rewrite a version 1 store as version 2 in one transaction (``star run --resume`` of an old run does
    this; readers read version 1 as it is): each prompt's few-shot prefix goes to ``prompt_prefixes`` once,
    and the counts and the text index are built. Rows keep their ids, so training examples still point at
    their samples. A failure leaves the store as it was. Returns the number of samples moved."""
    stmts = statements(SAMPLES_V2)
    table = next(x for x in stmts if x.startswith("CREATE TABLE IF NOT EXISTS samples ("))
    con.execute("PRAGMA foreign_keys=OFF")  # the samples table is replaced under train_examples' references
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(next(x for x in stmts if "prompt_prefixes (" in x))
            con.execute(table.replace("CREATE TABLE IF NOT EXISTS samples (", "CREATE TABLE samples_new (", 1))
            prefixes, moved = PrefixTable(con), 0
            cols = [c.strip() for c in _SAMPLE_COLS.split(",")]
            read = con.execute(f"SELECT {_SAMPLE_COLS}, prompt FROM samples ORDER BY id")
            while rows := read.fetchmany(chunk):
                split = prefixes.split_batch(con, [r[-1] for r in rows])
                con.executemany(
                    f"INSERT INTO samples_new({_SAMPLE_COLS}, prefix_id, prompt_tail)"
                    f" VALUES ({','.join('?' * (len(cols) + 2))})",
                    [(*r[:-1], pid, tail) for r, (pid, tail) in zip(rows, split)],
                )
                moved += len(rows)
            con.execute("DROP TABLE samples")
            con.execute("ALTER TABLE samples_new RENAME TO samples")
            for x in stmts:
                con.execute(x)
            rebuild_aggregates(con)
            con.execute("INSERT INTO samples_fts(samples_fts) VALUES ('rebuild')")
            con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            bad = con.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise StoreError(f"migration to schema version {SCHEMA_VERSION} would break {len(bad)} references")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute("PRAGMA foreign_keys=ON")
    return moved


@dataclass
class SampleRecord:
    """One row of ``samples``: a single model completion and its decision."""

    iteration: int
    task: str
    split: str
    phase: str
    question_id: str
    question: str
    prompt: str
    raw_output: str
    gold: str
    decision: str
    reason: str
    correct: bool
    kept: bool = False
    k: int = 0
    grp: str = "all"
    hint: str | None = None
    rationale: str | None = None
    answer: str | None = None
    audit: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    seconds: float | None = None
    # Training example derived from this sample (when kept).
    train_prompt: str | None = None
    train_completion: str | None = None
    train_iteration: int | None = None


class RunStore:
    """Writer (and simple reader) of one run's database."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.run_dir / DB_NAME
        from .runfolder import ENGINE_FILES, check_closed, store_blank

        check_closed(self.run_dir, ENGINE_FILES[:4])  # the store and SQLite's files beside it stay in the folder
        if self.db_path.exists() and not store_blank(self.db_path):
            check(self.db_path)  # never add star's tables to a foreign or damaged file
        self.con = connect(self.db_path)
        v1 = schema_version(self.con) == 1
        self._prefixes: PrefixTable | None = None  # tx() resets it
        with self.tx() as c:  # one transaction: every table with schema_version, or nothing (a crash, a full disk)
            for stmt in statements(SCHEMA) + ([] if v1 else statements(SAMPLES_V2)):
                c.execute(stmt)
            if not v1:
                c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        if v1:
            migrate_v1(self.con)  # its own transaction, which writes the version 2 tables and the version
        agg = self.con.execute("SELECT value FROM meta WHERE key='aggregates_version'").fetchone()
        if agg is None or agg[0] != AGGREGATES_VERSION:  # a store of an earlier version 2 build: rebuild them
            with self.tx() as c:  # their tables and triggers as this star defines them (until the rebuild
                # commits, the version stays old, so an interrupted rebuild is done again)
                for (name,) in c.execute(
                    "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name IN"
                    " ('samples', 'train_examples', 'question_outcomes')"
                    " AND name NOT LIKE 'samples_fts%'"
                ).fetchall():
                    c.execute(f'DROP TRIGGER "{name}"')
                for table in AGGREGATES:
                    c.execute(f"DROP TABLE IF EXISTS {table}")
                for stmt in statements(SAMPLES_V2):
                    c.execute(stmt)
                rebuild_aggregates(c)
        self.run_id = 1

    # ---- plumbing --------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on any error."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            self._prefixes = None  # prefixes added in the transaction are gone: read them again
            raise
        else:
            self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()

    # ---- runs ------------------------------------------------------------
    def has_run(self) -> bool:
        return self.con.execute("SELECT 1 FROM runs WHERE id=?", (self.run_id,)).fetchone() is not None

    def create_run(
        self, name: str, task: str, model: str, config: dict[str, Any], iterations_planned: int, device: str
    ) -> None:
        now = time.time()
        with self.tx() as c:
            c.execute(
                "INSERT INTO runs(id, name, task, model, config_json, status, created_at, updated_at,"
                " heartbeat_at, pid, host, device, iterations_planned) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    self.run_id,
                    name,
                    task,
                    model,
                    json.dumps(config, sort_keys=True),
                    "running",
                    now,
                    now,
                    now,
                    os.getpid(),
                    os.uname().nodename,
                    device,
                    iterations_planned,
                ),
            )
            self._event(c, "started", f"run started on {device}")

    def set_status(self, status: str, error: str | None = None, message: str | None = None) -> None:
        now = time.time()
        with self.tx() as c:
            c.execute(
                "UPDATE runs SET status=?, error=?, updated_at=?, heartbeat_at=?, pid=? WHERE id=?",
                (status, error, now, now, os.getpid(), self.run_id),
            )
            self._event(c, status, message or status)

    def heartbeat(self) -> None:
        now = time.time()
        with self.tx() as c:
            c.execute("UPDATE runs SET heartbeat_at=?, updated_at=? WHERE id=?", (now, now, self.run_id))

    def _event(self, c: sqlite3.Connection, kind: str, message: str) -> None:
        c.execute(
            "INSERT INTO events(run_id, at, kind, message) VALUES (?,?,?,?)", (self.run_id, time.time(), kind, message)
        )

    # ---- iterations ----------------------------------------------------------
    def iteration_stage(self, iteration: int) -> str | None:
        row = self.con.execute(
            "SELECT stage FROM iterations WHERE run_id=? AND iteration=?", (self.run_id, iteration)
        ).fetchone()
        return row["stage"] if row else None

    def begin_iteration(self, iteration: int, train_steps: int | None) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO iterations(run_id, iteration, stage, started_at, train_steps)"
                " VALUES (?,?,?,?,?)",
                (self.run_id, iteration, "pending", time.time(), train_steps),
            )

    def set_stage(self, iteration: int, stage: str, **fields: Any) -> None:
        allowed = {"n_train_examples", "adapter_path", "finished_at", "train_steps"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown iteration fields {sorted(bad)}")
        sets = ", ".join(["stage=?"] + [f"{k}=?" for k in fields])
        with self.tx() as c:
            c.execute(
                f"UPDATE iterations SET {sets} WHERE run_id=? AND iteration=?",
                (stage, *fields.values(), self.run_id, iteration),
            )
            self._event(c, "stage", f"iteration {iteration}: {stage}")

    # ---- exemplars -------------------------------------------------------------
    def save_exemplars(self, task: str, rows: list[dict[str, Any]]) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM exemplars WHERE run_id=? AND task=?", (self.run_id, task))
            c.executemany(
                "INSERT INTO exemplars(run_id, task, position, question_id, question, rationale, answer, source)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [
                    (self.run_id, task, i, r["question_id"], r["question"], r["rationale"], r["answer"], r["source"])
                    for i, r in enumerate(rows)
                ],
            )

    # ---- samples ---------------------------------------------------------------
    def done_question_ids(self, iteration: int, task: str, phase: str) -> set[tuple[str, int]]:
        rows = self.con.execute(
            "SELECT question_id, k FROM samples WHERE run_id=? AND iteration=? AND task=? AND phase=?",
            (self.run_id, iteration, task, phase),
        ).fetchall()
        return {(r["question_id"], r["k"]) for r in rows}

    def add_samples(self, records: list[SampleRecord]) -> int:
        """Store a batch of samples (and their training examples) in one transaction.

        Returns how many were new; a sample already stored is left untouched.
        """
        new = 0
        now = time.time()
        with self.tx() as c:
            if self._prefixes is None:
                self._prefixes = PrefixTable(c)
            split = self._prefixes.split_batch(c, [r.prompt for r in records])
            for r, (prefix_id, tail) in zip(records, split):
                cur = c.execute(
                    "INSERT OR IGNORE INTO samples(run_id, iteration, task, split, phase, question_id, k, grp,"
                    " question, prefix_id, prompt_tail, hint, raw_output, rationale, answer, gold, correct, decision,"
                    " kept, reason, audit_faithful, audit_json, prompt_tokens, output_tokens, seconds, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        self.run_id,
                        r.iteration,
                        r.task,
                        r.split,
                        r.phase,
                        r.question_id,
                        r.k,
                        r.grp,
                        r.question,
                        prefix_id,
                        tail,
                        r.hint,
                        r.raw_output,
                        r.rationale,
                        r.answer,
                        r.gold,
                        int(r.correct),
                        r.decision,
                        int(r.kept),
                        r.reason,
                        None if not r.audit or r.audit.get("faithful") is None else int(r.audit["faithful"]),
                        json.dumps(r.audit) if r.audit is not None else None,
                        r.prompt_tokens,
                        r.output_tokens,
                        r.seconds,
                        now,
                    ),
                )
                if cur.rowcount == 0:
                    continue
                new += 1
                if r.kept:
                    if r.train_prompt is None or r.train_completion is None:
                        raise ValueError("a kept sample needs train_prompt and train_completion")
                    c.execute(
                        "INSERT INTO train_examples(run_id, iteration, sample_id, task, question_id, source,"
                        " prompt, completion) VALUES (?,?,?,?,?,?,?,?)",
                        (
                            self.run_id,
                            r.train_iteration if r.train_iteration is not None else r.iteration,
                            cur.lastrowid,
                            r.task,
                            r.question_id,
                            TRAIN_SOURCE[r.phase],
                            r.train_prompt,
                            r.train_completion,
                        ),
                    )
            c.execute("UPDATE runs SET heartbeat_at=?, updated_at=? WHERE id=?", (now, now, self.run_id))
        return new

    def train_examples(self, iteration: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT * FROM train_examples WHERE run_id=? AND iteration=? ORDER BY id",
            (self.run_id, iteration),
        ).fetchall()

    def training_set(self, iteration: int) -> list[sqlite3.Row]:
        """What adapter ``iteration`` trains on: the examples stored for it, after (from iteration 1 on)
        the warm start's reference examples, which are stored for iteration 0 and join every iteration."""
        return self.con.execute(
            "SELECT * FROM train_examples WHERE run_id=? AND (iteration=? OR (iteration=0 AND ? > 0))"
            " ORDER BY iteration, id",
            (self.run_id, iteration, iteration),
        ).fetchall()

    def kept_samples(self, iteration: int, task: str, phase: str) -> list[sqlite3.Row]:
        """The kept samples of one phase with their training text (``completion``)."""
        return self.con.execute(
            "SELECT s.id, s.question_id, s.k, t.completion FROM samples s JOIN train_examples t"
            " ON t.run_id=s.run_id AND t.sample_id=s.id WHERE s.run_id=? AND s.iteration=? AND s.task=?"
            " AND s.phase=? AND s.kept=1 ORDER BY s.id",
            (self.run_id, iteration, task, phase),
        ).fetchall()

    def unkeep(self, changes: list[tuple[int, str, str]]) -> None:
        """Turn kept samples ``(id, decision, reason)`` into rejected ones and drop their training examples,
        in one transaction (the per-question limit, ``filtering.limit_per_question``)."""
        if not changes:
            return
        with self.tx() as c:
            c.executemany(
                "UPDATE samples SET decision=?, reason=?, kept=0 WHERE run_id=? AND id=?",
                [(d, r, self.run_id, i) for i, d, r in changes],
            )
            c.executemany(
                "DELETE FROM train_examples WHERE run_id=? AND sample_id=?", [(self.run_id, i) for i, _, _ in changes]
            )

    def samples(self, iteration: int, task: str, phase: str) -> list[sqlite3.Row]:
        """One phase's samples, each with its full ``prompt``."""
        return self.con.execute(
            f"SELECT *, {PROMPT_SQL} FROM samples WHERE run_id=? AND iteration=? AND task=? AND phase=? ORDER BY id",
            (self.run_id, iteration, task, phase),
        ).fetchall()

    # ---- training --------------------------------------------------------------
    def finish_training(
        self,
        iteration: int,
        losses: list[tuple[int, float, float, float]],
        adapter_path: str,
        n_examples: int,
        train_steps: int | None = None,
    ) -> None:
        """Record a finished training run atomically: losses + iteration stage (and the steps it was given,
        when they differ from the planned ones: ``train_epochs``)."""
        with self.tx() as c:
            c.execute("DELETE FROM train_losses WHERE run_id=? AND iteration=?", (self.run_id, iteration))
            c.executemany(
                "INSERT INTO train_losses(run_id, iteration, step, loss, lr, seconds) VALUES (?,?,?,?,?,?)",
                [(self.run_id, iteration, s, loss, lr, sec) for s, loss, lr, sec in losses],
            )
            c.execute(
                "UPDATE iterations SET stage='trained', adapter_path=?, n_train_examples=?,"
                " train_steps=coalesce(?, train_steps) WHERE run_id=? AND iteration=?",
                (adapter_path, n_examples, train_steps, self.run_id, iteration),
            )
            self._event(c, "stage", f"iteration {iteration}: trained on {n_examples} examples")

    # ---- metrics ---------------------------------------------------------------
    def finish_iteration(self, iteration: int, metrics: list[dict[str, Any]]) -> None:
        """Write an iteration's metrics and mark it done, in one transaction."""
        with self.tx() as c:
            c.execute("DELETE FROM metrics WHERE run_id=? AND iteration=?", (self.run_id, iteration))
            c.executemany(
                "INSERT INTO metrics(run_id, iteration, task, split, grp, n, n_correct, accuracy)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [
                    (self.run_id, iteration, m["task"], m["split"], m["grp"], m["n"], m["n_correct"], m["accuracy"])
                    for m in metrics
                ],
            )
            c.execute(
                "UPDATE iterations SET stage='done', finished_at=? WHERE run_id=? AND iteration=?",
                (time.time(), self.run_id, iteration),
            )
            self._event(c, "stage", f"iteration {iteration}: done")
