"""The kept training examples as ``star export`` writes them: one record per row of ``train_examples``, iteration
by iteration, with the gold answer and the filter's reason of the sample it came from.

Plain SQL on an open read connection (the command checks the store and opens it read-only itself); no pandas, so
the export needs none."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TypedDict


class TrainRecord(TypedDict):
    """One line of ``iter_<i>.jsonl``: a kept training example and where it came from."""

    iteration: int
    task: str
    question_id: str
    source: str
    prompt: str
    completion: str
    gold: str | None
    reason: str | None


def train_example_iterations(con: sqlite3.Connection) -> list[int]:
    """The iterations that stored training examples, in order."""
    return [r[0] for r in con.execute("SELECT DISTINCT iteration FROM train_examples ORDER BY iteration")]


def train_example_records(con: sqlite3.Connection, iteration: int) -> Iterator[TrainRecord]:
    """The training examples of one iteration, in storage order, each joined to its sample (read as they go)."""
    for r in con.execute(
        "SELECT te.*, s.decision, s.reason, s.gold FROM train_examples te "
        "JOIN samples s ON s.id = te.sample_id WHERE te.iteration=? ORDER BY te.id",
        (iteration,),
    ):
        yield {
            "iteration": iteration,
            "task": r["task"],
            "question_id": r["question_id"],
            "source": r["source"],
            "prompt": r["prompt"],
            "completion": r["completion"],
            "gold": r["gold"],
            "reason": r["reason"],
        }
