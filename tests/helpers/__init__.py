"""What the tests share: doubles, store builders and readers, and the scripts some tests run.

- ``dash_fixtures``: synthetic run stores (``star_fixtures``, re-exported).
- ``store_sql``: plain SQL on a run's store.sqlite, as tuples or as dicts.
- ``demo_checks``: the consistency checks of a recorded run store (the demo runs, and runs the tests make).
- ``tiny_runs``: the settings of a tiny-model run of the STaR loop.
- ``fake_sampler``: doubles of ``star_core.sampling.generate`` whose outputs the tests know.
- ``decoding``: prompts and comparisons of the decoder tests; ``reference_decoder``: the previous decoder.
- ``apptest``: the dashboard in Streamlit's AppTest (opening a page, reading its elements, the pages' runs).
- ``tour_stores``: the hand-built stores the teaching tour's tests tell stories about.
- ``browser``: a started dashboard (``streamlit run``) and Debian's Chromium through Playwright.
- ``task_data``: the real datasets' folder and a JSON Lines writer, for the task tests.
- ``toy_task``: a whole task in one module, registered by one line in the plug-in test.
- ``scripts/``, run by path (a folder of their own, so that no helper module shadows a library in them):
  ``fake_star_cli.py`` (a stand-in for `star run`), ``ray_child.py`` (one Ray run).
"""

from __future__ import annotations

import os
from pathlib import Path

HELPERS = Path(__file__).resolve().parent
#: The repository root.
ROOT = HELPERS.parents[1]
#: A stand-in for `star run` (no model, no torch): ``STAR_CLI="python FAKE_STAR_CLI"``.
FAKE_STAR_CLI = HELPERS / "scripts" / "fake_star_cli.py"
#: One sampler=ray run in a process of its own (test_ray_sampler).
RAY_CHILD = HELPERS / "scripts" / "ray_child.py"


def child_env() -> dict[str, str]:
    """The environment of a `star` child process: this one's, with the repository importable, offline, 1 thread."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
