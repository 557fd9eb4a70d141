"""The tree's import graph: no circle, and no import from a lower layer to a higher one.

The graph is read from the source with :mod:`ast` (every ``import`` and ``from ... import``, at module level
or inside a function, ``TYPE_CHECKING`` blocks included), so a lazy import cannot hide an arrow. The layers
are the README's layout section, bottom first; a module may import its own layer or any layer below.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Bottom first, as the README's "Layout" section lists them. A module belongs to the first layer with a
#: prefix that matches its dotted name (a package's prefix covers its modules; ``=name`` matches that module
#: alone: ``=star_core`` is the package's face, ``__init__.py``).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations: import nothing of star's",
        (
            "=star_core",
            "star_core.errors",
            "star_core.stats",
            "star_core.config_ranges",
            "star_core.configfile",
            "star_core.liveness",
            "star_core.evaluation",
            "star_core.training",
            "star_core.rayprobe",
            "star_core.prefix_attention",
            "star_core.slot_cache",
            "star_core.cpu_linear",
        ),
    ),
    ("tasks: one module per task, the registry", ("star_core.tasks",)),
    ("the run folder and its store", ("star_core.runfolder", "star_core.runlock", "star_core.store")),
    ("settings", ("star_core.curriculum", "star_core.config")),
    (
        "engine parts",
        ("star_core.models", "star_core.sampling", "star_core.filtering", "star_core.warmstart", "star_core.rundata"),
    ),
    ("the read side", ("star_core.queries", "star_core.annotations", "star_core.procs", "star_core.report")),
    ("sampling backends", ("star_core.backends",)),
    ("the STaR loop", ("star_core.loop",)),
    ("the command line", ("star_core.cli", "star_core.cli_errors", "star_core.__main__")),
    ("the dashboard's helpers", ("star_dashboard",)),
    ("the dashboard's pages", ("app_pages", "app")),
    ("fixture builders, for the tests and the benchmarks", ("star_fixtures",)),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [ROOT / "app.py", *(ROOT / "app_pages").glob("*.py")]
    for pkg in ("star_core", "star_dashboard", "star_fixtures"):
        files += (ROOT / pkg).rglob("*.py")
    return {_module_name(p): p for p in files}


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name imported from a package that is itself a module,
    ``from star_core import loop``, counts as an import of that module)."""
    mods = _sources()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def layer_of(mod: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(mod == p.lstrip("=") or not p.startswith("=") and mod.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{mod} is in no layer: add it to LAYERS and to the README's layout section")


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer to a higher one, as ``a (layer) -> b (layer)``."""
    out = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if layer_of(b) > layer_of(a):
                out.append(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})")
    return out


def test_every_module_has_a_layer():
    for mod in import_graph():
        layer_of(mod)


def test_the_graph_holds_the_tree():
    """A graph that lost its files would pass every check below."""
    graph = import_graph()
    assert {"star_core.loop", "star_core.store.writer", "star_dashboard.data", "app_pages.tour"} <= set(graph)
    assert {"star_core.backends", "star_core.store", "star_core.queries"} <= graph["star_core.loop"]


def test_the_run_folder_sits_below_the_store():
    """runfolder owns the file names and imports only errors; the store imports runfolder."""
    graph = import_graph()
    assert graph["star_core.runfolder"] == {"star_core.errors"}
    assert graph["star_core.errors"] == set()
    assert "star_core.runfolder" in graph["star_core.store.writer"]


def test_no_circle():
    assert circles(import_graph()) == []


def test_no_import_runs_up():
    assert upward(import_graph()) == []


def test_the_checks_can_fail():
    """A circle and an upward import, made up, are found."""
    made = {"star_core.loop": {"star_core.stats"}, "star_core.stats": {"star_core.cli"}, "star_core.cli": set()}
    assert upward(made) == [
        "star_core.stats (foundations: import nothing of star's) -> star_core.cli (the command line)"
    ]
    made["star_core.cli"] = {"star_core.loop"}
    assert circles(made) == [["star_core.cli", "star_core.loop", "star_core.stats"]]


def test_the_readme_lists_the_layers():
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for name, _ in LAYERS:
        assert name in text, name


#: Source files over ``MAX_FILE_LINES`` or functions over ``MAX_FUNCTION_LINES`` that the README's layout
#: section explains (none today).
MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 80
LONG_ALLOWED: set[str] = set()


def _all_sources() -> list[Path]:
    files = [ROOT / "app.py"]
    for folder in ("star_core", "star_dashboard", "app_pages", "star_fixtures", "bench"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def too_long(files: list[Path], root: Path = ROOT) -> list[str]:
    """``path (N lines)`` for each file over the limit, ``path:function (N lines)`` for each function."""
    out = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        text = f.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES and rel not in LONG_ALLOWED:
            out.append(f"{rel} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text, rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in LONG_ALLOWED:
                    out.append(f"{rel}:{node.name} ({n} lines)")
    return out


def test_files_and_functions_stay_short():
    assert too_long(_all_sources()) == []


def test_the_length_check_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    f = tmp_path / "long.py"
    f.write_text(f"def long():\n{body}\n", encoding="utf-8")
    assert too_long([f], tmp_path) == [f"long.py:long ({MAX_FUNCTION_LINES + 1} lines)"]
