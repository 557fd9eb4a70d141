"""The browser tests' dashboard and browser: `streamlit run app.py` on a free loopback port (``serve``) and Debian's
Chromium driven through Playwright (``chromium``), never `playwright install`. ``playwright()`` skips the calling
module (or fixture) where /usr/bin/chromium or the playwright package is missing.

``server`` and ``page`` are pytest fixtures (a dashboard over one synthetic run, and a page in Chromium that
records every dialog), which a test module uses by assigning them to names of its own. Screenshots go to
``ARTIFACTS`` (test-artifacts/, gitignored)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOT
from helpers import dash_fixtures as F

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


def playwright():
    """Playwright's sync API; skips without /usr/bin/chromium or the playwright package."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def chromium(p, *args: str):
    """Debian's Chromium, headless, launched by the sync Playwright ``p`` with ``args`` after the usual two."""
    args = ("--no-sandbox", "--disable-gpu", *args)
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(args))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, base: str, log: Path) -> None:
    t0 = time.time()
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() - t0 > 90:
            raise RuntimeError(f"streamlit did not start (rc={proc.poll()}); see {log}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serve(runs_root: Path, log_dir: Path, *args: str, cwd: Path = ROOT, **env_extra: str | None) -> Iterator[str]:
    """`streamlit run app.py` on a free loopback port over ``runs_root``, started in ``cwd`` (from the repository
    root, its .streamlit/config.toml applies) with the command-line options ``args`` last; yields its base URL.
    ``env_extra`` sets (or, with None, removes) environment variables of the server. Its log is
    ``log_dir``/streamlit.log."""
    port = free_port()
    env = dict(os.environ, STAR_RUNS_ROOT=str(runs_root), STAR_DEMO_RUNS="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update({k: v for k, v in env_extra.items() if v is not None})
    for k in [k for k, v in env_extra.items() if v is None]:
        env.pop(k, None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    cmd += ["--browser.gatherUsageStats", "false", *args]
    log_path = log_dir / "streamlit.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(proc, base, log_path)
            yield base
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over one synthetic run, alpha (two tasks, two iterations): (base URL, alpha's folder)."""
    root = tmp_path_factory.mktemp("browser_runs")
    F.build_run(root / "alpha", tasks=("arithmetic", "commonsenseqa"), iterations=2, n_train=10, n_eval=5)
    with serve(root, tmp_path_factory.mktemp("log")) as base:
        yield base, root / "alpha"


@pytest.fixture(scope="module")
def page(server):
    """A 1500 x 1600 page in Chromium; ``page.dialogs`` lists the message of every dialog (each dismissed)."""
    sync_api = playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = chromium(
            p, "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"
        )
        try:
            pg = browser.new_page(viewport={"width": 1500, "height": 1600})
            pg.dialogs = []
            pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
            yield pg
        finally:
            browser.close()
