"""Every store problem gives one clear line and exit 2 from summary, export, runs, run --resume and eval,
never a traceback; corrupt or foreign stores are never written to; a full disk is one line; leftover
adapters/*.tmp are removed on resume; an empty data file is named. Synthetic stores, no model."""

import errno
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from helpers.dash_fixtures import build_run
from star_core import loop
from star_core.cli import main
from star_core.store import DB_NAME, RunStore, StoreError, check


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("good") / "run")


def _copy(good: Path, dst: Path, data: bytes | None = None) -> Path:
    shutil.copytree(good, dst)
    if data is not None:
        (dst / DB_NAME).write_bytes(data)
    return dst


def _index_page_damaged(good: Path, dst: Path) -> Path:
    """Damage the one page of an index that summary never reads: only quick_check finds it."""
    _copy(good, dst)
    con = sqlite3.connect(dst / DB_NAME)
    ps = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='samples_question'").fetchone()[0]
    con.close()
    b = bytearray((dst / DB_NAME).read_bytes())
    b[(root - 1) * ps : (root - 1) * ps + 8] = b"\xff" * 8
    (dst / DB_NAME).write_bytes(bytes(b))
    return dst


def _foreign(good: Path, dst: Path) -> Path:
    shutil.copytree(good, dst)
    (dst / DB_NAME).unlink()
    con = sqlite3.connect(dst / DB_NAME)
    con.execute("CREATE TABLE notes(x TEXT)")
    con.execute("INSERT INTO notes VALUES ('mine')")
    con.commit()
    con.close()
    return dst


CASES = {
    "zero-byte": (lambda g, d: _copy(g, d, b""), "the run store is empty (0 bytes"),
    "garbage": (lambda g, d: _copy(g, d, b"\x00garbage, not sqlite\xff" * 64), "not an SQLite database"),
    "truncated": (lambda g, d: _copy(g, d, (g / DB_NAME).read_bytes()[:40_000]), "the run store is damaged"),
    "mid-file": (_index_page_damaged, "the run store is damaged (quick_check:"),
    "foreign": (_foreign, "not a star run store (its tables: notes)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("argv", [["summary"], ["summary", "--json"], ["export"], ["run", "--resume"]])
def test_bad_store_gives_one_line_rc2(case, argv, good, tmp_path, capsys):
    make, needle = CASES[case]
    run = make(good, tmp_path / "run")
    before = (run / DB_NAME).read_bytes()
    code = main([argv[0], str(run), *argv[1:]] if argv[0] != "run" else [*argv, str(run), "--quiet"])
    cap = capsys.readouterr()
    assert code == 2, (code, cap)
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("star: error: ") and needle in lines[0], cap.err
    assert str(run / DB_NAME) in lines[0] and "Traceback" not in cap.err
    assert (run / DB_NAME).read_bytes() == before  # never written
    assert not (run / "export").exists()


def test_foreign_sqlite_never_gets_star_tables(good, tmp_path):
    run = _foreign(good, tmp_path / "run")
    with pytest.raises(StoreError, match="not a star run store"):
        RunStore(run)
    assert main(["run", "--resume", str(run), "--quiet"]) == 2
    con = sqlite3.connect(run / DB_NAME)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["notes"]
    con.close()


def test_quick_check_finds_what_summary_misses(good, tmp_path, capsys):
    from star_core.queries import summary

    run = _index_page_damaged(good, tmp_path / "run")
    summary(run)  # the plain reads do not touch the damaged page ...
    with pytest.raises(StoreError, match="quick_check"):  # ... quick_check does
        check(run / DB_NAME, deep=True)
    check(good / DB_NAME, deep=True)  # a sound store passes


def test_runs_lists_bad_stores_with_the_reason(good, tmp_path, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    _copy(good, root / "ok")
    for case, (make, _needle) in CASES.items():
        make(good, root / case)
    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "not a star run store" in out and "0 bytes" in out and "not an SQLite database" in out
    assert main(["runs", str(root), "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ok"]["status"] == "finished" and rows["ok"]["problem"] is None
    assert rows["garbage"]["status"] == "corrupt" and "not an SQLite database" in rows["garbage"]["problem"]
    assert "not a star run store" in rows["foreign"]["problem"]


def test_eval_or_run_into_a_bad_store_folder(good, tmp_path, capsys):
    run = _foreign(good, tmp_path / "run")
    assert main(["eval", "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a star run store" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--out", str(_copy(good, tmp_path / "z", b"")), "--quiet"]) == 2
    assert "0 bytes" in capsys.readouterr().err


@pytest.mark.parametrize(
    "exc",
    [
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device", "runs/x/adapters/iter_1.tmp/adapter_model.safetensors"),
    ],
)
def test_full_disk_is_one_line(exc, good, tmp_path, capsys, monkeypatch):
    run = _copy(good, tmp_path / "run")

    def full(*args, **kwargs):
        try:
            raise exc
        except OSError as e:  # the crash handler's own write fails too: still one line
            raise sqlite3.OperationalError("database or disk is full") from e

    monkeypatch.setattr(loop, "resume", full)
    assert main(["run", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("star: error: disk full") and "Traceback" not in err
    assert f"star run --resume {run}" in lines[0]


def test_real_sqlite_full_store_is_recognised(tmp_path):
    from star_core.cli import _disk_full

    st = RunStore(tmp_path / "run")
    st.con.execute("PRAGMA max_page_count=1")  # a store that cannot grow: SQLite's own full-disk error
    with pytest.raises(sqlite3.OperationalError) as ei:
        st.create_run("x", "arithmetic", "m", {"pad": "x" * 100_000}, 1, "cpu")
    assert _disk_full(ei.value)
    assert _disk_full(ValueError("other")) is None


def test_resume_removes_leftover_tmp_adapters(good, tmp_path, monkeypatch):
    run = build_run(tmp_path / "run", status="crashed", iterations=1)
    tmp = run / "adapters" / "iter_1.tmp"
    tmp.mkdir(parents=True)
    (tmp / "adapter_model.safetensors").write_bytes(b"half")
    (run / "adapters" / "iter_0").mkdir()
    seen = {}
    monkeypatch.setattr(loop, "load_data", lambda cfg: None)
    monkeypatch.setattr(loop, "_execute", lambda cfg, run_dir, store, data, progress: seen.update(ran=True))
    loop.resume(run, progress=False)
    assert seen == {"ran": True} and not tmp.exists() and (run / "adapters" / "iter_0").is_dir()


@pytest.mark.parametrize("flag", ["--train-file", "--eval-file"])
def test_empty_data_file_is_named(flag, tmp_path, capsys):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n  \n")
    code = main(["run", "--task", "commonsenseqa", flag, str(f), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and str(f) in err and "empty" in err, err
    assert not (tmp_path / "r").exists()


def test_no_training_questions_names_the_file(tmp_path):
    from star_core import config as config_mod

    f = tmp_path / "one.jsonl"
    good_row = {
        "id": "a",
        "answerKey": "A",
        "rationale": "r.",
        "question": {"stem": "s", "choices": [{"label": L, "text": L.lower()} for L in "ABCDE"]},
    }
    f.write_text(json.dumps(good_row) + "\n")
    cfg = config_mod.build(
        None, {"task": "commonsenseqa", "train_file": str(f), "exemplars_file": str(f), "n_exemplars": 1}, []
    )
    with pytest.raises(loop.RunError, match=f"no training questions in {f}"):
        loop.load_data(cfg)
