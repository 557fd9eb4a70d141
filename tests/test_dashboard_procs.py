"""Process control trusts only the dashboard's own record of what it started (issue 20, items 2 and 8): a
``launch.json`` planted in a run folder, or in a folder of the runs root, names no process to signal and blocks
no launch; and the launch limit counts the runs it started under every runs root."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from star_core import procs
from star_dashboard import control

SLEEP = "import time; time.sleep(60)"


@pytest.fixture
def started(monkeypatch):
    """Pids this test started through the dashboard, killed (and reaped) at the end."""
    for var in ("STAR_DASHBOARD_LAUNCH", "STAR_DASHBOARD_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STAR_DASHBOARD_MAX_RUNS", "1")
    monkeypatch.setenv("STAR_DEMO_RUNS", "0")
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
    procs.reap()


def _victim(run_dir: Path) -> subprocess.Popen:
    """A live process whose command line ends like a run's, named by a planted launch.json in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", SLEEP, "run", "--out", str(run_dir)]
    p = subprocess.Popen(cmd)
    time.sleep(0.3)  # let /proc/<pid>/cmdline show the new program
    (run_dir / procs.LAUNCH_INFO).write_text(json.dumps({"pid": p.pid, "cmd": ["star"] + cmd[1:]}))
    return p


def test_a_planted_launch_json_names_no_process_to_stop(tmp_path, started):
    victim = _victim(tmp_path / "runs" / "planted")
    try:
        assert procs.launched_alive(tmp_path / "runs" / "planted") is None
        assert "nothing was stopped" in procs.stop_run(tmp_path / "runs" / "planted")
        time.sleep(0.3)
        assert victim.poll() is None  # not signalled
    finally:
        victim.kill()
        victim.wait()


def test_a_planted_launch_json_in_the_runs_root_blocks_no_launch(tmp_path, monkeypatch, started):
    root = tmp_path / "runs"
    victim = _victim(root / "planted")
    monkeypatch.setenv("STAR_RUNS_ROOT", str(root))
    try:
        pid, msg = control.start_run([sys.executable, "-c", SLEEP], root / "mine", procs.policy("127.0.0.1"))
        assert pid, msg
        started.append(pid)
        assert procs.launched_alive(root / "mine") == pid
        assert "Sent SIGTERM" in procs.stop_run(root / "mine")
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_the_launch_limit_counts_runs_under_every_root(tmp_path, monkeypatch, started):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("STAR_RUNS_ROOT", os.pathsep.join([str(a), str(b)]))
    pol = procs.policy("127.0.0.1")
    assert pol.allowed and pol.max_runs == 1
    pid, msg = control.start_run([sys.executable, "-c", SLEEP], b / "resumed", pol)  # a Resume of a run in root b
    assert pid, msg
    started.append(pid)
    pid2, msg = control.start_run([sys.executable, "-c", SLEEP], a / "second", pol)
    if pid2:
        started.append(pid2)
    assert pid2 is None and "at most 1 at once" in msg and "resumed" in msg


def test_a_reused_pid_is_not_the_process_the_dashboard_started(tmp_path, monkeypatch, started):
    """The record holds the process's start time: a pid that now belongs to another process is not signalled."""
    monkeypatch.setenv("STAR_RUNS_ROOT", str(tmp_path))
    pid, msg = control.start_run([sys.executable, "-c", SLEEP], tmp_path / "r", procs.policy("127.0.0.1"))
    assert pid, msg
    started.append(pid)
    real = procs.process_start_time(pid)
    assert real is not None or not Path("/proc").is_dir()
    with monkeypatch.context() as m:
        m.setattr(procs, "process_start_time", lambda p: (real or 0) + 1)
        assert procs.launched_alive(tmp_path / "r") is None
        assert "nothing was stopped" in procs.stop_run(tmp_path / "r")
    assert procs.launched_alive(tmp_path / "r") == pid


@pytest.mark.parametrize(
    "host,origin,extra,refused",
    [
        ("127.0.0.1:8501", "http://127.0.0.1:8501", (), None),
        ("localhost:9000", "http://localhost:9000", (), None),  # an ssh tunnel on another port: same origin
        ("[::1]:8501", "http://[::1]:8501", (), None),
        ("LocalHost:8501", None, (), None),  # no Origin (not a browser): the page, but no process control
        ("rebind.example:8501", "http://rebind.example:8501", (), "does not serve the address"),
        ("rebind.example:8501", "http://rebind.example:8501", ("*",), "does not serve the address"),
        ("gpu-box.lan:8501", "http://gpu-box.lan:8501", ("gpu-box.lan",), None),
        ("a.lab.example:8501", "https://a.lab.example:8501", ("*.lab.example",), None),
        ("127.0.0.1:8501", "http://rebind.example:8501", (), "another origin"),
        ("localhost:8501", "http://localhost:3000", (), "another origin"),  # another local page
        ("localhost:8501", "null", (), "another origin"),
        ("user@localhost:8501", None, (), "does not serve the address"),
        ("localhost:99999", None, (), "does not serve the address"),
    ],
)
def test_requests_from_another_name_or_origin_are_refused(host, origin, extra, refused):
    why = procs.request_refusal(host, origin, extra)
    assert (why is None) if refused is None else (refused in why), why
    assert procs.request_refusal(None, None) is None  # no browser behind the session (a test)


def test_process_control_needs_a_same_origin_websocket():
    assert procs.policy("127.0.0.1", None, None, same_origin_ws=True).allowed
    pol = procs.policy("127.0.0.1", None, None, same_origin_ws=False)
    assert not pol.allowed and "Origin" in pol.reason
    assert procs.same_origin("localhost:8501", "http://localhost:8501")
    assert not procs.same_origin("localhost:8501", None) and not procs.same_origin("localhost:8501", "file://")


def test_a_planted_launch_log_link_is_neither_shown_nor_written(tmp_path, monkeypatch, started):
    """launch.log as a symlink to a file outside the run folder: the page does not show that file's tail, and a
    start does not append to it (it is refused, in one line)."""
    secret = tmp_path / "outside.txt"
    secret.write_text("the outside file\n")
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / procs.LOG_NAME).symlink_to(secret)
    monkeypatch.setenv("STAR_RUNS_ROOT", str(tmp_path / "runs"))
    assert procs.log_tail(run) is None
    pid, msg = control.start_run([sys.executable, "-c", SLEEP], run, procs.policy("127.0.0.1"))
    if pid:
        started.append(pid)
    assert pid is None and procs.LOG_NAME in msg and "\n" not in msg
    assert secret.read_text() == "the outside file\n"
    fifo = tmp_path / "runs" / "f"
    fifo.mkdir()
    os.mkfifo(fifo / procs.LOG_NAME)  # a FIFO would block the page until some writer came
    assert procs.log_tail(fifo) is None
