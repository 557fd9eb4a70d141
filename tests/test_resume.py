"""Kill a real `star run` process with SIGKILL mid-run, resume it, and compare with a clean run.

Nothing may be lost and no sample stored twice: the resumed run's samples,
decisions and metrics must equal those of an uninterrupted run with the same
config.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from helpers import child_env
from helpers.store_sql import opened, query
from star_core import loop
from star_core.store import DB_NAME

SETS = [
    "n_train=120",
    "n_eval=40",
    "max_new_tokens=24",
    "batch_size=4",
    "train_steps=3",
    "iterations=2",
    "train_batch_size=2",
    "lora_r=4",
    "lora_alpha=8",
    "warmup_steps=1",
    "threads=1",
]


def _count(run: Path, sql: str) -> int:
    if not (run / DB_NAME).exists():
        return 0
    try:
        return query(run, sql, readonly=True)[0][0]
    except sqlite3.OperationalError:
        return 0


def _run_args(model_dir, run: Path):
    """Environment, run folder and `star run` arguments of a small tiny-model arithmetic run."""
    env = child_env()
    args = ["run", "--quiet", "--task", "arithmetic", "--model", str(model_dir), "--out", str(run)]
    for s in SETS:
        args += ["--set", s]
    return env, run, args


def _spawn(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "star_core.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _kill_when(proc, run, sql, at_least, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point: {proc.stderr.read().decode()[-2000:]}")
        n = _count(run, sql)
        if n >= at_least:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return n
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("kill point never reached")


def _snapshot(run: Path):
    with opened(run) as con:
        samples = con.execute(
            "SELECT iteration, phase, question_id, k, raw_output, answer, decision, kept FROM samples "
            "ORDER BY iteration, phase, question_id, k"
        ).fetchall()
        metrics = con.execute(
            "SELECT iteration, task, split, grp, n, n_correct FROM metrics ORDER BY iteration, task, split, grp"
        ).fetchall()
        examples = con.execute(
            "SELECT iteration, question_id, prompt, completion FROM train_examples ORDER BY iteration, question_id"
        ).fetchall()
        losses = con.execute("SELECT iteration, COUNT(*) FROM train_losses GROUP BY iteration").fetchall()
        status = con.execute("SELECT status FROM runs").fetchone()[0]
        dupes = con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM samples GROUP BY iteration, task, phase, "
            "question_id, k HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    return samples, metrics, examples, losses, status, dupes


@pytest.mark.slow
def test_kill_9_and_resume_loses_and_duplicates_nothing(tiny_model_dir, tmp_path):
    env, run, args = _run_args(tiny_model_dir, tmp_path / "killed")

    # 1) kill during iteration 1's sampling
    p = _spawn(args, env)
    n1 = _kill_when(p, run, "SELECT COUNT(*) FROM samples WHERE iteration=1 AND phase='sample'", 1)
    assert _count(run, "SELECT COUNT(*) FROM runs WHERE status='running'") == 1  # no chance to say goodbye

    from star_core import queries

    assert queries.run_status(run) == "crashed"

    # 2) resume, kill again during iteration 2's evaluation
    p = _spawn(["run", "--quiet", "--resume", str(run)], env)
    n2 = _kill_when(p, run, "SELECT COUNT(*) FROM samples WHERE iteration=2 AND phase='eval'", 1)

    # 3) resume to the end
    p = _spawn(["run", "--quiet", "--resume", str(run)], env)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]

    # a clean run with the same config
    from star_core import config as C

    clean = loop.start(C.from_saved(run / "config.yaml"), tmp_path / "clean", progress=False)
    got, want = _snapshot(run), _snapshot(clean)
    assert got[5] == 0, "duplicate samples"
    assert got[4] == "finished"
    assert len(got[0]) == len(want[0]) > 0
    assert got[0] == want[0], "samples differ from an uninterrupted run"
    assert got[1] == want[1], "metrics differ"
    assert got[2] == want[2], "training examples differ"
    assert got[3] == want[3], "training losses differ"
    assert n1 >= 1 and n2 >= 1


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_resumes(tiny_model_dir, tmp_path):
    """What the dashboard's Stop button sends: the run records `stopped` and resumes to the end."""
    env, run, args = _run_args(tiny_model_dir, tmp_path / "stopped")
    p = _spawn(args, env)
    t0 = time.time()
    while _count(run, "SELECT COUNT(*) FROM samples WHERE iteration=1") < 1:
        assert p.poll() is None and time.time() - t0 < 240
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err.decode()[-2000:]
    from star_core import queries

    assert queries.run_status(run) == "stopped"
    assert queries.summary(run)["resumable"] is True
    p = _spawn(["run", "--quiet", "--resume", str(run)], env)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]
    assert queries.run_status(run) == "finished"
    assert _snapshot(run)[5] == 0


@pytest.mark.slow
def test_kill_9_after_the_warm_start_does_not_train_it_again(tiny_model_dir, tmp_path):
    """Killed while the warm-started model is evaluated, the run resumes from there: the warm start's
    adapter and losses are kept, not trained again, and the run ends as an uninterrupted one."""
    warm = ["warm_start=8", "warm_start_steps=3", "iterations=1", "n_train=20"]
    env, run, args = _run_args(tiny_model_dir, tmp_path / "killed")
    args += [a for s in warm for a in ("--set", s)]
    p = _spawn(args, env)
    _kill_when(p, run, "SELECT COUNT(*) FROM samples WHERE phase='warm_eval'", 1)
    assert _count(run, "SELECT COUNT(*) FROM iterations WHERE iteration=0 AND stage='trained'") == 1
    adapter = run / "adapters" / "warm_start" / "adapter_model.safetensors"
    made = adapter.stat().st_mtime_ns
    p = _spawn(["run", "--quiet", "--resume", str(run)], env)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]
    assert adapter.stat().st_mtime_ns == made
    assert _count(run, "SELECT COUNT(*) FROM events WHERE message LIKE 'iteration 0: trained on 8 examples'") == 1
    from star_core import config as C

    clean = loop.start(C.from_saved(run / "config.yaml"), tmp_path / "clean", progress=False)
    got, want = _snapshot(run), _snapshot(clean)
    assert got[5] == 0 and got[4] == "finished"
    assert got[:4] == want[:4]
    assert _count(run, "SELECT COUNT(*) FROM samples WHERE phase='warm_start'") == 8
