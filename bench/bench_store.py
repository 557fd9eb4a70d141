"""Store size per sample and batch write time, schema version 1 against version 2 (a script, not a test).

For each task, the same synthetic run (``star_fixtures.synthetic.synth_records`` with the task's real few-shot
prefix) is written twice in batches of 64, one transaction per batch: once in the version 1 layout (the full
prompt in every row, as star wrote before schema version 2) and once through today's ``RunStore``
(the prefix stored once, the count table and the trigram index). Sizes are measured after VACUUM and split
by table and index (SQLite's dbstat).

    python bench/bench_store.py [--samples 20000] [--tasks arithmetic,commonsenseqa,gsm8k]
    python bench/bench_store.py --v1-copy RUN_DIR OUT_DIR   # RUN_DIR's store rewritten in the version 1 layout
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from star_core.store import PROMPT_SQL, SAMPLES_V1, SCHEMA, TRAIN_SOURCE, RunStore  # noqa: E402
from star_fixtures import synthetic  # noqa: E402

_V1_COLS = (
    "run_id, iteration, task, split, phase, question_id, k, grp, question, prompt, hint, raw_output, "
    "rationale, answer, gold, correct, decision, kept, reason, audit_faithful, audit_json, prompt_tokens, "
    "output_tokens, seconds, created_at"
)


def v1_store(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(SCHEMA + SAMPLES_V1)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO runs(id, name, task, model, config_json, status, created_at, updated_at,"
        " iterations_planned) VALUES (1, 'v1', 't', 'm', '{}', 'finished', 0, 0, 1)"
    )
    return con


def write_v1(con: sqlite3.Connection, recs) -> float:
    """One batch as the version 1 writer stored it (one transaction, training examples included); returns
    seconds."""
    t0 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    for r in recs:
        audit = r.audit or {}
        cur = con.execute(
            f"INSERT OR IGNORE INTO samples({_V1_COLS}) VALUES ({','.join('?' * 25)})",
            (
                1,
                r.iteration,
                r.task,
                r.split,
                r.phase,
                r.question_id,
                r.k,
                r.grp,
                r.question,
                r.prompt,
                r.hint,
                r.raw_output,
                r.rationale,
                r.answer,
                r.gold,
                int(r.correct),
                r.decision,
                int(r.kept),
                r.reason,
                None if audit.get("faithful") is None else int(audit["faithful"]),
                json.dumps(r.audit) if r.audit is not None else None,
                r.prompt_tokens,
                r.output_tokens,
                r.seconds,
                time.time(),
            ),
        )
        if r.kept and cur.rowcount:
            con.execute(
                "INSERT INTO train_examples(run_id, iteration, sample_id, task, question_id, source, prompt,"
                " completion) VALUES (1,?,?,?,?,?,?,?)",
                (
                    r.iteration,
                    cur.lastrowid,
                    r.task,
                    r.question_id,
                    TRAIN_SOURCE[r.phase],
                    r.train_prompt,
                    r.train_completion,
                ),
            )
    con.execute("UPDATE runs SET updated_at=? WHERE id=1", (time.time(),))
    con.execute("COMMIT")
    return time.perf_counter() - t0


def sizes(path: Path) -> tuple[int, dict[str, int]]:
    """(sample rows, bytes per object) after a checkpoint and VACUUM."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    by = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    con.close()
    return n, by


def group(by: dict[str, int]) -> dict[str, int]:
    out = {"samples table": 0, "samples indexes": 0, "prefixes": 0, "counts": 0, "trigram index": 0, "other": 0}
    for name, b in by.items():
        if name == "samples":
            out["samples table"] += b
        elif name.startswith("samples_fts"):
            out["trigram index"] += b
        elif name in ("samples_browse", "samples_question", "samples_grp", "sqlite_autoindex_samples_1"):
            out["samples indexes"] += b
        elif name.startswith("prompt_prefixes") or name == "sqlite_autoindex_prompt_prefixes_1":
            out["prefixes"] += b
        elif name == "sample_counts":
            out["counts"] += b
        else:
            out["other"] += b
    return out


def one_task(task: str, n: int, tmp: Path) -> None:
    per = n / (1.39 * 3 + 0.25 * 4)  # 3 iterations: samples, ~39 % hinted retries, evals
    recs = [
        r
        for _, _, b in synthetic.synth_records(
            (task,), 3, int(per), int(per * 0.25), True, 0, payload=False, real_prefixes=True
        )
        for r in b
    ]
    batches = [recs[i : i + 64] for i in range(0, len(recs), 64)]
    con = v1_store(tmp / f"{task}-v1" / "store.sqlite")
    t1 = [write_v1(con, b) for b in batches]
    con.close()
    st = RunStore(tmp / f"{task}-v2")
    st.create_run("v2", task, "m", {}, 3, "cpu")
    t2 = []
    for b in batches:
        t0 = time.perf_counter()
        st.add_samples(b)
        t2.append(time.perf_counter() - t0)
    avg_prompt = st.con.execute(f"SELECT avg(length({PROMPT_SQL.split(' AS ')[0]})) FROM samples").fetchone()[0]
    st.close()
    n1, s1 = sizes(tmp / f"{task}-v1" / "store.sqlite")
    n2, s2 = sizes(tmp / f"{task}-v2" / "store.sqlite")
    g1, g2 = group(s1), group(s2)
    print(f"\n{task}: {n1:,} samples, prompts of {avg_prompt:,.0f} characters on average")
    print(f"  {'bytes per sample':24} {'version 1':>10} {'version 2':>10}")
    for k in g1:
        if g1[k] or g2[k]:
            print(f"  {k:24} {g1[k] / n1:10.0f} {g2[k] / n2:10.0f}")
    tot1, tot2 = sum(s1.values()) / n1, sum(s2.values()) / n2
    print(f"  {'whole file':24} {tot1:10.0f} {tot2:10.0f}   ({tot2 / tot1:.2f} x)")
    print(
        f"  median ms per batch of 64: version 1 {statistics.median(t1) * 1000:.1f}, "
        f"version 2 {statistics.median(t2) * 1000:.1f}"
    )


def v1_copy(run_dir: Path, out_dir: Path) -> None:
    """``run_dir``'s store (version 2) rewritten in the version 1 layout, to time today's readers on it."""
    src = run_dir / "store.sqlite"
    dst = out_dir / "store.sqlite"
    if dst.exists():
        raise SystemExit(f"{dst} exists")
    con = v1_store(dst)
    con.execute("DELETE FROM runs")
    con.execute("DELETE FROM meta")
    con.execute("ATTACH DATABASE ? AS src", (f"file:{src}?mode=ro",))
    con.execute("BEGIN")
    for t in ("meta", "runs", "iterations", "exemplars", "train_examples", "train_losses", "metrics", "events"):
        con.execute(f"INSERT INTO main.{t} SELECT * FROM src.{t}")
    con.execute("UPDATE main.meta SET value='1' WHERE key='schema_version'")
    cols = _V1_COLS.replace("prompt, ", "")
    con.execute(
        f"INSERT INTO main.samples(id, {cols}, prompt) SELECT id, {cols},"
        " coalesce((SELECT text FROM src.prompt_prefixes p WHERE p.id = s.prefix_id), '') || s.prompt_tail"
        " FROM src.samples s ORDER BY id"
    )
    con.execute("COMMIT")
    con.execute("DETACH DATABASE src")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000, help="samples per task")
    ap.add_argument("--tasks", default="arithmetic,commonsenseqa,gsm8k")
    ap.add_argument("--v1-copy", nargs=2, metavar=("RUN_DIR", "OUT_DIR"))
    a = ap.parse_args()
    if a.v1_copy:
        v1_copy(Path(a.v1_copy[0]), Path(a.v1_copy[1]))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="star-bench-store-"))
    try:
        for task in a.tasks.split(","):
            one_task(task, a.samples, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
