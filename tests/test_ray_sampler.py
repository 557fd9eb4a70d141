"""sampler=ray: star's decoder on a local Ray cluster (2 CPU workers, the tiny model) stores what the
local decoder stores; a worker killed in the middle of a phase is restarted and its work redone, and
a driver that dies mid-phase resumes, with nothing lost or stored twice; a bad ray_address, or a port
that does not speak Ray's protocol, is a quick, clear error; no Ray, a clear error; the Runs page shows
the backend.

Every Ray run is a child process in a session of its own (tests/helpers/scripts/ray_child.py says why): Ray can end the
process that drives it, and the test runner must never be that process.

Each Ray run starts its own small cluster (3 CPUs, a 200 MB object store, no dashboard, worker logs
not forwarded) and shuts it down when the run ends.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from helpers import RAY_CHILD, child_env
from helpers.store_sql import query
from star_core import cli, loop
from star_core import config as C
from star_core.store import DB_NAME

# A warm start trains an adapter at iteration 0 (reference rationales, no sampling needed), so that
# every phase after it decodes with a trained adapter that the workers must receive. Rationalization is
# off: its phase is one more decoding call like the others, and each phase starts its workers afresh.
SETS = {
    "n_train": 6,
    "n_eval": 8,
    "max_new_tokens": 10,
    "batch_size": 2,
    "train_steps": 2,
    "train_batch_size": 2,
    "lora_r": 4,
    "lora_alpha": 8,
    "iterations": 1,
    "warmup_steps": 1,
    "threads": 1,
    "warm_start": 8,
    "warm_start_steps": 3,
    "learning_rate": 0.05,
    "rationalize": False,
}
RAY = {"sampler": "ray", "ray_address": "local", "ray_workers": 2, "ray_cpus_per_worker": 1}


def cfg_of(model_dir, **kw):
    cfg = C.StarConfig(task="arithmetic", model=str(model_dir))
    C.apply(cfg, {**SETS, **kw}, "test")
    return cfg.validate()


def samples(run, where="1=1"):
    return query(
        run,
        f"SELECT iteration, phase, question_id, k, raw_output, answer, decision, kept, "
        f"output_tokens FROM samples WHERE {where} ORDER BY iteration, phase, question_id, k",
    )


def dupes(run):
    return query(
        run,
        "SELECT COUNT(*) FROM (SELECT 1 FROM samples GROUP BY iteration, task, phase, "
        "question_id, k HAVING COUNT(*) > 1)",
    )[0][0]


def summary_json(run, capsys):
    capsys.readouterr()
    assert cli.main(["summary", str(run), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    for volatile in ("run_dir", "name"):
        s.pop(volatile)
    return s


@pytest.fixture(scope="module")
def local_run(tiny_model_dir, tmp_path_factory):
    return loop.start(cfg_of(tiny_model_dir), tmp_path_factory.mktemp("local") / "run", progress=False)


def in_session(argv: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run ``python ARGV`` as a child in a session of its own: (rc, stdout, stderr), rc None when it ran over
    ``timeout``. Whatever it leaves behind (a stray raylet or worker) is killed with its session."""
    p = subprocess.Popen(
        [sys.executable, *argv],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", f"ran over {timeout} s"
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    return (None if err == f"ran over {timeout} s" else p.returncode), out, err


def ray_run(tiny_model_dir, run, settings, kill_worker=False, timeout=540) -> dict:
    """A sampler=ray run in a child process of its own session (tests/helpers/scripts/ray_child.py): whatever Ray
    does to its driver's process, process group or signal handlers stays there, never reaching pytest. Returns the
    child's RESULT; a child that dies or hangs fails the test."""
    spec = {"model": str(tiny_model_dir), "run": str(run), "settings": settings, "kill_worker": kill_worker}
    rc, out, err = in_session([str(RAY_CHILD), json.dumps(spec)], timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert rc == 0 and lines, f"the Ray run's process failed (rc {rc}): {err[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.slow
def test_ray_workers_store_what_the_local_decoder_stores(tiny_model_dir, local_run, tmp_path, capsys):
    pytest.importorskip("ray.data")
    run = tmp_path / "ray"
    res = ray_run(tiny_model_dir, run, {**SETS, **RAY})
    assert res["outcome"] == "finished"
    want, got = samples(local_run), samples(run)
    # the adapter matters: the warm-started model answers differently from the few-shot one
    base = {r[2]: r[4] for r in want if r[:2] == (0, "eval")}
    warm = {r[2]: r[4] for r in want if r[:2] == (0, "warm_eval")}
    assert len(base) == 8 and any(warm[q] != base[q] for q in base), "the adapter changes nothing: a weak test"
    assert {r[1] for r in got} == {"eval", "warm_start", "warm_eval", "sample"}
    assert len(got) == len(want) > 0
    assert got == want
    assert dupes(run) == 0
    assert summary_json(run, capsys) == summary_json(local_run, capsys)
    saved = C.from_saved(run / "config.yaml")
    assert (saved.sampler, saved.ray_workers) == ("ray", 2)
    assert not res["ray_initialized"], "the run's cluster was not shut down"


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_a_crashed_driver_resumes(tiny_model_dir, local_run, tmp_path):
    """A worker SIGKILLed after the phase's first unit is restarted and its unit redone; the driver then
    dies at the first unit another worker delivers after the kill, and `resume` decodes the rest: every
    sample stored once, as locally. Both runs are child processes (ray_run): the kill cannot reach pytest."""
    pytest.importorskip("ray.data")
    # iteration 0 only: 8 evaluation questions in 4 units of 2 over 2 workers
    run = tmp_path / "killed"
    res = ray_run(tiny_model_dir, run, {**SETS, **RAY, "iterations": 0, "warm_start": 0}, kill_worker=True)
    stored, killed = res["stored"], res["killed"]
    if res["outcome"] == "finished":  # units already decoded still arrive from a killed worker; all four did
        pytest.skip("the killed worker had decoded every unit before it died: nothing to retry this time")
    assert res["outcome"] == "driver died"
    assert killed and stored[-1] not in killed, "no other worker carried on after the kill"
    assert len(samples(run)) == 2 * len(stored) <= 8 and dupes(run) == 0  # the units stored before the driver died
    assert not res["ray_initialized"], "the run's cluster outlived its driver"
    from star_core import queries

    assert queries.run_status(run) == "crashed"

    rc, _, err = in_session(["-m", "star_core.cli", "run", "--quiet", "--resume", str(run)], 540)
    assert rc == 0, err[-3000:]
    got = samples(run)
    want = samples(local_run, "iteration=0 AND phase='eval'")
    assert dupes(run) == 0
    assert got == want, "a sample was lost, repeated or changed"
    assert queries.run_status(run) == "finished"


@pytest.mark.parametrize(
    "address, says",
    [
        ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
        ("ray://no-such-host.invalid:10001", "cannot reach the Ray cluster at no-such-host.invalid:10001"),
    ],
)
def test_a_bad_ray_address_is_a_quick_clear_error(tiny_model_dir, tmp_path, capsys, address, says):
    pytest.importorskip("ray.data")
    run = tmp_path / "bad"
    t0 = time.time()
    rc = cli.main(
        [
            "run",
            "--quiet",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(run),
            "--sampler",
            "ray",
            "--set",
            f"ray_address={address}",
            "--set",
            "iterations=0",
            "--set",
            "n_eval=2",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert says in err and "star: error: ray_address=" in err
    assert time.time() - t0 < 30
    assert not run.exists(), "a run folder was written for a run that could not start"


@pytest.mark.parametrize("server", ["http", "silent"])
def test_a_port_that_is_not_ray_is_refused_before_the_run_folder(tiny_model_dir, tmp_path, server):
    """An HTTP server (or a service that never answers) on ray_address: one line and exit 2 within seconds,
    before a run folder is written (the probe speaks Ray's protocol, not only TCP). A child process: an
    unbounded ray.init would hang it, never pytest."""
    pytest.importorskip("ray.data")
    import http.server
    import socket
    import threading

    if server == "http":
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port, stop = srv.server_address[1], srv.shutdown
    else:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port, stop = sock.getsockname()[1], sock.close
    run = tmp_path / "run"
    args = ["run", "--quiet", "--model", str(tiny_model_dir), "--out", str(run), "--sampler", "ray"]
    args += ["--set", f"ray_address=127.0.0.1:{port}", "--set", "iterations=0", "--set", "n_eval=2"]
    t0 = time.time()
    try:
        rc, _, err = in_session(["-m", "star_core.cli", *args], 60)
    finally:
        stop()
    assert rc is not None, "star run against a port that is not Ray ran over 60 s"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith(f"star: error: ray_address=127.0.0.1:{port}: 127.0.0.1:{port} is not a Ray cluster")
    assert time.time() - t0 < 40
    assert not run.exists(), "a run folder was written for a run that could not start"


def test_a_malformed_ray_address_is_a_config_error():
    with pytest.raises(C.ConfigError, match="field 'ray_address' = 'not an address'"):
        C.build(sets=["sampler=ray", "ray_address=not an address"])
    with pytest.raises(C.ConfigError, match="field 'sampler' = 'rya': choose local or ray"):
        C.build(sets=["sampler=rya"])


def test_sampler_ray_without_ray_installed_says_how_to_install(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(loop.RunError, match=r"sampler=ray needs Ray Data.*pip install -e '\.\[ray\]'"):
        loop.start(cfg_of(tiny_model_dir, **RAY), tmp_path / "noray", progress=False)
    assert not (tmp_path / "noray").exists()


def test_the_runs_page_shows_the_backend_and_its_workers(tmp_path, monkeypatch):
    """From the stored config: a run sampled on Ray shows it with its workers; a run from before the
    sampler setting reads as local."""
    pytest.importorskip("streamlit.testing.v1")

    from streamlit.testing.v1 import AppTest

    from helpers import dash_fixtures as F
    from star_core import queries as Q

    for name, extra in (
        (
            "on-ray",
            {
                "sampler": "ray",
                "ray_workers": 4,
                "ray_cpus_per_worker": 2.0,
                "ray_gpus_per_worker": 1.0,
                "ray_address": "ray://head:10001",
            },
        ),
        ("older", {}),
    ):
        run = F.build_run(tmp_path / "runs" / name, iterations=1)
        con = sqlite3.connect(run / DB_NAME)
        cfg = json.loads(con.execute("SELECT config_json FROM runs").fetchone()[0])
        con.execute("UPDATE runs SET config_json=?", (json.dumps({**cfg, **extra}),))
        con.commit()
        con.close()
    monkeypatch.setenv("STAR_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")
    monkeypatch.chdir(tmp_path)
    app = Path(__file__).resolve().parents[1] / "app.py"
    shown = {}
    for name in ("on-ray", "older"):
        at = AppTest.from_file(str(app), default_timeout=60)
        at.query_params["run"] = name
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown[name] = " ".join(str(m.value) for m in at.markdown)
    from star_dashboard.ui import md_escape

    assert md_escape("sampled on Ray: 4 workers of 2 CPU, 1 GPU (ray_address=ray://head:10001)") in shown["on-ray"]
    assert md_escape("(sampler=local)") in shown["older"] and "Ray" not in shown["older"]
