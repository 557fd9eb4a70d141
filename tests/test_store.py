"""The run store: WAL mode, idempotent batches, all-or-nothing transactions, readers during writes."""

import sqlite3
import threading

import pytest

from star_core.store import RunStore, SampleRecord, connect


def rec(qid, kept=False, iteration=1, phase="sample", **kw):
    return SampleRecord(
        iteration=iteration,
        task="arithmetic",
        split="train",
        phase=phase,
        question_id=qid,
        question="q",
        prompt="p",
        raw_output="o",
        gold="1",
        decision="correct" if kept else "wrong",
        reason="r",
        correct=kept,
        kept=kept,
        train_prompt="Q:" if kept else None,
        train_completion=" 1" if kept else None,
        **kw,
    )


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "run")
    s.create_run("t", "arithmetic", "m", {"a": 1}, 2, "cpu")
    s.begin_iteration(1, 40)
    yield s
    s.close()


def count(s, sql="SELECT COUNT(*) FROM samples"):
    return s.con.execute(sql).fetchone()[0]


def test_wal_mode(store):
    assert store.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_batch_stored_twice_is_stored_once(store):
    batch = [rec("a", kept=True), rec("b"), rec("c", kept=True)]
    assert store.add_samples(batch) == 3
    assert store.add_samples(batch) == 0
    assert count(store) == 3 and count(store, "SELECT COUNT(*) FROM train_examples") == 2
    assert store.done_question_ids(1, "arithmetic", "sample") == {("a", 0), ("b", 0), ("c", 0)}


def test_a_failing_batch_leaves_nothing(store):
    bad = rec("z", kept=True)
    bad.train_completion = None  # a kept sample without its training text is refused
    with pytest.raises(ValueError):
        store.add_samples([rec("x"), rec("y", kept=True), bad])
    assert count(store) == 0 and count(store, "SELECT COUNT(*) FROM train_examples") == 0


def test_training_and_metrics_are_atomic_and_replaceable(store):
    store.finish_training(1, [(1, 2.0, 1e-4, 0.1), (2, 1.0, 1e-4, 0.1)], "adapters/iter_1", 5)
    store.finish_training(1, [(1, 1.5, 1e-4, 0.1)], "adapters/iter_1", 5)  # a redone training run
    assert count(store, "SELECT COUNT(*) FROM train_losses") == 1
    assert store.iteration_stage(1) == "trained"
    store.finish_iteration(
        1, [{"task": "arithmetic", "split": "eval", "grp": "all", "n": 4, "n_correct": 1, "accuracy": 0.25}]
    )
    assert store.iteration_stage(1) == "done"
    with pytest.raises(ValueError):
        store.set_stage(1, "done", bogus=1)


def test_reader_sees_whole_batches_while_a_writer_writes(store):
    reader = connect(store.db_path, readonly=True)
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            seen.append(reader.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    t = threading.Thread(target=read)
    t.start()
    for b in range(30):
        store.add_samples([rec(f"q{b}-{i}") for i in range(10)])
    stop.set()
    t.join()
    assert seen and all(n % 10 == 0 for n in seen)  # never half a batch
    assert reader.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 300
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("DELETE FROM samples")  # readers cannot write


def test_the_engine_writes_the_device_and_the_frontier_through_the_writer(store):
    """loop's writes that were SQL of its own: the device the model loaded on, the curriculum's frontier record."""
    import os

    from star_core import curriculum

    store.set_device("cpu (no quantization)")
    row = store.con.execute("SELECT device, pid FROM runs WHERE id=?", (store.run_id,)).fetchone()
    assert tuple(row) == ("cpu (no quantization)", os.getpid())
    rec = {"frontier": 2, "keep": 0.5, "rates": {"1": [3, 4]}}
    store.save_frontier(1, rec)
    store.save_frontier(1, {**rec, "frontier": 3})  # replaced, never stored twice
    assert curriculum.load(store.con) == {1: {**rec, "frontier": 3}}


def test_no_phase_list_is_written_by_hand_in_the_store():
    """The schema's SQL lists of phases are built from the vocabularies (star_core.store.vocab), and still read
    as the schema always did."""
    from pathlib import Path

    from star_core import store as S

    src = Path(S.__file__).parent
    assert [f.name for f in sorted(src.glob("*.py")) if "IN ('" in f.read_text()] == []
    assert "WHEN new.phase IN ('eval', 'warm_eval', 'direct_eval') BEGIN" in S.SAMPLES_V2
    assert "new.phase IN ('sample', 'eval', 'warm_eval') AND new.iteration BETWEEN 0 AND 62" in S.SAMPLES_V2
    assert "phase TEXT NOT NULL,             -- PHASES: sample | rationalize | warm_start | eval" in S.SAMPLES_V1
