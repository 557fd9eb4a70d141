"""The front door: the landing page opens with a short "start here" on the showcase run (the first run named in
the demo runs' ORDER file, :func:`star_core.queries.showcase`), which is also the default run until the user
picks another (:func:`star_core.queries.default_run_key`, used by the run picker)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from star_core import queries
from star_dashboard import ui

#: What to look at, in order, on the showcase: (page file, label, what it shows).
LOOK_AT = (
    ("app_pages/tour.py", "Teaching tour", "one question followed from a wrong answer to learned reasoning"),
    ("app_pages/accuracy.py", "Accuracy", "each evaluation with its n and 95 % interval; changes with their p"),
    ("app_pages/decisions.py", "Filter decisions", "why samples were not kept, by kind, with their counts"),
    ("app_pages/rationales.py", "Rationales", "every rationale, its answer check and its audit"),
)


def start_here(runs: list[dict[str, Any]]) -> None:
    """A short "start here": the showcase, a button to its tour, and what to look at."""
    row = queries.showcase(runs, ui.APP_DIR)
    if row is None:
        return
    with st.container(border=True):
        st.markdown(
            f"#### :material/flag: Start here\nThe showcase run is **{ui.md_escape(row['key'])}**: "
            f"{ui.md_escape(row['name'])}, recorded with this repository. Follow one question through it on the "
            "tour, then look at:"
        )
        for page, label, what in LOOK_AT:
            st.page_link(page, label=f"{label}: {what}", query_params={"run": row["key"]})
        c1, c2 = st.columns([1, 3], vertical_alignment="center")
        if c1.button("Open the showcase's tour", icon=":material/school:", type="primary", key="front_tour"):
            ui.pick_run(row["key"])
            st.switch_page("app_pages/tour.py", query_params={"run": row["key"]})
        c2.caption(
            "Every accuracy carries its n and 95 % interval; a change is coloured only when its paired test "
            "says it is significant (p < 0.05)."
        )
        if row.get("audit_outdated"):
            st.caption(f"This showcase was audited under older rules (version {row.get('audit_version')}).")


__all__ = ["LOOK_AT", "start_here"]
