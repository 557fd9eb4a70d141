"""Runs: every run with its status, configuration and per-iteration progress (live while running)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from star_core import procs, queries, stats
from star_dashboard import control, data, flags, front, launch_form, ui
from star_dashboard.live import log_text, show_stage

# ---- the header and "start here" (the showcase run and what to open first), because this is the landing page;
# a link to a run that is not there stops with a message
ui.page_header(
    "Runs",
    "Every STaR run found in the runs folders: its status, configuration and how far each "
    "iteration got. Pick a run here or in the sidebar; every page then shows it.",
)
ui.plain_url()

if not st.session_state.get("_runs"):
    ui.no_runs_message()
    st.stop()
front.start_here(st.session_state["_runs"])
if st.session_state.get("_bad_run"):
    ui.current_run()  # shows the error and stops


# ---- the runs table: every run under the roots with its status, progress and audit version; a click picks the
# run every page then shows
def _pick_from_table() -> None:
    sel = st.session_state["runs_table"].selection
    rows = list(sel.rows) or [c[0] for c in sel.cells]  # a click on a cell opens its row too
    keys = st.session_state.get("_runs_table_keys") or []
    if rows and rows[0] < len(keys):
        ui.pick_run(keys[rows[0]])
        st.session_state["_runs_table_picked"] = True


def _table(runs: list[dict]) -> None:
    df = pd.DataFrame(
        [
            {
                "status": f"{ui.STATUS_SYMBOL.get(r['status'], '')} {r['status']}"
                + (" (resumable)" if r["resumable"] else ""),
                "run": r["key"] if len(r["key"]) <= 40 else Path(r["path"]).name,
                "iterations": (
                    f"{r['iterations_done']}/{(r['iterations_planned'] or 0) + 1}"
                    if r["iterations_planned"] is not None
                    else "–"
                ),
                "progress": r["progress"],
                "audit": flags.audit_words(r.get("audit_version")),
                "stage": (f"iter {r['current_iteration']}: {r['current_stage']}" if r["current_stage"] else "–"),
                "task": r["task"] or "–",
                "updated": ui.ago(r["updated_at"]),
                "description": r["name"],
                "model": r["model"] or "–",
                "device": r["device"] or "–",
                "folder": r["path"],
            }
            for r in runs
        ]
    )
    st.session_state["_runs_table_keys"] = [r["key"] for r in runs]
    st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        on_select=_pick_from_table,
        selection_mode=["single-row", "single-cell"],
        key="runs_table",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "iterations": st.column_config.TextColumn(help="done / planned (iteration 0 included)"),
            "audit": st.column_config.TextColumn(
                help="the audit rules' version the rationales were checked under "
                f"(the engine's: v{queries.AUDIT_VERSION})"
            ),
        },
    )
    if st.session_state.pop("_runs_table_picked", False):
        st.rerun()


# ---- the picked run in detail: what it is, where it stands (status, stage, heartbeat, progress), how to resume
# it when it stopped, and whether its adapters are on disk
def _measures(measures: dict) -> dict[str, str]:
    """Each measure of an evaluation ("all" group of each task's splits) in words, with n and its interval."""
    out = {}
    for key in queries.MEASURES:
        cells = [
            f"{t} {stats.describe(m[key]['k'], m[key]['n'])}"
            for t, sp in measures.items()
            for g in sp.values()
            if g
            for m in [g.get("all", next(iter(g.values())))]
            if key in m
        ]
        if cells:
            out[key] = ", ".join(cells)
    return out


def _measure(measures: dict, key: str) -> str:
    return _measures(measures).get(key, "–")


def _sampler(info: dict) -> str:
    """Where the run decodes its rationales (the stored config's sampler; runs before it had none: local)."""
    cfg = info.get("config") or {}
    if cfg.get("sampler", "local") != "ray":
        return "sampled in the run's process (sampler=local)"
    n = cfg.get("ray_workers", "?")
    per = ", ".join(
        f"{cfg[k]:g} {what}"
        for k, what in (("ray_cpus_per_worker", "CPU"), ("ray_gpus_per_worker", "GPU"))
        if isinstance(cfg.get(k), (int, float)) and cfg[k] > 0
    )
    return (
        f"sampled on Ray: {n} worker{'s' if n != 1 else ''}"
        + (f" of {per}" if per else "")
        + f" (ray_address={cfg.get('ray_address', '?')})"
    )


def _details(run_dir) -> None:
    info = ui.guard(data.run_info, run_dir)
    s = data.summary(run_dir)
    status = info["status"]
    st.subheader(f"{ui.STATUS_ICON.get(status, '')} {ui.md_escape(info['name'])}")
    done = sum(1 for i in s["iterations"] if i["stage"] == "done")
    planned = (info["iterations_planned"] or 0) + 1
    cur = s["iterations"][-1] if s["iterations"] else None
    st.markdown(
        f"{ui.md_escape(info['task'])} · model {ui.md_escape(info['model'])} · "
        f"{ui.md_escape(info['device'] or 'device unknown')} · {ui.md_escape(_sampler(info))}"
    )
    m = st.columns(4)
    m[0].metric("Status", ui.md_escape(status), help="crashed and stopped runs are resumable")
    trained = sum(1 for i in s["iterations"] if i["stage"] == "done" and i["iteration"] >= 1)
    base = any(i["stage"] == "done" and i["iteration"] == 0 for i in s["iterations"])
    m[1].metric(
        "STaR iterations done",
        f"{trained} / {planned - 1}",
        help="iterations 1 and on; iteration 0, the few-shot baseline, is extra: "
        + ("evaluated" if base else "not evaluated yet"),
    )
    m[2].metric(
        "Current stage",
        f"{cur['iteration']}: {cur['stage'] or '?'}" if cur else "–",
        help="iteration: pending → sampled → rationalized → trained → done",
    )
    m[3].metric("Last heartbeat", ui.ago(info.get("heartbeat_at")))
    st.progress(
        data.run_brief(run_dir)["progress"],
        text=f"{done} of {planned} iterations done (the few-shot baseline, iteration 0, included)",
    )
    flags.audit_banner(run_dir)
    if status == "running":
        show_stage(run_dir, log_text(run_dir))
        st.caption("Live: this view refreshes every few seconds.")
    how = "with the button below, or from a shell:" if control.control_policy().allowed else "from a shell:"
    if status == "crashed":
        st.error(
            f"This run stopped without finishing (its process is gone or its heartbeat is stale). Resume it {how}",
            icon=":material/error:",
        )
        st.code(f"star run --resume {run_dir}", language="bash")
    elif status == "stopped":
        st.warning(f"This run was stopped. Resume it {how}", icon=":material/pause_circle:")
        st.code(f"star run --resume {run_dir}", language="bash")
    control.run_controls(run_dir, status, "runs")
    gone = data.missing_adapters(run_dir)
    if gone:
        st.info(
            f"The LoRA adapters of iteration{'s' if len(gone) > 1 else ''} {', '.join(map(str, gone))} are not "
            "in this folder (the bundled demo runs leave them out to keep the repository small). Every sample, "
            "decision, training example, loss and metric is in the store; re-record with "
            "`bash scripts/record_demo.sh` to get the adapters.",
            icon=":material/info:",
        )
    if info.get("error"):
        with st.expander("Error", expanded=status == "crashed"):
            ui.show_text(info["error"])

    _iterations(s)
    _config_and_events(info, run_dir)


# ---- iteration by iteration: what each sampled, kept, trained on and scored (with its interval), then the warm
# start and the direct-answer baseline, the references a run's gains are read against
def _iterations(s: dict) -> None:
    """One row per iteration (counts first), then the warm start and the direct-answer baseline in words."""
    rows = []
    for it in s["iterations"]:
        sd = it["decisions"].get("sample", {})
        rd = it["decisions"].get("rationalize", {})
        accs = [
            f"{t} {stats.describe(a['n_correct'], a['n'])}"
            for t, sp in it["accuracy"].items()
            for g in sp.values()
            if g
            for a in [g.get("all", next(iter(g.values())))]
        ]
        rows.append(
            {
                "iteration": it["iteration"],
                "stage": it["stage"],
                "sampled": sum(sd.values()) or None,
                "right, kept": sd.get("correct"),
                "retried with the hint": sum(rd.values()) or None,
                "rescued (rationalized)": it["rationalized"] or None,
                "trained on": it["n_train_examples"],
                "steps": it["train_steps"],
                "final loss": it["final_loss"],
                "eval accuracy": ", ".join(accs),
                "right and faithful": _measure(it["measures"], "faithful_accuracy"),
                "shows a rationale": _measure(it["measures"], "rationale_share"),
            }
        )
    warm = s.get("warm_start")
    st.markdown(
        "**Iterations** (0 = few-shot baseline"
        + (": evaluation, then the warm start)" if warm else ", evaluation only)")
    )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={"final loss": st.column_config.NumberColumn(format="%.3f")},
    )
    if warm:
        st.markdown(
            ui.warm_start_note(warm["examples"], warm["train_steps"])
            + " After it: "
            + ui.md_escape(
                "; ".join(f"{queries.MEASURES[k]} {v}" for k, v in _measures(warm["measures"]).items())
                or "not evaluated yet"
            )
            + "."
        )
    if s.get("direct_baseline"):
        st.markdown(
            "**Direct-answer baseline** (the few-shot model prompted without rationales, for reference): "
            + ui.md_escape(_measure(s["direct_baseline"], "accuracy"))
            + "."
        )


# ---- the run's settings (and "Reproduce this run") beside its latest events: what was asked, what happened last
def _config_and_events(info: dict, run_dir) -> None:
    """The run's configuration (with "Reproduce this run") beside its latest events."""
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Configuration**")
        cfg = info.get("config") or {}
        if "rationalize" in cfg:
            st.markdown(
                "Rationalization: "
                + (
                    "**on** (wrong answers are retried with the gold answer as a hint)"
                    if cfg["rationalize"]
                    else "**off**"
                )
            )
        if cfg.get("warm_start"):
            st.markdown(
                f"Warm start: **{int(cfg['warm_start'])} reference rationales**, supervised, not "
                "bootstrapped (see above)"
            )
        st.dataframe(
            [{"setting": k, "value": json.dumps(v) if not isinstance(v, str) else v} for k, v in sorted(cfg.items())],
            hide_index=True,
            width="stretch",
            height=280,
        )
        launch_form.reproduce_button(ui.run_key() or run_dir.name, cfg, "reproduce_runs")
        if info.get("config_yaml"):
            with st.expander("config.yaml"):
                st.code(info["config_yaml"], language="yaml")
        st.caption(f"Folder: {ui.md_escape(run_dir)}")
    with c2:
        st.markdown("**Latest events**")
        ev = ui.guard(data.events_frame, run_dir, 15)
        ev["at"] = pd.to_datetime(ev["at"], unit="s").dt.strftime("%H:%M:%S")
        if "message" in ev:  # the engine names the device once it has picked one
            ev["message"] = ev["message"].str.replace("run started on starting", "run started", regex=False)
        st.dataframe(ev, hide_index=True, width="stretch")


# ---- live refresh: the table and the details redraw every 3 s while a run is live, every 15 s when idle (so a run
# started from a shell still shows up)
def _any_live(runs: list[dict]) -> bool:
    """A run is running, or a process this dashboard started for one is alive (a resume not yet in its store)."""
    return any(r["status"] == "running" or procs.launched_alive(Path(r["path"])) for r in runs)


any_live = _any_live(st.session_state["_runs"])


@st.fragment(run_every=3 if any_live else 15)  # idle: slow polling, so a run started from a shell shows up
def live() -> None:
    runs = ui.list_runs()
    if _any_live(runs) != any_live:
        st.rerun()  # a run came alive (Resume) or ended: the whole page, to poll at the right pace
    _table(runs)
    row = next((r for r in runs if r["key"] == ui.run_key()), None)
    if row is None:
        return
    if row["status"] in ("corrupt", "empty"):
        ui.show_unavailable(
            queries.RunUnavailable(
                "corrupt" if row["status"] == "corrupt" else "empty", row.get("problem") or "unreadable run store"
            )
        )
        return
    _details(data.resolve_run(row["key"], ui.roots()))


live()
