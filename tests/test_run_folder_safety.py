"""Hostile and clumsy inputs to the engine and the CLI (issue 20): each gives one line and exit 2, and nothing
outside the run folder changes. A run folder is closed: its lock, store, config, adapters and temporary
folders are refused when they lead out of it through a link; a YAML alias bomb or a 200k-deep document is
refused before anything is built; a crash while the store is created leaves a folder `--out` takes again."""

import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import child_env
from helpers.dash_fixtures import build_run
from star_core import queries, runfolder, runlock
from star_core.store import CONFIG_NAME, DB_NAME
from star_core.store import writer as store_mod  # the module whose connect RunStore calls

ROOT = Path(__file__).resolve().parents[1]
ENV = child_env()


def _limit_memory():  # a runaway expansion fails fast here instead of swapping the machine
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def star(*args, timeout=90) -> tuple[int, str, str]:
    """`star ARGS` in a subprocess (its own stderr, a memory cap and a time limit): (rc, stdout, stderr)."""
    try:
        r = subprocess.run(
            [sys.executable, "-m", "star_core.cli", *map(str, args)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"star {' '.join(map(str, args))} ran over {timeout} s")
    return r.returncode, r.stdout, r.stderr


def one_line(rc: int, err: str, *says: str) -> str:
    """Exit 2 and one short `star: error:` line, the last (log lines and progress bars aside), no traceback; it
    says each of ``says``."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    assert [ln for ln in lines if ln.startswith("star: error: ")] == lines[-1:], err[-3000:]
    assert len(lines[-1]) < 600, lines[-1][:1000]
    line = re.sub(r"/\S*?/pytest-\d+/[^/\s]+", "<tmp>", lines[-1])  # the test's name in its folder says nothing
    for s in says:
        assert s in line, line
    return lines[-1]


def tree(path: Path) -> dict:
    """Every entry under ``path`` (and itself): its kind and bytes, to compare before and after."""
    out = {}
    for p in [path, *sorted(path.rglob("*"))]:
        key = str(p.relative_to(path))
        if p.is_symlink():
            out[key] = ("link", os.readlink(p))
        elif p.is_dir():
            out[key] = ("dir",)
        else:
            out[key] = ("file", p.read_bytes())
    return out


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A resumable synthetic run (stopped in iteration 2); tests copy it."""
    return build_run(tmp_path_factory.mktemp("stopped") / "run", status="stopped", stop_after=(2, "sample"))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---- run.lock ----------------------------------------------------------------------------------------
def test_run_lock_as_a_symlink_is_refused_and_its_target_kept(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("precious\n")
    (run / runlock.LOCK_NAME).symlink_to(outside / "victim.txt")
    before = tree(outside)
    rc, _, err = star("run", "--resume", run)
    one_line(rc, err, "run.lock", "link")
    assert tree(outside) == before
    with pytest.raises(runfolder.RunFolderError, match="run.lock"):
        runlock.acquire(run)
    assert (outside / "victim.txt").read_text() == "precious\n"


def test_run_lock_never_truncates_and_refuses_a_hard_link(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runlock.LOCK_NAME).write_text(json.dumps({"pid": 1, "note": "x" * 500}))
    with runlock.acquire(run):
        assert runlock.holder(run)["pid"] == os.getpid()
        assert (run / runlock.LOCK_NAME).stat().st_size >= 500  # overwritten in place, never cut
    other = tmp_path / "run2"
    other.mkdir()
    (tmp_path / "shared.txt").write_text("shared\n")
    os.link(tmp_path / "shared.txt", other / runlock.LOCK_NAME)
    with pytest.raises(runfolder.RunFolderError, match="run.lock"):
        runlock.acquire(other)
    assert (tmp_path / "shared.txt").read_text() == "shared\n"


def test_run_lock_as_a_folder_is_one_line(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    (run / runlock.LOCK_NAME).mkdir()
    rc, _, err = star("run", "--resume", run)
    one_line(rc, err, "run.lock", "folder")


# ---- links out of the run folder -------------------------------------------------------------------------
def test_a_store_that_links_out_is_neither_written_nor_shown(stopped, tmp_path):
    outside = _copy(stopped, tmp_path / "outside")  # a real store elsewhere
    run = tmp_path / "runs" / "run"
    run.mkdir(parents=True)
    (run / DB_NAME).symlink_to(outside / DB_NAME)
    shutil.copy(outside / CONFIG_NAME, run / CONFIG_NAME)
    before = tree(outside)
    for args in (["run", "--resume", run], ["summary", run], ["export", run], ["run", "--out", run]):
        rc, _, err = star(*args)
        one_line(rc, err, "store.sqlite", "links out of the run folder")
    assert tree(outside) == before
    # the dashboard's reads: the runs list says why, and no page opens the outside store
    (row,) = queries.list_runs([tmp_path / "runs"])
    assert row["status"] == "corrupt" and "refused: store.sqlite links out of the run folder" in row["problem"]
    with pytest.raises(queries.RunUnavailable, match="refused"):
        queries.run_info(run)


def test_a_config_that_links_out_is_refused(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    outside = tmp_path / "elsewhere.yaml"
    (run / CONFIG_NAME).rename(outside)
    (run / CONFIG_NAME).symlink_to(outside)
    rc, _, err = star("run", "--resume", run)
    one_line(rc, err, "config.yaml", "links out of the run folder")
    assert queries.run_info(run)["config_yaml"] is None  # the dashboard does not show the outside file


def test_adapters_that_link_out_are_refused_and_nothing_outside_is_deleted(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    outside = tmp_path / "outside"
    (outside / "iter_1.tmp").mkdir(parents=True)
    (outside / "iter_1.tmp" / "weights.bin").write_bytes(b"w" * 10)
    (outside / "notes.tmp").write_text("keep me\n")
    (run / "adapters").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    rc, _, err = star("run", "--resume", run)
    one_line(rc, err, "adapters", "links out of the run folder")
    assert tree(outside) == before


def test_export_never_writes_through_a_link_out(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "export").symlink_to(outside, target_is_directory=True)
    for args in (["export", run], ["export", run, "--annotations"]):
        rc, _, err = star(*args)
        one_line(rc, err, "export", "links out of the run folder")
    assert list(outside.iterdir()) == []


def test_a_temporary_adapter_that_links_out_loses_only_its_link(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"w" * 10)
    (run / "adapters").mkdir()
    (run / "adapters" / "iter_2.tmp").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    from star_core import loop

    gone = loop.clean_tmp_adapters(run)
    assert gone == [run / "adapters" / "iter_2.tmp"]
    assert not os.path.lexists(run / "adapters" / "iter_2.tmp")
    assert tree(outside) == before


def test_safe_path_allows_the_folder_and_links_inside_it(tmp_path):
    run = tmp_path / "run"
    (run / "adapters" / "iter_1").mkdir(parents=True)
    (run / "adapters" / "latest").symlink_to("iter_1")
    assert runfolder.safe_path(run, "adapters/latest") == run / "adapters" / "latest"
    assert runfolder.safe_path(run, DB_NAME) == run / DB_NAME  # not there yet: fine
    (run / CONFIG_NAME).symlink_to(tmp_path / "missing.yaml")  # a dangling link out is refused too
    with pytest.raises(runfolder.RunFolderError, match="config.yaml links out of the run folder"):
        runfolder.safe_path(run, CONFIG_NAME)


# ---- YAML and JSON that would blow up --------------------------------------------------------------------
# "billion laughs": 9 levels of 9 aliases each, 9**9 values once expanded, all inside one field's value
BOMB = (
    "seed: ["
    + ", ".join(
        f"&{n} [{', '.join(['*' + p] * 9 if p else ['lol'] * 9)}]" for p, n in zip([""] + list("abcdefgh"), "abcdefghi")
    )
    + "]\n"
)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(BOMB)
    assert len(cfg.read_bytes()) < 600
    t0 = time.time()
    rc, _, err = star("run", "--config", cfg, "--out", tmp_path / "run")
    line = one_line(rc, err, cfg.name, "aliases (*name) expand to more than")
    assert time.time() - t0 < 30 and "lol" not in line
    assert not (tmp_path / "run").exists()


def test_a_resumed_config_yaml_with_an_alias_bomb_is_refused(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    (run / CONFIG_NAME).write_text(BOMB)
    before = (run / DB_NAME).read_bytes()
    rc, _, err = star("run", "--resume", run)
    one_line(rc, err, "config.yaml", "aliases (*name) expand to more than")
    assert (run / DB_NAME).read_bytes() == before


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_200k_deep_document_is_one_line(tmp_path, suffix):
    cfg = tmp_path / f"deep{suffix}"
    cfg.write_text('{"seed": ' + "[" * 200_000 + "]" * 200_000 + "}")
    rc, _, err = star("run", "--config", cfg, "--out", tmp_path / "run")
    one_line(rc, err, cfg.name, "nested")
    assert not (tmp_path / "run").exists()


def test_a_null_key_names_the_file_and_line(tmp_path):
    cfg = tmp_path / "null.yaml"
    cfg.write_text("seed: 1\nnull: 3\n")
    rc, _, err = star("run", "--config", cfg, "--out", tmp_path / "run")
    one_line(rc, err, cfg.name, "line 2")


def test_a_5000_digit_set_is_one_short_line(tmp_path):
    rc, _, err = star("run", "--set", "seed=" + "7" * 5000, "--out", tmp_path / "run")
    line = one_line(rc, err, "seed")
    assert "7" * 100 not in line
    rc, _, err = star("run", "--set", "name=" + "\x1b[2J" * 3000 + "x", "--set", "seed=-1", "--out", tmp_path / "run")
    one_line(rc, err, "seed")
    assert not (tmp_path / "run").exists()


def test_a_huge_value_in_a_file_is_shown_as_a_short_escaped_excerpt(tmp_path):
    cfg = tmp_path / "long.yaml"
    cfg.write_text("iterations: " + json.dumps("\x1b[31m" + "9" * 50_000) + "\n")
    rc, _, err = star("run", "--config", cfg, "--out", tmp_path / "run")
    line = one_line(rc, err, "iterations")
    assert "\x1b" not in err and "\\x1b" in line


# ---- other one-line errors ---------------------------------------------------------------------------------
def test_report_to_a_folder_is_one_line(stopped, tmp_path):
    run = _copy(stopped, tmp_path / "run")
    (tmp_path / "out").mkdir()
    rc, _, err = star("report", run, "-o", tmp_path / "out")
    one_line(rc, err, "is a folder")
    assert list((tmp_path / "out").iterdir()) == []


def test_ansi_codes_in_a_run_name_never_reach_the_terminal(tmp_path):
    evil = "evil\x1b[2J\x1b]0;owned\x07\x9b31m name"
    run = build_run(tmp_path / "root" / "run", name=evil, status="crashed")
    for args in (["summary", run], ["runs", tmp_path / "root"]):
        rc, out, err = star(*args)
        assert rc == 0, err
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    rc, out, _ = star("summary", run)
    assert "evil\\x1b[2J" in out


def test_resume_without_adapters_is_one_line(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    run = build_run(tmp_path / "run", status="stopped", stop_after=(2, "sample"), model=str(tiny_model_dir))
    assert not (run / "adapters").exists()
    rc, _, err = star("run", "--quiet", "--resume", run, timeout=240)
    one_line(rc, err, "adapters/iter_1", "missing")


# ---- the store's first transaction ------------------------------------------------------------------------
class _Crash(Exception):
    pass


class _CrashingConnection:
    """A connection that fails (like a full disk) at its ``n``-th execute / executescript."""

    def __init__(self, con: sqlite3.Connection, n: int):
        self._con, self._n = con, n

    def _tick(self):
        self._n -= 1
        if self._n < 0:
            raise _Crash()

    def execute(self, *a):
        self._tick()
        return self._con.execute(*a)

    def executescript(self, *a):
        self._tick()
        return self._con.executescript(*a)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_a_crash_while_the_store_is_created_leaves_a_folder_out_takes_again(tmp_path, monkeypatch):
    real_connect = store_mod.connect
    for n in range(0, 200):
        run = tmp_path / f"run{n}"
        cons = []

        def crashing(p, readonly=False, n=n, cons=cons):
            con = real_connect(p, readonly)
            cons.append(con)
            return con if readonly else _CrashingConnection(con, n)

        monkeypatch.setattr(store_mod, "connect", crashing)
        try:
            store_mod.RunStore(run).close()
            finished = True
        except _Crash:
            finished = False
        for c in cons:
            c.close()  # the process is gone: an open transaction is rolled back
        monkeypatch.setattr(store_mod, "connect", real_connect)
        db = run / DB_NAME
        assert runfolder.unstarted(run), f"crash at statement {n}: a folder --out refuses"
        if db.exists() and db.stat().st_size:
            con = sqlite3.connect(db)
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if tables else None
            con.close()
            assert not tables or version == ("2",), f"crash at statement {n}: tables {sorted(tables)} without a version"
        st = store_mod.RunStore(run)  # --out (or --resume) opens it again
        assert store_mod.schema_version(st.con) == store_mod.SCHEMA_VERSION
        st.close()
        if finished:
            break
    assert finished and n > 0


def test_out_takes_a_folder_whose_store_holds_no_run(tiny_model_dir, tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    store_mod.RunStore(run).close()  # a run that died before its run record
    (run / CONFIG_NAME).write_text("task: arithmetic\n")
    rc, _, err = star("run", "--resume", run)
    one_line(rc, err, "never started", "--out")
    sets = ["n_train=2", "n_eval=2", "max_new_tokens=4", "iterations=0", "threads=1", "batch_size=2"]
    args = ["run", "--quiet", "--model", tiny_model_dir, "--out", run]
    rc, out, err = star(*args, *[x for s in sets for x in ("--set", s)], timeout=240)
    assert rc == 0, err[-3000:]
    assert queries.run_status(run) == "finished"
