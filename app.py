"""STaR workbench dashboard: `streamlit run app.py`.

Runs are read from $STAR_RUNS_ROOT (default ./runs) and the bundled demo runs in
sample_data/runs. The page modules live in app_pages/, not pages/: a folder named
pages/ next to the entry script switches Streamlit to its legacy multipage mode,
which runs a deep-linked page without this script on a fresh session. Each page is a short module in
app_pages/; it reads a run store only through star_dashboard/data.py (on star_core/queries/, the SQL), and
the Streamlit helpers live in star_dashboard/ui.py.
To add a page, add a file in app_pages/ and one st.Page line to PAGES below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# ---- a plain checkout runs without `pip install -e .`; OMP_NUM_THREADS is 1 unless already set
APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:  # works from a checkout without `pip install -e .`
    sys.path.insert(0, str(APP_DIR))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import streamlit as st  # noqa: E402

from star_dashboard import control, links, ui  # noqa: E402

# ---- the page's settings, and nothing at all for a request on a foreign host or origin (DNS rebinding), before
# any run is read or any control shown
ui.init(__file__)
st.set_page_config(page_title="STaR workbench", page_icon=":material/star:", layout="wide")
control.refuse_foreign_request()  # a page on another name or origin (DNS rebinding) gets nothing: no data, no control

# ---- the pages in three groups, in the order a reader needs them: the runs (and launching one), reading the
# samples (inspect), and what the runs achieved (results)
P = APP_DIR / "app_pages"
PAGES = {
    "Runs": [
        st.Page(P / "runs.py", title="Runs", icon=":material/table_rows:", url_path="runs", default=True),
        st.Page(P / "launch.py", title="Launch", icon=":material/rocket_launch:", url_path="launch"),
    ],
    "Inspect": [
        st.Page(P / "rationales.py", title="Rationales", icon=":material/psychology:", url_path="rationales"),
        st.Page(
            P / "rationalizations.py",
            title="Rationalizations",
            icon=":material/lightbulb:",
            url_path="rationalizations",
        ),
        st.Page(P / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page(P / "decisions.py", title="Filter decisions", icon=":material/filter_alt:", url_path="decisions"),
    ],
    "Results": [
        st.Page(P / "accuracy.py", title="Accuracy", icon=":material/monitoring:", url_path="accuracy"),
        st.Page(P / "tour.py", title="Teaching tour", icon=":material/school:", url_path="tour"),
    ],
}

# ---- what every page shares: the token from the URL, the run picker and one Back press; then the page
page = st.navigation(PAGES)
control.capture_token()  # ?token=... (process control when STAR_DASHBOARD_TOKEN is set), before pages rewrite the URL
ui.sidebar_run_picker()
with st.sidebar:
    links.history_guard()  # Back in one press (see star_dashboard/links.py)
page.run()
