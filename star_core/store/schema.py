"""The run store's schema text: its tables, indexes and triggers, by version.

A run folder holds ``config.yaml`` (the resolved config), ``store.sqlite`` and ``adapters/iter_<i>/`` (peft
adapters). :data:`SCHEMA` is the tables every version has; the samples are :data:`SAMPLES_V1` in a version 1
store (the full prompt in every row) and :data:`SAMPLES_V2` in the current one. The comments that name a
vocabulary's values and the SQL lists of phases are built from :mod:`star_core.store.vocab`.
"""

from __future__ import annotations

import sqlite3

from .aggregates import AGGREGATE_TABLES, SAMPLE_COUNTS
from .vocab import DECISIONS, PHASE_SPLIT, PHASES, STAGES, TRAIN_SOURCE, bars

SCHEMA_VERSION = 2
#: The schema versions this star reads (version 1 stores are read as they are; the writer migrates them).
READABLE_VERSIONS = (1, 2)

SCHEMA = f"""
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
  stage TEXT NOT NULL,             -- STAGES: {bars(STAGES)}
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
  source TEXT NOT NULL,            -- TRAIN_SOURCE: {bars(TRAIN_SOURCE.values())} (warm start)
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


def _samples_table(prompt: str) -> str:
    """The ``samples`` table with ``prompt``, the lines of its prompt columns (the one difference between
    the versions)."""
    return f"""CREATE TABLE IF NOT EXISTS samples (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  iteration INTEGER NOT NULL,
  task TEXT NOT NULL,
  split TEXT NOT NULL,             -- {bars(dict.fromkeys(PHASE_SPLIT.values()))}
  phase TEXT NOT NULL,             -- PHASES: {bars(PHASES)}
  question_id TEXT NOT NULL,
  k INTEGER NOT NULL DEFAULT 0,    -- sample index when k>1 samples per question
  grp TEXT NOT NULL DEFAULT 'all', -- arithmetic: digit count
  question TEXT NOT NULL,
{prompt}  hint TEXT,                       -- the hint shown (rationalize phase only)
  raw_output TEXT NOT NULL,
  rationale TEXT,
  answer TEXT,
  gold TEXT NOT NULL,
  correct INTEGER NOT NULL,        -- parsed answer == gold
  decision TEXT NOT NULL,          -- DECISIONS: {bars(DECISIONS[:5])}
                                   -- | {bars(DECISIONS[5:])}
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
"""


#: Version 1's samples table: the full prompt in every row.
SAMPLES_V1 = (
    "\n"
    + _samples_table("  prompt TEXT NOT NULL,            -- full prompt, few-shot prefix included\n")
    + """CREATE INDEX IF NOT EXISTS samples_browse
  ON samples (run_id, iteration, task, split, phase, decision);
CREATE INDEX IF NOT EXISTS samples_question ON samples (run_id, question_id);
CREATE INDEX IF NOT EXISTS samples_grp ON samples (run_id, task, grp);
"""
)

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
"""
    + _samples_table(
        "  prefix_id INTEGER REFERENCES prompt_prefixes(id),  -- the shared few-shot prefix (NULL: none)\n"
        "  prompt_tail TEXT NOT NULL,       -- the rest of the prompt: prompt = prefix text || prompt_tail\n"
    )
    + """-- every filter of the sample browser but the text search and the question id, then id (the rowid): the
-- keyset paging seeks (filter values, id) here, one seek per sample_counts row of the filter
CREATE INDEX IF NOT EXISTS samples_browse
  ON samples (run_id, iteration, task, split, phase, decision, grp, correct, kept);
CREATE INDEX IF NOT EXISTS samples_question ON samples (run_id, question_id);
CREATE INDEX IF NOT EXISTS samples_grp ON samples (run_id, task, grp);
"""
    + SAMPLE_COUNTS
    + AGGREGATE_TABLES
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
#: The full prompt of a version 2 sample row (a column expression of ``samples``, named ``prompt``).
PROMPT_SQL = (
    "coalesce((SELECT p.text FROM prompt_prefixes p WHERE p.id = samples.prefix_id), '')"
    " || samples.prompt_tail AS prompt"
)


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
