"""The store's aggregate tables: counts kept true by triggers on every write, and rebuilt from the samples.

``sample_counts`` holds the number of samples per combination of the sample browser's filter columns,
``question_outcomes`` each question's iterations asked and solved (bit masks, for newly solved and lost
questions), ``mask_counts`` the number of questions per outcome, ``train_counts`` the training examples per
source and ``eval_counts`` each evaluation's counts. :data:`AGGREGATES` gives each one's key and the SELECT
over the base tables that builds it; the triggers recompute a key's rows with that same SELECT.
"""

from __future__ import annotations

import sqlite3

from .vocab import EVAL_PHASES, OUTCOME_BITS, OUTCOME_PHASES, bars, sql_list

_EVAL_IN = sql_list(EVAL_PHASES)

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
        f" WHERE phase IN {sql_list(OUTCOME_PHASES)} AND iteration BETWEEN 0 AND {OUTCOME_BITS - 1}"
        "{cond}"
        " GROUP BY run_id, task, phase, question_id",
    ),
    "eval_counts": (
        _EVAL_KEY,
        "SELECT run_id, iteration, phase, task, split, grp, count(*), "
        + ", ".join(f"coalesce(sum({e.format(r='')}), 0)" for e in _EVAL_SUMS)
        + f" FROM samples WHERE phase IN {_EVAL_IN}"
        "{cond}"
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


#: ``sample_counts`` and its triggers (created before the other aggregates: the browser's counts).
SAMPLE_COUNTS = """CREATE TABLE IF NOT EXISTS sample_counts (
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

#: The other aggregate tables and their triggers.
AGGREGATE_TABLES = f"""CREATE TABLE IF NOT EXISTS question_outcomes (
  run_id INTEGER NOT NULL,
  task TEXT NOT NULL,
  phase TEXT NOT NULL,             -- OUTCOME_PHASES: {bars(OUTCOME_PHASES)}
  question_id TEXT NOT NULL,
  grp TEXT NOT NULL,
  n INTEGER NOT NULL,              -- samples (more than the bits of asked: several per iteration)
  asked INTEGER NOT NULL,          -- bit i: the question has a sample of iteration i (i < OUTCOME_BITS)
  solved INTEGER NOT NULL,         -- bit i: one of them is correct
  PRIMARY KEY (run_id, task, phase, question_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS samples_outcome_ins AFTER INSERT ON samples
WHEN new.phase IN {sql_list(OUTCOME_PHASES)} AND new.iteration BETWEEN 0 AND {OUTCOME_BITS - 1} BEGIN
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
WHEN new.phase IN {_EVAL_IN} BEGIN
  INSERT INTO eval_counts VALUES (new.run_id, new.iteration, new.phase, new.task, new.split, new.grp, 1,
    {", ".join(f"coalesce({e.format(r='new.')}, 0)" for e in _EVAL_SUMS)})
  ON CONFLICT DO UPDATE SET n = n + 1, n_correct = n_correct + excluded.n_correct,
    n_faithful = n_faithful + excluded.n_faithful, n_rationale = n_rationale + excluded.n_rationale,
    n_audited = n_audited + excluded.n_audited;
END;
CREATE TRIGGER IF NOT EXISTS samples_eval_upd
AFTER UPDATE OF run_id, iteration, phase, task, split, grp, correct, audit_faithful, audit_json ON samples
WHEN old.phase IN {_EVAL_IN} OR new.phase IN {_EVAL_IN} BEGIN
{_recompute("eval_counts", "old.", "new.")}END;
CREATE TRIGGER IF NOT EXISTS samples_eval_del AFTER DELETE ON samples
WHEN old.phase IN {_EVAL_IN} BEGIN
{_recompute("eval_counts", "old.")}END;
"""


def rebuild_aggregates(con: sqlite3.Connection) -> None:
    """Rebuild every table of ``AGGREGATES`` from the samples (inside the caller's transaction)."""
    for table, (_, select) in AGGREGATES.items():  # mask_counts after question_outcomes, whose triggers it has
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} {select.format(cond='')}")
    con.execute("DELETE FROM mask_counts")
    con.execute(f"INSERT INTO mask_counts {AGGREGATES['mask_counts'][1].format(cond='')}")
    con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('aggregates_version', ?)", (AGGREGATES_VERSION,))
