"""The writer of one run's store: :class:`RunStore` and the rows it takes (:class:`SampleRecord`).

Writes happen in short transactions (one sampling batch, one training run, one evaluation batch), so that a
reader never sees half a batch, and a killed run resumes from the last committed batch. Samples carry a UNIQUE
key, so a resumed batch can never be stored twice. The engine (``star_core.loop``) writes to the store only
through these methods. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runfolder import DB_NAME, ENGINE_FILES, check_closed, store_blank
from .aggregates import AGGREGATES, AGGREGATES_VERSION, rebuild_aggregates
from .filecheck import check, connect, schema_version
from .migrate import PrefixTable, migrate_v1
from .schema import PROMPT_SQL, SAMPLES_V2, SCHEMA, SCHEMA_VERSION, statements
from .vocab import FRONTIER_PREFIX, TRAIN_SOURCE


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


#: The columns of ``samples`` the writer fills, in the order of :func:`_sample_row`.
_INSERT_SAMPLE = (
    "INSERT OR IGNORE INTO samples(run_id, iteration, task, split, phase, question_id, k, grp,"
    " question, prefix_id, prompt_tail, hint, raw_output, rationale, answer, gold, correct, decision,"
    " kept, reason, audit_faithful, audit_json, prompt_tokens, output_tokens, seconds, created_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _sample_row(run_id: int, r: SampleRecord, prefix_id: int | None, tail: str, now: float) -> tuple:
    """The values of :data:`_INSERT_SAMPLE` for ``r``, whose prompt is split into ``prefix_id`` and ``tail``."""
    return (
        run_id,
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
    )


class RunStore:
    """Writer (and simple reader) of one run's database."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.run_dir / DB_NAME
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
            self._rebuild_aggregate_tables()
        self.run_id = 1

    def _rebuild_aggregate_tables(self) -> None:
        """Drop the aggregate tables and their triggers, create them as this star defines them and fill them from
        the samples, in one transaction (until it commits, the version stays old, so an interrupted rebuild is
        done again)."""
        with self.tx() as c:
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

    def set_device(self, device: str) -> None:
        """The device the model was loaded on (in words), and this process as the run's."""
        with self.tx() as c:
            c.execute("UPDATE runs SET device=?, pid=? WHERE id=?", (device, os.getpid(), self.run_id))

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

    def save_frontier(self, iteration: int, record: dict[str, Any]) -> None:
        """Iteration ``iteration``'s curriculum frontier record (star_core.curriculum), in ``meta`` under
        ``curriculum.<iteration>``, replacing a stored one."""
        with self.tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                (f"{FRONTIER_PREFIX}{iteration}", json.dumps(record)),
            )

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
                cur = c.execute(_INSERT_SAMPLE, _sample_row(self.run_id, r, prefix_id, tail, now))
                if cur.rowcount == 0:
                    continue
                new += 1
                if r.kept:
                    self._add_train_example(c, r, cur.lastrowid)
            c.execute("UPDATE runs SET heartbeat_at=?, updated_at=? WHERE id=?", (now, now, self.run_id))
        return new

    def _add_train_example(self, c: sqlite3.Connection, r: SampleRecord, sample_id: int | None) -> None:
        """The training example of the kept sample ``r``, stored as ``sample_id``."""
        if r.train_prompt is None or r.train_completion is None:
            raise ValueError("a kept sample needs train_prompt and train_completion")
        c.execute(
            "INSERT INTO train_examples(run_id, iteration, sample_id, task, question_id, source,"
            " prompt, completion) VALUES (?,?,?,?,?,?,?,?)",
            (
                self.run_id,
                r.train_iteration if r.train_iteration is not None else r.iteration,
                sample_id,
                r.task,
                r.question_id,
                TRAIN_SOURCE[r.phase],
                r.train_prompt,
                r.train_completion,
            ),
        )

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
