"""The code's shape: the query package re-exports every name, the engine's status path needs no pandas."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sample_data" / "runs" / "arithmetic-paper-rule"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_resume_reads_the_status_without_pandas(tmp_path):
    """`star run --resume` on a finished run: the store check and the status read happen, the run is refused,
    and pandas was never imported."""
    run = tmp_path / "done"
    run.mkdir()
    for name in ("store.sqlite", "config.yaml"):
        shutil.copy(DEMO / name, run / name)
    r = _python(
        "import sys\nfrom star_core.cli import main\n"
        f"code = main(['run', '--resume', {str(run)!r}])\n"
        "print('exit', code, 'pandas' in sys.modules, 'star_core.queries' in sys.modules)"
    )
    assert "has already finished" in r.stderr, r.stderr
    assert r.stdout.split() == ["exit", "2", "False", "True"], (r.stdout, r.stderr)


def _defined(path: Path) -> list[str]:
    """The public names a module defines at top level (functions, classes, assignments)."""
    out = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in out if not n.startswith("_")]


def test_queries_package_reexports_every_name():
    """Each public name of every queries module (and each of ``__all__``) is reachable as ``queries.<name>``;
    the pandas modules load only when one of their names is used."""
    names = sorted({n for f in (REPO / "star_core" / "queries").glob("[!_]*.py") for n in _defined(f)})
    assert {"summary", "browse", "list_runs", "open_store", "hint_spans"} <= set(names)
    r = _python(
        "import sys\nimport star_core.queries as Q\n"
        "assert 'pandas' not in sys.modules, 'pandas imported by the package itself'\n"
        f"names = {names!r} + list(Q.__all__)\n"
        "print('missing', [n for n in names if not hasattr(Q, n)])"
    )
    assert r.returncode == 0 and r.stdout.strip() == "missing []", (r.stdout, r.stderr)
    # a module's own __all__ is part of the package's (dir() and star-imports list it)
    import importlib

    from star_core import queries as Q

    listed = {n for m in Q._LAZY for n in getattr(importlib.import_module(f"star_core.queries.{m}"), "__all__", ())}
    assert sorted(listed - set(Q.__all__)) == []


def _imports(path: Path) -> set[str]:
    """The top-level package of every module ``path`` imports (relative imports excluded)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_the_engine_never_imports_streamlit():
    """No module of star_core imports Streamlit, at the top or inside a function (the dashboard's helpers live in
    star_dashboard); and importing the engine's dashboard-facing modules does not load it."""
    files = sorted((REPO / "star_core").rglob("*.py"))
    assert len(files) > 20
    assert [str(f.relative_to(REPO)) for f in files if "streamlit" in _imports(f)] == []
    r = _python(
        "import sys\nimport star_core.cli, star_core.queries, star_core.procs, star_core.store\n"
        "import star_core.queries.reads, star_core.queries.measures\n"
        "print('streamlit' in sys.modules)"
    )
    assert r.stdout.strip() == "False", (r.stdout, r.stderr)


def test_the_dashboard_package_holds_the_streamlit_helpers():
    assert _imports(REPO / "star_dashboard" / "ui.py") >= {"streamlit", "star_core"}
    assert not (REPO / "star_core" / "ui.py").exists() and not (REPO / "star_core" / "tour.py").exists()


def test_the_engine_never_imports_the_fixture_builders():
    """The fixture builders (synthetic stores, the tiny model) live outside the engine: star_core never imports
    star_fixtures, and holds no synthetic.py or tiny.py of its own."""
    files = sorted((REPO / "star_core").rglob("*.py"))
    assert [str(f.relative_to(REPO)) for f in files if "star_fixtures" in _imports(f)] == []
    assert not (REPO / "star_core" / "synthetic.py").exists() and not (REPO / "star_core" / "tiny.py").exists()


def test_benchmarks_do_not_import_the_tests():
    """bench/ scripts use the fixture package (star_fixtures.synthetic, star_fixtures.tiny), never a module of
    tests/."""
    test_modules = {p.stem for p in (REPO / "tests").glob("*.py")} | {"helpers"}  # tests/helpers/ is a package
    benches = sorted((REPO / "bench").glob("*.py"))
    assert benches
    for f in benches:
        assert not _imports(f) & test_modules, f
        assert '"tests"' not in f.read_text() and "'tests'" not in f.read_text(), f
