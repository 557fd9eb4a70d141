"""Hostile input against a started dashboard (issue 20).

DNS rebinding (item 1): a page on another name that resolves to 127.0.0.1 sends that name as Host and as
Origin. Streamlit refuses its WebSocket (``server.allowedHosts`` in .streamlit/config.toml), and the dashboard
itself refuses the session where Streamlit lets it through (``--server.allowedHosts "*"``, or a Streamlit older
than that option). Raw WebSocket handshakes, and Debian's Chromium told to resolve the name to 127.0.0.1
(``--host-resolver-rules``).

Markdown (item 7): links, images and bare URLs in a ``?run=`` value or in a run's stored name, status and model
render as text: the page holds no link to, and loads no image from, their server.

The browser tests skip without /usr/bin/chromium or playwright."""

from __future__ import annotations

import base64
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import dash_fixtures as F

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
EVIL = "rebind.example"
LINKS = (
    "[Session expired](http://links.example/a) ![t](http://links.example/track.png) http://links.example/bare "
    "www.links.example/w mail@links.example"
)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cwd: Path, root: Path, log: Path, *extra: str):
    """`streamlit run app.py` on loopback from ``cwd`` (app.py's .streamlit/config.toml applies, then ``extra``)."""
    port = _free_port()
    env = dict(os.environ, STAR_RUNS_ROOT=str(root), STAR_DEMO_RUNS="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for var in ("STAR_DASHBOARD_LAUNCH", "STAR_DASHBOARD_TOKEN"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    cmd += list(extra)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    t0 = time.time()
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.time() - t0 > 90:
            proc.kill()
            raise RuntimeError(f"streamlit did not start (rc={proc.poll()}); see {log}")
        time.sleep(0.3)


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("origin_runs")
    F.build_run(root / "alpha", tasks=("arithmetic",), iterations=1, n_train=6, n_eval=4)
    F.build_run(root / "planted", tasks=("arithmetic",), iterations=1, n_train=4, n_eval=3)
    with sqlite3.connect(root / "planted" / "store.sqlite") as con:
        con.execute("UPDATE runs SET status=?, name=?, model=?", (LINKS, LINKS, LINKS))
    return root


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    """Started from the repository root, as the README says: .streamlit/config.toml applies."""
    proc, port = _serve(ROOT, runs, tmp_path_factory.mktemp("log") / "streamlit.log")
    yield port
    _stop(proc)


@pytest.fixture(scope="module")
def permissive(runs, tmp_path_factory):
    """Streamlit told to accept any Host (as one without ``server.allowedHosts`` does): the app must refuse."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    proc, port = _serve(cwd, runs, cwd / "streamlit.log", "--server.allowedHosts", "*")
    yield port
    _stop(proc)


def _handshake(port: int, host: str, origin: str | None) -> str:
    """The status line the server answers a WebSocket upgrade of /_stcore/stream with these headers."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
    ] + ([f"Origin: {origin}"] if origin else [])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_a_websocket_with_a_foreign_host_and_origin_is_refused(served):
    port = served
    assert " 101 " in _handshake(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") + " "  # the dashboard's own
    assert " 101 " in _handshake(port, f"localhost:{port}", f"http://localhost:{port}") + " "
    refused = _handshake(port, f"{EVIL}:{port}", f"http://{EVIL}:{port}")
    assert " 101" not in refused and refused.startswith("HTTP/1.1 4"), refused
    refused = _handshake(port, f"127.0.0.1:{port}", f"http://{EVIL}:{port}")  # a foreign page, loopback Host
    assert " 101" not in refused, refused


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"],
        )
        try:
            yield b
        finally:
            b.close()


def _launch_page(browser, url: str):
    pg = browser.new_page(viewport={"width": 1400, "height": 1200})
    pg.goto(url, wait_until="domcontentloaded")
    return pg


@pytest.mark.parametrize("which", ["served", "permissive"])
def test_a_rebinding_page_gets_no_runs_and_no_process_control(request, browser, which):
    port = request.getfixturevalue(which)
    own = _launch_page(browser, f"http://127.0.0.1:{port}/launch")
    own.get_by_role("button", name="Start run").wait_for(timeout=60_000)  # the dashboard's own page: control
    own.close()
    pg = _launch_page(browser, f"http://{EVIL}:{port}/launch?run=alpha")
    if which == "permissive":  # the app refuses the session itself
        pg.get_by_text("does not serve the address", exact=False).first.wait_for(timeout=60_000)
    else:
        time.sleep(8)  # Streamlit refuses the WebSocket: the page never gets a script run
    assert pg.get_by_role("button", name="Start run").count() == 0
    assert pg.get_by_text("alpha", exact=False).count() == 0
    pg.close()


@pytest.mark.parametrize(
    "path,shown",
    [
        ("/accuracy?run=" + quote(LINKS), "not a run folder inside"),
        ("/?run=planted", "Session"),
        ("/rationales?run=planted", "Session"),
    ],
)
def test_links_in_the_url_and_the_store_render_as_text(served, browser, path, shown):
    port = served
    pg = _launch_page(browser, f"http://127.0.0.1:{port}{path}")
    pg.get_by_text(shown, exact=False).first.wait_for(timeout=60_000)
    time.sleep(1)
    assert pg.get_by_text("Session expired", exact=False).count() >= 1
    assert pg.locator("a[href*='links.example']").count() == 0
    assert pg.locator("img[src*='links.example']").count() == 0
    pg.close()
