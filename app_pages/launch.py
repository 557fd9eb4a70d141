"""Launch: start a STaR run as a separate process, follow it live, stop or resume it."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from star_core import procs, queries
from star_core.tasks import TASKS
from star_dashboard import control, data, launch_form, ui
from star_dashboard.live import log_text, show_log, show_stage

# ---- who may launch (procs.policy: a dashboard on this machine, or the session that gave its token; off with
# STAR_DASHBOARD_LAUNCH=0), and the limit on runs at once (one per GPU by default: each run holds a model)
ui.page_header(
    "Launch",
    "Start a STaR run in its own process (`star run ...`), follow its progress and log, "
    "and stop or resume it. The dashboard only reads the run's store; closing it does not stop the run.",
)
ui.plain_url()
ss = st.session_state
procs.reap()
user_root = ui.roots()[0]
pol = control.control_policy()
if not pol.allowed:
    st.info(
        pol.reason + " Start runs from a shell: `star run --task arithmetic --out runs/first`.", icon=":material/block:"
    )
    control.token_box(pol)
    st.stop()
st.caption(
    f"At most {pol.max_runs} launched run{'s' if pol.max_runs > 1 else ''} at once "
    f"(`STAR_DASHBOARD_MAX_RUNS`); Stop only stops runs this dashboard started."
)
# ---- the form: the common settings in rows and every other config field under "All settings" (built from the
# config, so a new field appears without a page edit); "Reproduce this run" on Runs fills it
task_default = "star"
reproducing = launch_form.take_prefill()  # "Reproduce this run" on Runs fills the form; else the page's defaults
if reproducing:
    st.info(
        f"The form holds the settings of {ui.md_escape(reproducing)}; check them, then start.",
        icon=":material/replay:",
    )

with st.form("launch_form"):
    c1, c2, c3 = st.columns(3)
    if not ss.get("launch_name"):
        ss["launch_name"] = f"{task_default}-{time.strftime('%Y%m%d-%H%M%S')}"
    name = c1.text_input("Run name", key="launch_name", max_chars=64, help=f"The run folder is {user_root}/<name>")
    task = c2.selectbox("Task", list(TASKS), key="launch_f_task")
    model = c3.text_input(
        "Model",
        key="launch_f_model",
        help="Hugging Face id, local folder, .gguf file, or bundled:smollm2-135m (offline)",
    )
    c1, c2, c3, c4 = st.columns(4)
    iterations = c1.number_input(
        "Iterations",
        min_value=0,
        max_value=50,
        key="launch_f_iterations",
        step=1,
        help="STaR outer iterations; iteration 0 (few-shot baseline) is extra",
    )
    n_train = c2.number_input("Train questions (n_train)", min_value=1, max_value=100_000, key="launch_f_n_train")
    n_eval = c3.number_input("Eval questions (n_eval)", min_value=1, max_value=100_000, key="launch_f_n_eval")
    max_new_tokens = c4.number_input("max_new_tokens", min_value=8, max_value=4096, key="launch_f_max_new_tokens")
    c1, c2, c3, c4 = st.columns(4)
    rationalize = c1.toggle(
        "Rationalization",
        key="launch_f_rationalize",
        help="Retry wrong answers with the gold answer as a hint (the paper's rationalization)",
    )
    temperature = c2.number_input(
        "Temperature",
        min_value=0.0,
        max_value=2.0,
        key="launch_f_temperature",
        step=0.1,
        help="0 = greedy (the paper found sampling at 0.5-0.7 worse)",
    )
    spq = c3.number_input("Samples per question", min_value=1, max_value=16, key="launch_f_samples_per_question")
    seed = c4.number_input("Seed", min_value=0, max_value=2**31 - 1, key="launch_f_seed")
    launch_form.draw_advanced()
    submitted = st.form_submit_button("Start run", type="primary", icon=":material/rocket_launch:")

# ---- start: the name and the settings are checked (by the engine's own config check) before a process is spawned
if submitted:
    name = name.strip()
    out = user_root / name
    if not procs.NAME_RE.fullmatch(name):
        st.error("Run name: use letters, digits, '.', '_' or '-' (up to 64 characters, not starting with a dot).")
    elif out.exists() and any(out.iterdir()):
        st.error(ui.md_escape(f"{out} already exists; pick another name (or resume that run below)."))
    elif not model.strip():
        st.error("Model: give a model id or path.")
    elif problem := launch_form.check(
        {"task": task, "model": model.strip(), "iterations": int(iterations)},
        [f"rationalize={'true' if rationalize else 'false'}", f"n_train={int(n_train)}", f"n_eval={int(n_eval)}"]
        + [f"max_new_tokens={int(max_new_tokens)}", f"temperature={float(temperature)}"]
        + [f"samples_per_question={int(spq)}", f"seed={int(seed)}", *launch_form.advanced_sets()],
    ):
        st.error(problem)
    else:
        cmd = procs.run_command(
            out, task, model.strip(), iterations, rationalize, n_train, n_eval, max_new_tokens, temperature, spq, seed
        )
        cmd += [a for kv in launch_form.advanced_sets() for a in ("--set", kv)]
        pid, msg = control.start_run(cmd, out, pol)
        if pid is None:
            st.error(ui.md_escape(msg))
        else:
            ss["launch_dir"] = str(out)
            ss["_pending_pick"] = name
            ss["launch_msg"] = msg

# ---- the run to follow: the one just launched, else the one picked in the sidebar
target: Path | None = Path(ss["launch_dir"]) if ss.get("launch_dir") else None
if target is None and ss.get("_runs") and not ss.get("_bad_run"):
    try:
        target = data.resolve_run(ui.run_key() or "", ui.roots())
    except queries.RunUnavailable:
        target = None
live = target is not None and (procs.launched_alive(target) is not None or data.run_status(target) == "running")


# ---- its status, stage and log, refreshed every 2 s while it is alive (10 s when idle), with Stop and Resume
@st.fragment(run_every=2 if live else 10)  # idle: slow polling, so a run resumed elsewhere is picked up
def monitor(run_dir: Path) -> None:
    st.subheader(f"Run: {ui.md_escape(run_dir.name)}")
    if ss.get("launch_msg") and ss.get("launch_dir") == str(run_dir):
        st.caption(ui.md_escape(ss["launch_msg"]))
    alive = procs.launched_alive(run_dir)
    status = data.run_status(run_dir) if data.is_run_dir(run_dir) else "empty"
    if status == "empty":
        st.info(
            "Starting: the engine is loading the data and the model; the run's store appears shortly."
            if alive
            else "No run store in this folder yet.",
            icon=":material/hourglass_empty:",
        )
    else:
        brief = data.run_brief(run_dir)
        st.progress(
            brief["progress"],
            text=f"{ui.STATUS_ICON.get(status, '')} {ui.md_escape(status)} · "
            + (
                f"iteration {brief['current_iteration']}: {brief['current_stage']}"
                if brief["current_stage"]
                else "starting"
            )
            + f" · updated {ui.ago(brief['updated_at'])}",
        )
        if status == "corrupt":
            st.error(brief.get("problem") or "unreadable store")
        elif status in queries.RESUMABLE:
            st.warning(
                f"This run is {status}. Resume continues from the last stored batch.", icon=":material/pause_circle:"
            )
    raw = log_text(run_dir)
    if status == "running" or alive:
        show_stage(run_dir, raw)
    control.run_controls(run_dir, status, "launch")
    show_log(raw, "launch")
    alive = procs.launched_alive(run_dir)  # again: Resume or Stop may just have changed it
    seen = f"_store_seen_{run_dir}"
    if status != "empty" and not ss.get(seen) and ss.get("_pending_pick"):
        ss[seen] = True
        st.rerun()  # the new run's store exists: a full rerun lists it in the sidebar and picks it
    if (alive or status == "running") and not live:
        st.rerun()  # it came alive: switch the view to live refreshing
    if live and not alive and status != "running":
        st.rerun()  # it ended: one last full refresh, then no more polling


if target is not None:
    st.divider()
    monitor(target)
    if ss.get("launch_dir"):
        if st.button("Show the run picked in the sidebar instead", key="launch_forget"):
            ss.pop("launch_dir", None)
            st.rerun()
