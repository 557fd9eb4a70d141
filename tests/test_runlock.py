"""One writer per run: `star run --out X` and `star run --resume X` take RUN_DIR/run.lock (fcntl.flock)
before writing anything; a second one fails with a message naming the holder's pid."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import child_env
from helpers import dash_fixtures as F
from star_core import runlock
from star_core.store import DB_NAME

ROOT = Path(__file__).resolve().parents[1]
ENV = child_env()


def _try_in_subprocess(run_dir: Path) -> subprocess.CompletedProcess:
    code = (
        "import sys; from star_core import runlock\n"
        "try:\n    runlock.acquire(sys.argv[1])\nexcept runlock.RunLocked as e:\n    print(e); sys.exit(3)\n"
        "print('locked')"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], env=ENV, capture_output=True, text=True, timeout=60
    )


def _holder(run_dir: Path) -> subprocess.Popen:
    """Another process that takes the run's lock and keeps it until killed."""
    code = (
        "import sys, time; from star_core import runlock\n"
        "lock = runlock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(120)"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_lock_fails_naming_the_holder(tmp_path):
    run_dir = tmp_path / "r"
    lock = runlock.acquire(run_dir)
    try:
        assert runlock.holder(run_dir)["pid"] == os.getpid()
        # a second attempt, in this process (another open file) and in another process
        with pytest.raises(runlock.RunLocked, match=f"pid {os.getpid()} on "):
            runlock.acquire(run_dir)
        r = _try_in_subprocess(run_dir)
        assert r.returncode == 3 and f"in use by another star process (pid {os.getpid()}" in r.stdout
    finally:
        lock.release()
    r = _try_in_subprocess(run_dir)
    assert r.returncode == 0 and r.stdout.strip() == "locked"


@pytest.mark.slow
def test_the_lock_goes_with_a_killed_holder(tmp_path):
    run_dir = tmp_path / "r"
    p = _holder(run_dir)
    try:
        with pytest.raises(runlock.RunLocked, match=f"pid {p.pid}"):
            runlock.acquire(run_dir)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    with runlock.acquire(run_dir):  # never stale: the kernel released it with the process
        assert runlock.holder(run_dir)["pid"] == os.getpid()


@pytest.mark.slow
def test_second_run_out_is_refused_before_writing(tmp_path, tiny_model_dir, capsys):
    from star_core.cli import main

    run_dir = tmp_path / "x"
    p = _holder(run_dir)  # a first `star run --out x`, between its lock and its config.yaml
    try:
        (run_dir / "config.yaml").write_text("task: gsm8k\n")
        rc = main(
            [
                "run",
                "--quiet",
                "--out",
                str(run_dir),
                "--model",
                str(tiny_model_dir),
                "--set",
                "n_train=4",
                "--set",
                "n_eval=2",
                "--set",
                "threads=1",
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2 and f"in use by another star process (pid {p.pid}" in err
        assert (run_dir / "config.yaml").read_text() == "task: gsm8k\n"  # the first run's config is untouched
        assert not (run_dir / DB_NAME).exists()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


@pytest.mark.slow
def test_second_resume_is_refused_before_writing(tmp_path, capsys):
    from star_core import queries as Q
    from star_core.cli import main

    run_dir = tmp_path / "r"
    F.build_run(run_dir, iterations=1, n_train=4, n_eval=2, status="crashed")
    before = (run_dir / DB_NAME).stat().st_mtime_ns, (run_dir / "config.yaml").read_bytes()
    p = _holder(run_dir)  # a first `star run --resume r`, still loading
    try:
        time.sleep(0.05)
        rc = main(["run", "--quiet", "--resume", str(run_dir)])
        err = capsys.readouterr().err
        assert rc == 2 and f"pid {p.pid}" in err and "kill -TERM" in err
        assert ((run_dir / DB_NAME).stat().st_mtime_ns, (run_dir / "config.yaml").read_bytes()) == before
        assert Q.run_status(run_dir) == "crashed"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
