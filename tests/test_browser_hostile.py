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
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from helpers import ROOT
from helpers import browser as B
from helpers import dash_fixtures as F

EVIL = "rebind.example"
LINKS = (
    "[Session expired](http://links.example/a) ![t](http://links.example/track.png) http://links.example/bare "
    "www.links.example/w mail@links.example"
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("origin_runs")
    F.build_run(root / "alpha", tasks=("arithmetic",), iterations=1, n_train=6, n_eval=4)
    F.build_run(root / "planted", tasks=("arithmetic",), iterations=1, n_train=4, n_eval=3)
    with sqlite3.connect(root / "planted" / "store.sqlite") as con:
        con.execute("UPDATE runs SET status=?, name=?, model=?", (LINKS, LINKS, LINKS))
    return root


def _serve(cwd: Path, root: Path, log_dir: Path, *extra: str):
    """`streamlit run app.py` on loopback from ``cwd`` (app.py's .streamlit/config.toml applies, then ``extra``),
    with neither launch setting; yields its port."""
    with B.serve(root, log_dir, *extra, cwd=cwd, STAR_DASHBOARD_LAUNCH=None, STAR_DASHBOARD_TOKEN=None) as base:
        yield urlsplit(base).port


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    """Started from the repository root, as the README says: .streamlit/config.toml applies."""
    yield from _serve(ROOT, runs, tmp_path_factory.mktemp("log"))


@pytest.fixture(scope="module")
def permissive(runs, tmp_path_factory):
    """Streamlit told to accept any Host (as one without ``server.allowedHosts`` does): the app must refuse."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    yield from _serve(cwd, runs, cwd, "--server.allowedHosts", "*")


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
    sync_api = B.playwright()
    with sync_api.sync_playwright() as p:
        b = B.chromium(p, "--no-first-run", f"--host-resolver-rules=MAP {EVIL} 127.0.0.1")
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
