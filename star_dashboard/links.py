"""Links that say what happened: a deep link naming something the run does not hold says so and offers the
nearest valid view; an empty filter result offers a reset."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from star_dashboard import data, ui


def linked_sample(state: Mapping[str, str]) -> int | None:
    """The sample id a link (not a click on this page) asks for, read before the page locates it."""
    sid = state.get("sid") if state.get("_link") else None
    return int(sid) if sid and str(sid).isdigit() else None


def note_link_values(
    state: Mapping[str, str], checks: Mapping[str, tuple[Sequence[str], str]], instead: str | None = None
) -> None:
    """For a link, one warning per value it names that the run does not have: ``checks[key] = (options, what)``;
    ``instead`` says what is shown (default: every value). Call it before the filters adopt the state."""
    if not state.get("_link"):
        return
    for key, (options, what) in checks.items():
        v = state.get(key)
        if v not in (None, "", ui.ALL) and v not in options:
            have = ", ".join(str(o) for o in options if o != ui.ALL)
            st.warning(
                f"The link asks for {what} {ui.md_escape(v)}, which this run does not have"
                + (f" (it has {ui.md_escape(have)})" if have else "")
                + f"; showing {instead or f'every {what}'} instead.",
                icon=":material/link_off:",
            )


def note_missing_sample(
    page: str, run_dir: str | os.PathLike, state: dict[str, str], want: int | None, got: Any
) -> None:
    """When a link asked for sample ``want`` and the page shows another (``got``): say so, and offer the nearest
    sample the run holds."""
    if want is None or got == want:
        return
    near = data.nearest_sample(run_dir, want)
    st.warning(
        f"The link asks for sample \\#{want}, which this run does not hold"
        + ("" if got is None else "; showing the first sample that matches the filters instead")
        + ".",
        icon=":material/link_off:",
    )
    if near is not None and near != got:

        def go() -> None:
            state["sid"] = str(near)
            state.pop("goto", None)

        st.button(f"Open the nearest sample, #{near}", key=f"{page}_nearest", on_click=go, icon=":material/near_me:")


def reset_button(page: str, state: dict[str, str], keys: Sequence[str], label: str = "Reset the filters") -> None:
    """A button that clears the page's filters (its state and its widgets)."""

    def reset() -> None:
        state.clear()
        for k in keys:
            st.session_state.pop(f"{page}_{k}", None)

    st.button(label, key=f"{page}_reset", on_click=reset, icon=":material/filter_alt_off:")


# --------------------------------------------------------------------------
# Back in one press
# --------------------------------------------------------------------------
#: Streamlit pushes a browser history entry for a page switch, and another for every change of the query string
#: the page's script makes right after (a page writes its state into the URL). Back then lands on those
#: in-between entries, which the page rewrites again. This guard, installed once per browser tab, lets a history
#: push through only when the user acted (a click, a tap or a key) since the last one; a push the script makes on
#: its own replaces the current entry instead. Back and Forward (popstate) never push.
_HISTORY_JS = """
export default function (component) {
  if (!window.__starHistoryGuard) {
    const push = window.history.pushState.bind(window.history);
    let acted = false;
    const mark = () => { acted = true; };
    document.addEventListener("pointerdown", mark, true);
    document.addEventListener("keydown", mark, true);
    window.addEventListener("popstate", () => { acted = false; }, true);
    window.history.pushState = function (state, title, url) {
      if (acted) { acted = false; return push(state, title, url); }
      return window.history.replaceState(state, title, url);
    };
    window.__starHistoryGuard = true;
  }
  document.body.dataset.starHistory = "on";  // the guard is live (the browser tests wait for it)
  return () => {};
}
"""
_history_component = st.components.v2.component("star_history_guard", js=_HISTORY_JS)


def history_guard() -> None:
    """Install the guard (``_HISTORY_JS``): Back goes to the view before, in one press."""
    _history_component(key="star_history_guard", height=0)


__all__ = ["history_guard", "linked_sample", "note_link_values", "note_missing_sample", "reset_button"]
