"""Shared Streamlit helpers of the dashboard: run picker, page state in the URL, badges, the audit, navigation.

All data logic lives in :mod:`star_core.queries`, read through the cached functions of
:mod:`star_dashboard.data`; process control in :mod:`star_core.procs` (no Streamlit in either); this module keeps
the pages short. Model and dataset text is never passed to markdown or HTML unescaped: use :func:`show_text` /
``st.code`` / ``st.text``, or :func:`show_highlighted` (from :mod:`star_dashboard.safe_text`, re-exported here).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from star_core import queries

from . import data
from .data import guard, show_unavailable
from .safe_text import md_escape, show_text
from .safe_text import show_highlighted as show_highlighted  # re-exported

#: Folder holding app.py (set by app.py; the fallback is the repository layout).
APP_DIR = Path(__file__).resolve().parent.parent

#: Markdown icons (Material Symbols, bundled with Streamlit) per run status.
STATUS_ICON = {
    "running": ":green[:material/play_circle:]",
    "finished": ":green[:material/check_circle:]",
    "crashed": ":red[:material/error:]",
    "stopped": ":orange[:material/pause_circle:]",
    "empty": ":gray[:material/hourglass_empty:]",
    "corrupt": ":red[:material/block:]",
}
#: Plain-text symbols (tables, select boxes).
STATUS_SYMBOL = {"running": "●", "finished": "✓", "crashed": "✗", "stopped": "■", "empty": "○", "corrupt": "⚠"}
#: Every decision (``queries.DECISIONS``) with its badge colour and its chart colour.
DECISION_COLOR = {
    "correct": ("green", "#2f9e44"),
    "rationalized": ("blue", "#1c7ed6"),
    "wrong": ("red", "#e03131"),
    "unparsable": ("orange", "#f08c00"),
    "truncated": ("orange", "#fab005"),
    "hint_leak": ("violet", "#9c36b5"),
    "unfaithful": ("violet", "#ae3ec9"),
    "no_rationale": ("gray", "#495057"),
    "reference": ("primary", "#5f3dc4"),
    "duplicate": ("gray", "#adb5bd"),
    "over_limit": ("gray", "#868e96"),
}
OTHER_COLOR = ("gray", "#868e96")
#: Badge colour of each audit verdict (``queries.VERDICTS`` says what each means).
VERDICT_COLOR = {"faithful": "green", "unfaithful": "orange", "no_rationale": "red"}


def phase_label(phase: str) -> str:
    """A phase for a filter or a heading: ``train · first attempt (sample)``."""
    if phase not in queries.PHASES:
        return phase
    return f"{queries.PHASE_SPLIT[phase]} · {queries.PHASES[phase]} ({phase})"


def warm_start_note(examples: int, steps: int | None = None) -> str:
    """The warm start in one sentence (markdown), wherever a page shows it."""
    steps_s = f", {steps} steps" if steps else ""
    return (
        f"**Warm start** ({examples} reference rationales{steps_s}): {md_escape(queries.WARM_NOTE)}. "
        "Iteration 1 samples with the warm-started model, and these examples join every iteration's "
        "training set."
    )


def init(app_file: str | os.PathLike) -> None:
    global APP_DIR
    APP_DIR = Path(app_file).resolve().parent


def roots() -> list[Path]:
    return queries.runs_roots(APP_DIR)


def phone_safe(fig: Any) -> Any:
    """A Plotly figure whose toolbar stands upright at the right edge instead of across the top, where it covers
    the chart's title on a narrow (phone) screen; the title gets the top-left."""
    fig.update_layout(modebar=dict(orientation="v"), title_x=0.01)
    return fig


def decision_badge(decision: str | None, where: Any = None) -> None:
    where = where or st
    d = str(decision or "?")
    label = d if re.fullmatch(r"[a-z_]{1,30}", d) else "other"
    where.badge(label, color=DECISION_COLOR.get(d, OTHER_COLOR)[0])


def show_audit(audit: dict[str, Any] | None) -> str | None:
    """One sample's rationale audit (``queries.parse_audit``): the steps checked, the verdict in words, and
    every wrong step or the missing one as literal text. Returns the verdict."""
    if not audit:
        st.caption("Rationale audit: none stored (nothing checkable for this task or output).")
        return None
    v = audit.get("verdict")
    checked = audit.get("checked")
    checked = int(checked) if isinstance(checked, (int, float)) else 0
    words = f":{VERDICT_COLOR[v]}[{md_escape(queries.VERDICTS[v])}]" if v in VERDICT_COLOR else "nothing checkable"
    st.markdown(f"**Rationale audit**: {checked} step(s) checked, {words}")
    notes = audit["errors"] + ([audit["no_rationale"]] if v == "no_rationale" and audit.get("no_rationale") else [])
    if notes:
        show_text("\n".join(f"• {e}" for e in notes))
    version = audit.get("version") or 1
    if v == "faithful" and version < queries.AUDIT_VERSION:
        st.caption(
            f"Audited under rules version {version}, "
            + (
                "before a bare answer got its own verdict: an answer without an intermediate step counts as "
                "faithful here."
                if version < 2
                else "before every step was checked: a bare 1-digit equation and an unchecked closing carry "
                "count as faithful here."
            )
        )
    return v


def ago(ts: float | None) -> str:
    if not ts:
        return "–"
    s = max(0, time.time() - ts)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def list_runs() -> list[dict[str, Any]]:
    """All runs under the roots (``data.list_runs``: refreshed when a store changes, and every few seconds)."""
    return data.list_runs(roots())


# --------------------------------------------------------------------------
# the run picker (sidebar, on every page) and the current run
# --------------------------------------------------------------------------
def _run_label(r: dict[str, Any]) -> str:
    old = "  ·  ⚠ old audit" if r.get("audit_outdated") else ""  # flags.OLD_AUDIT_MARK
    return f"{STATUS_SYMBOL.get(r['status'], '')} {r['name']}  ·  {r.get('task') or '?'}  ·  {r['status']}{old}"


def no_runs_message() -> None:
    rs = roots()
    st.info(
        "No runs yet. Start one on the **Launch** page, or from a shell: "
        "`star run --task arithmetic --out runs/first`. The dashboard looks for run folders in: "
        + ", ".join(f"`{md_escape(r)}`" for r in rs)
        + f" (set `{queries.RUNS_ROOT_ENV}` to change the first).",
        icon=":material/inbox:",
    )


def run_key() -> str | None:
    """The key of the run every page shows (see ``sidebar_run_picker``)."""
    return st.session_state.get("_run")


def pick_run(key: str) -> None:
    """Make ``key`` the current run (from a callback, or before the sidebar picker is drawn)."""
    st.session_state["_run"] = key


def sidebar_run_picker() -> None:
    """Draw the run picker. The choice lives in session state (``_run``, which survives page
    switches, unlike widget state) and in the ``run`` query parameter."""
    ss = st.session_state
    runs = list_runs()
    ss["_runs"] = runs
    keys = [r["key"] for r in runs]
    by_path = {r["path"]: r["key"] for r in runs}
    ss["_bad_run"] = None
    qp = st.query_params.get("run")
    if qp is not None and qp != ss.get("_run_qp_applied"):  # a link (or a jump from another page)
        ss["_run_qp_applied"] = qp
        try:
            real = data.resolve_run(qp, roots())
        except queries.RunUnavailable:
            real = None
        if real is not None and str(real) in by_path:
            ss["_run"] = by_path[str(real)]
        else:
            ss["_bad_run"] = qp
    if ss.get("_pending_pick") in keys:  # a run just launched from the Launch page
        ss["_run"] = ss.pop("_pending_pick")
    with st.sidebar:
        if not runs:
            st.caption("No runs yet.")
            return
        if ss.get("_run") not in keys:  # the showcase until the user (or a link) picks another
            ss["_run"] = queries.default_run_key(runs, APP_DIR) or keys[0]
        ss["run_pick"] = ss["_run"]
        labels = {r["key"]: _run_label(r) for r in runs}
        st.selectbox(
            "Run",
            keys,
            key="run_pick",
            format_func=lambda k: labels.get(k, k),
            on_change=lambda: pick_run(ss["run_pick"]),
            help="The run every page shows. Also in the URL as ?run=...",
        )
    if not ss["_bad_run"]:
        st.query_params["run"] = ss["_run"]
        ss["_run_qp_applied"] = ss["_run"]


def current_run() -> Path:
    """The picked run's folder (inside the roots), or a message and a stopped page."""
    ss = st.session_state
    if ss.get("_bad_run"):
        st.error(
            f"The link asks for run {md_escape(repr(ss['_bad_run']))}, which is not a run folder inside the configured "
            "runs roots. Pick a run in the sidebar.",
            icon=":material/block:",
        )
        st.stop()
    runs = ss.get("_runs") or []
    if not runs:
        no_runs_message()
        st.stop()
    key = ss.get("_run")
    try:
        path = data.resolve_run(key, roots())
    except queries.RunUnavailable as e:
        show_unavailable(e)
        st.stop()
    return path


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


def run_heading(run_dir: Path) -> dict[str, Any]:
    """A one-line heading with the run's name, status and task; stops the page on an unreadable store."""
    info = guard(data.run_info, run_dir)
    status = info["status"]
    st.markdown(
        f"{STATUS_ICON.get(status, '')} **{md_escape(info['name'])}** · {md_escape(info['task'])} · "
        f"model {md_escape(info['model'])} · {md_escape(status)}"
    )
    if info.get("schema_newer"):
        st.warning("This store was written by a newer version of star; some views may be incomplete.")
    return info


def plain_url() -> None:
    """For pages without URL state: keep only ?run=... (drop another page's filters)."""
    if not st.session_state.get("_bad_run"):
        set_params({})


def set_params(params: dict[str, Any]) -> None:
    """Replace the page's query parameters (keeping ``run``)."""
    new = {"run": run_key()} if run_key() else {}
    new.update({k: str(v) for k, v in params.items() if v is not None and v != ""})
    if dict(st.query_params) != new:
        st.query_params.from_dict(new)


# --------------------------------------------------------------------------
# page state that round-trips through the URL
# --------------------------------------------------------------------------
ALL = "(all)"


def url_state(page: str, url_keys: Sequence[str]) -> dict[str, str]:
    """The page's persistent state (filters, position), adopting the URL when it carries this
    page's keys and differs from what the page last wrote (a shared link, or a jump from another page)."""
    ss = st.session_state
    state = ss.setdefault(f"_{page}_state", {})
    qp = {k: v for k, v in st.query_params.to_dict().items() if k in url_keys}
    if qp and qp != ss.get(f"_{page}_written"):
        state.clear()
        state.update(qp)
        for k in url_keys:  # widgets re-read their value from the state
            ss.pop(f"{page}_{k}", None)
        state["_link"] = "1"
    else:
        state.pop("_link", None)
    return state


def write_url(page: str, params: dict[str, Any]) -> None:
    clean = {k: str(v) for k, v in params.items() if v is not None and v != "" and v != ALL}
    st.session_state[f"_{page}_written"] = clean
    set_params(clean)


def state_select(
    page: str,
    state: dict[str, str],
    key: str,
    label: str,
    options: Sequence[str],
    format_func: Callable[[Any], str] = str,
    default: str = ALL,
    **kw: Any,
) -> str:
    """A selectbox whose value persists in ``state[key]`` (and so in the URL)."""
    ss = st.session_state
    wkey = f"{page}_{key}"
    opts = list(options)
    val = state.get(key, default)
    if val not in opts:
        val = default if default in opts else opts[0]
    if ss.get(wkey) not in opts:
        ss[wkey] = val
    v = st.selectbox(label, opts, key=wkey, format_func=format_func, **kw)
    state[key] = v
    return v


def state_text(page: str, state: dict[str, str], key: str, label: str, **kw: Any) -> str:
    ss = st.session_state
    wkey = f"{page}_{key}"
    if wkey not in ss:
        ss[wkey] = state.get(key, "")
    v = st.text_input(label, key=wkey, **kw).strip()[:200]
    state[key] = v
    return v


def navigator(page: str, state: dict[str, str], b: dict[str, Any], noun: str = "sample") -> None:
    """ "17 of 342" with Prev / Next buttons and a jump box; moves by setting state['sid']."""
    ss = st.session_state

    def go(sid: int | None) -> None:
        if sid is not None:
            state["sid"] = str(sid)
            state.pop("goto", None)

    def jump() -> None:
        state["goto"] = str(ss[f"{page}_goto"])
        state.pop("sid", None)

    total, pos = b["total"], b["position"]
    c1, c2, c3, c4 = st.columns([1.3, 1, 1, 1.6], vertical_alignment="center")
    if pos is not None:
        c1.markdown(f"**{noun.capitalize()} {pos:,} of {total:,}**")
    else:
        c1.markdown(f"**{noun.capitalize()} outside the filter** ({total:,} match)")
    c2.button(
        "Prev",
        icon=":material/chevron_left:",
        key=f"{page}_prev",
        on_click=go,
        args=(b["prev_id"],),
        disabled=b["prev_id"] is None,
        width="stretch",
    )
    c3.button(
        "Next",
        icon=":material/chevron_right:",
        icon_position="right",
        key=f"{page}_next",
        on_click=go,
        args=(b["next_id"],),
        disabled=b["next_id"] is None,
        width="stretch",
        type="primary",
    )
    if total > 1:
        ss[f"{page}_goto"] = int(pos or 1)
        c4.number_input(
            "Go to",
            min_value=1,
            max_value=max(total, 1),
            step=1,
            key=f"{page}_goto",
            on_change=jump,
            label_visibility="collapsed",
            help=f"jump to a position (1-{total})",
        )


def browse_current(page: str, run_dir: Path, f: queries.SampleFilter, state: dict[str, str]) -> dict[str, Any]:
    """Locate the current sample: a pending jump, else state['sid'], else the first match.
    Changing the filters (not by a link) goes back to the first match. The position shown last is carried
    to its Prev or Next neighbour while the filter and the store are unchanged, so a step is not a count."""
    fkey = repr(f.items())
    if state.get("_fkey") not in (None, fkey) and not state.get("_link"):
        state.pop("sid", None)
        state.pop("_at", None)
    state["_fkey"] = fkey
    goto = state.pop("goto", None)
    sid = state.get("sid")
    fp = repr(data.fingerprint(run_dir))
    came_from = None
    at_sid, _, rest = (state.get("_at") or "").partition(":")
    at_pos, _, at_fp = rest.partition(":")
    if not goto and at_fp == fp and at_sid.isdigit() and at_pos.isdigit():
        came_from = (int(at_sid), int(at_pos))
    b = data.browse(
        run_dir,
        f,
        sample_id=None if goto or not (sid or "").isdigit() else int(sid),
        position=int(goto) if goto and goto.isdigit() else None,
        came_from=came_from,
    )
    if b["sample_id"] is not None:
        state["sid"] = str(b["sample_id"])
    else:
        state.pop("sid", None)
    if b["position"] is not None:
        state["_at"] = f"{b['sample_id']}:{b['position']}:{fp}"
    else:
        state.pop("_at", None)
    return b
