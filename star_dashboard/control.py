"""Process control in the dashboard: the session's token, the refusal of a foreign Host or Origin (DNS
rebinding), the policy for this session, and the Start / Resume / Stop buttons. The processes and the policy
themselves live in :mod:`star_core.procs` (no Streamlit there); app.py calls :func:`refuse_foreign_request` and
:func:`capture_token` before any page runs.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from star_core import procs, queries

from .ui import md_escape

_TOKEN_KEY = "_dashboard_token"


def capture_token() -> None:
    """Take ``?token=...`` from the URL into this session (and out of the URL, so it is not shared with a
    link). Called by app.py before any page rewrites the URL."""
    given = st.query_params.get(procs.TOKEN_PARAM)
    if given is not None:
        st.session_state[_TOKEN_KEY] = given
        del st.query_params[procs.TOKEN_PARAM]


def _ws_headers() -> tuple[str | None, str | None]:
    """This session's WebSocket request: its Host and Origin headers (None, None: no browser, as in AppTest)."""
    try:
        h = st.context.headers
        return h.get("Host"), h.get("Origin")
    except Exception:  # no client context: a script run, a test
        return None, None


def served_names() -> list[str]:
    """The addresses, besides loopback, the operator named for this dashboard (``procs.name_served``)."""
    from streamlit import config as st_config

    try:
        names = [str(h) for h in (st.get_option("server.allowedHosts") or [])]
    except Exception:  # a Streamlit older than the option
        names = []
    addr = str(st.get_option("server.address") or "").strip()
    if addr and addr not in ("0.0.0.0", "::"):
        names.append(addr)
    if st_config.is_manually_set("browser.serverAddress"):
        names.append(str(st.get_option("browser.serverAddress")))
    return names


def refuse_foreign_request() -> None:
    """Stop the page, before it reads anything, for a browser on an address the dashboard does not serve or a
    page of another origin (``procs.request_refusal``: DNS rebinding). Called by app.py first."""
    host, origin = _ws_headers()
    why = procs.request_refusal(host, origin, served_names())
    if why:
        st.error(md_escape(why), icon=":material/block:")
        st.stop()


def control_policy() -> procs.Policy:
    """May this session start, resume and stop runs? (``procs.policy`` on this server and browser; a browser
    session needs a same-origin WebSocket)."""
    try:
        client = st.context.ip_address
    except Exception:  # no client context: a script run, a test
        client = None
    client = client if isinstance(client, str) else None  # None: loopback (or no browser: AppTest)
    host, origin = _ws_headers()
    same = host is None or procs.same_origin(host, origin)
    return procs.policy(st.get_option("server.address"), client, st.session_state.get(_TOKEN_KEY), same)


def token_box(pol: procs.Policy) -> None:
    """A password box for the dashboard's token, when one is configured and not given yet."""
    if not pol.token_required:
        return
    with st.form("token_form"):
        tok = st.text_input("Dashboard token", type="password", help=f"the value of {procs.TOKEN_ENV}")
        if st.form_submit_button("Unlock process control") and tok:
            st.session_state[_TOKEN_KEY] = tok
            st.rerun()


def start_run(cmd: list[str], run_dir: Path, pol: procs.Policy) -> tuple[int | None, str]:
    """Start (or resume) a run (``procs.start_run``; the limit counts runs under every root): (pid or None,
    message)."""
    return procs.start_run(cmd, run_dir, pol)


def run_controls(run_dir: Path, status: str, key: str) -> None:
    """Stop (a live run this dashboard started) or Resume (a crashed or stopped one), with their messages,
    when this session may control processes; otherwise what it would take, and the shell commands."""
    ss = st.session_state
    msg_key = f"_ctl_msg_{key}"
    pol = control_policy()
    live_pid = procs.launched_alive(run_dir)
    other = procs.foreign_pid(run_dir) if status == "running" else None
    if other:
        st.caption(
            f"This run's process (pid {other}) was not started by this dashboard, so the dashboard will "
            f"not stop it: stop it where it runs (Ctrl-C), or with `kill -TERM {other}` on its machine."
        )
    if not pol.allowed:
        if live_pid or status in queries.RESUMABLE:
            st.caption(pol.reason)
        return
    if live_pid:
        if st.button(
            "Stop run",
            icon=":material/stop_circle:",
            key=f"stop_{key}",
            help=f"SIGTERM to pid {live_pid}, which this dashboard started: the run stops after the "
            "current batch and stays resumable",
        ):
            ss[msg_key] = procs.stop_run(run_dir)
            st.rerun()  # the whole page, so that its live polling follows the stop
    elif status in queries.RESUMABLE:
        if st.button(
            "Resume run",
            icon=":material/play_arrow:",
            key=f"resume_{key}",
            type="primary",
            help=f"star run --resume {run_dir}",
        ):
            pid, msg = start_run(procs.resume_command(run_dir), run_dir, pol)
            ss[msg_key] = f"Resuming (pid {pid}); output goes to {procs.LOG_NAME} in the run folder." if pid else msg
            if pid:
                st.rerun()  # the whole page, so that its live polling follows the resumed run to its end
    if ss.get(msg_key):
        st.caption(md_escape(ss[msg_key]))
