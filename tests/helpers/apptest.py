"""The dashboard in Streamlit's AppTest: opening a page as a link does, reading its elements, and the pages' tests'
runs and environment (``root``, ``env`` and the autouse ``loopback``: pytest fixtures, which a test module uses by
assigning them to names of its own). Skips the importing module where Streamlit's testing API is missing."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from helpers import ROOT
from helpers import dash_fixtures as F
from star_core import queries as Q

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest

APP = ROOT / "app.py"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("dash_runs")
    F.build_run(r / "alpha", tasks=("arithmetic", "commonsenseqa", "gsm8k"), iterations=3, n_train=12, n_eval=6)
    F.build_run(r / "beta", tasks=("arithmetic",), iterations=2, rationalize=False, status="crashed", seed=3)
    F.write_corrupt(r / "broken")
    F.write_half(r / "half")
    return r


def bind_address(address):
    """Set Streamlit's server.address (AppTest does not read the repository's .streamlit/config.toml);
    returns a function that restores the previous value."""
    from streamlit import config

    old = config.get_option("server.address")
    config.set_option("server.address", address)
    return lambda: config.set_option("server.address", old)


@pytest.fixture(autouse=True)
def loopback(monkeypatch):
    """Every test runs the dashboard as .streamlit/config.toml does: on loopback, no token, no limit set."""
    for var in ("STAR_DASHBOARD_LAUNCH", "STAR_DASHBOARD_TOKEN", "STAR_DASHBOARD_MAX_RUNS"):
        monkeypatch.delenv(var, raising=False)
    restore = bind_address("127.0.0.1")
    yield
    restore()


@pytest.fixture
def env(root, monkeypatch, tmp_path):
    monkeypatch.setenv("STAR_RUNS_ROOT", str(root))
    monkeypatch.setenv(Q.DEMO_RUNS_ENV, "0")  # the bundled demo runs are tested in test_demo_store.py
    monkeypatch.chdir(tmp_path)
    return root


def open_page(page: str | None, **params) -> AppTest:
    """Open the app like a browser following a link: /<page>?run=...&..."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update({k: str(v) for k, v in params.items()})
    if page:  # the url_path of each page is its file name, so this works before the first run
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_tour(**params) -> AppTest:
    """The teaching tour at /tour?...."""
    return open_page("tour", **params)


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def markdowns(at: AppTest) -> list[str]:
    return texts(at, "markdown") + texts(at, "caption")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> dict[str, dict]:
    out = {}
    for c in at.get("plotly_chart"):
        out[c.proto.id.rsplit("-", 1)[-1]] = json.loads(c.proto.spec)
    return out


def arr(v) -> list:
    """Plotly data arrays may come back base64-encoded ({"dtype", "bdata"})."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape(v["shape"]).tolist() if "shape" in v and isinstance(v["shape"], list) else a.tolist()
    return list(v)


def wait(pred, timeout=60.0):
    """Poll ``pred`` every 0.1 s until it holds (True) or ``timeout`` seconds pass (False)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.1)
    return False
