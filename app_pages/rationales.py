"""Rationales: one sample at a time, with filters, position and a compact table."""

from __future__ import annotations

import streamlit as st

from star_core import queries
from star_core.annotations import LABELS, annotated_filter
from star_core.queries import exports
from star_core.tasks import task_names
from star_dashboard import data, hints, links, review, ui

PAGE = "rat"
KEYS = ("task", "phase", "it", "decision", "correct", "digits", "q", "ann", "sid")
TABLE_ROWS = 25

# ---- the run, and a stop while it has no samples
ui.page_header(
    "Rationales",
    "One model completion at a time: the question, the rationale the model wrote, its "
    "answer against the gold answer, and why the filter kept or rejected it.",
)
run_dir = ui.current_run()
ui.run_heading(run_dir)
fac = data.facets(run_dir)
if not fac["tasks"]:
    st.info(
        "This run has no samples yet. They appear here as soon as the first batch is stored.",
        icon=":material/hourglass_empty:",
    )
    st.stop()


# ---- the filters (sidebar, kept in the URL so a link opens the same view): only values that occur with the
# choices already made, so a combination does not come up empty by surprise; the annotation filter reads your
# labels and tags
def _any(v: str, cast: type = str):
    """A filter's value for ``queries.occurring``: None for "(all)"."""
    return None if v == ui.ALL else cast(v)


state = ui.url_state(PAGE, KEYS)
want_sid = links.linked_sample(state)
links.note_link_values(
    state,
    {
        "task": (fac["tasks"], "task"),
        "phase": (fac["phases"], "phase"),
        "it": ([str(i) for i in fac["iterations"]], "iteration"),
        "decision": (fac["decisions"], "decision"),
    },
)
with st.sidebar:
    st.subheader("Filters")
    task = ui.state_select(PAGE, state, "task", "Task", [ui.ALL] + fac["tasks"])
    phase = ui.state_select(
        PAGE,
        state,
        "phase",
        "Split / phase",
        [ui.ALL] + fac["phases"],
        format_func=lambda p: p if p == ui.ALL else ui.phase_label(p),
    )
    it = ui.state_select(
        PAGE,
        state,
        "it",
        "Iteration",
        [ui.ALL] + [str(i) for i in queries.occurring(fac, "iteration", task=_any(task), phase=_any(phase))],
        help="0 = few-shot baseline. Iteration i samples with model i-1, then trains adapter i. "
        "Only the iterations that hold samples of the chosen task and phase.",
    )
    decision = ui.state_select(
        PAGE,
        state,
        "decision",
        "Decision",
        [ui.ALL] + queries.occurring(fac, "decision", task=_any(task), phase=_any(phase), iteration=_any(it, int)),
        help="only the decisions that occur with the chosen task, phase and iteration",
    )
    correct = ui.state_select(PAGE, state, "correct", "Answer equals gold", [ui.ALL, "yes", "no"])
    # the digit-count filter, for the tasks whose questions come in digit groups (arithmetic)
    grouped = [t for t in task_names("digit_groups") if task in (ui.ALL, t) and fac["grps"].get(t)]
    grps = list(dict.fromkeys(g for t in grouped for g in fac["grps"][t]))
    label = f"Digits ({', '.join(grouped)})"
    digits = ui.state_select(PAGE, state, "digits", label, [ui.ALL] + grps) if grps else ui.ALL
    search = ui.state_text(PAGE, state, "q", "Search text", placeholder="question, rationale or id")
    anns = review.annotations_frame(run_dir)
    ann_tags = sorted({t for ts in anns["tags"] for t in ts}) if anns is not None and not anns.empty else []
    ann_opts = [ui.ALL, "any", *LABELS, "none", *[f"tag:{t}" for t in ann_tags]]
    ann = ui.state_select(
        PAGE,
        state,
        "ann",
        "Annotation",
        ann_opts,
        help="your labels and tags (annotate a sample below it); none: annotated without a label",
        format_func=lambda v: {"any": "annotated (anything)", "none": "annotated, no label"}.get(
            v, v.replace("tag:", "tag: ").replace("_", " ")
        ),
    )

# ---- where we are: the filter, and the sample the URL or a jump names (else the first match) with its position,
# Prev and Next; a link to a sample the run does not hold says so
f = queries.SampleFilter(
    task=None if task == ui.ALL else task,
    phase=None if phase == ui.ALL else phase,
    iteration=None if it == ui.ALL else int(it),
    decision=None if decision == ui.ALL else decision,
    correct=None if correct == ui.ALL else correct == "yes",
    grp=None if digits == ui.ALL else digits,
    search=search or None,
)
if ann != ui.ALL and anns is not None:
    sel = (
        anns
        if ann == "any"
        else anns[anns["tags"].map(lambda ts: ann[4:] in ts)]
        if ann.startswith("tag:")
        else anns[anns["label"].isna()]
        if ann == "none"
        else anns[anns["label"] == ann]
    )
    f = annotated_filter(f, sel["sample_id"])
b = ui.browse_current(PAGE, run_dir, f, state)
ui.write_url(
    PAGE,
    {
        "task": task,
        "phase": phase,
        "it": it,
        "decision": decision,
        "correct": correct,
        "digits": digits,
        "q": search,
        "ann": ann,
        "sid": state.get("sid"),
    },
)

links.note_missing_sample(PAGE, run_dir, state, want_sid, b["sample_id"])
if b["sample_id"] is None:
    st.info("No sample matches these filters.", icon=":material/search_off:")
    links.reset_button(PAGE, state, KEYS)
    st.stop()

# ---- one sample (left): the question, the model's rationale, its answer against the gold, the filter's decision
# and the audit, so a kept rationale can be checked by eye; then annotating it, its raw output, its prompt, its
# training example and the same question in the other iterations
s = data.get_sample(run_dir, b["sample_id"])
left, right = st.columns([5, 4], gap="large")
with left:
    ui.navigator(PAGE, state, b)

    def _go(sid: int) -> None:
        state["sid"] = str(sid)
        state.pop("goto", None)

    review.keyboard_moves(f"{PAGE}_keys", b["prev_id"], b["next_id"], _go, review.label_setter(run_dir, int(s["id"])))
    if not b["in_filter"]:
        st.warning(
            "This sample was opened by id and lies outside the current filters; Prev/Next move through "
            "the filtered list.",
            icon=":material/call_split:",
        )
    with st.container(border=True):
        c1, c2, c3 = st.columns([2, 2, 1.2], vertical_alignment="center")
        c1.markdown(
            f"**Iteration {s['iteration']}** · {ui.md_escape(s['task'])} · {ui.md_escape(ui.phase_label(s['phase']))}"
        )
        c2.caption(
            ui.md_escape(
                f"question id {s['question_id']} · sample #{s['id']}"
                + (f" · k={s['k']}" if s["k"] else "")
                + (f" · {s['grp']}-digit" if s["grp"] != "all" else "")
            )
        )
        ui.decision_badge(s["decision"], c3)
        st.text(s["reason"])

        st.markdown("**Question**")
        ui.show_text(s["question"])
        if s.get("hint"):
            st.markdown("**Hint given** (rationalization; the gold answer as a hint)")
            ui.show_text(s["hint"])
            st.page_link(
                "app_pages/rationalizations.py",
                label="Compare with the first attempt",
                icon=":material/lightbulb:",
                query_params={"run": ui.run_key(), "sid": s["id"]},
            )
        if s["phase"] == "warm_start":
            st.info(
                "Warm start: a reference rationale written by the task, not by the model. It trained the "
                f"warm-start adapter before iteration 1: {queries.WARM_NOTE}.",
                icon=":material/school:",
            )
            st.markdown("**Reference rationale** (the task's, not the model's)")
        else:
            st.markdown("**Model rationale**")
        ui.show_text(s["rationale"] if s["rationale"] is not None else s["raw_output"])

        a1, a2, a3 = st.columns(3)
        with a1:
            st.caption("Parsed answer")
            ui.show_text(s["answer"] if s["answer"] is not None else "(none)")
        with a2:
            st.caption("Gold answer")
            ui.show_text(s["gold"])
        with a3:
            st.caption("Answer check (the audit's verdict is below)")
            st.markdown(
                (
                    ":green[:material/check_circle:] **right answer** (matches the gold)"
                    if s["correct"]
                    else ":red[:material/cancel:] **wrong answer** (differs from the gold)"
                )
                + (" · kept for training" if s["kept"] else "")
            )

        hints.show_audit(s)

    with st.expander("Annotate this sample", icon=":material/edit_note:", expanded=True):
        review.annotate(run_dir, int(s["id"]), key=f"{PAGE}_ann")
    with st.expander("Raw model output" if s["phase"] != "warm_start" else "Reference text as stored"):
        ui.show_text(s["raw_output"])
    with st.expander("Full prompt (few-shot prefix included)"):
        ui.show_text(s["prompt"], height=400)
    if s.get("train_example"):
        with st.expander("Training example as stored"):
            te = s["train_example"]
            st.caption(
                ui.md_escape(
                    f"trains adapter {te['iteration']} · source {te['source']}"
                    if te["iteration"]
                    else f"trains the warm-start adapter and every later one · source {te['source']}"
                )
            )
            ui.show_text(te["prompt"], "prompt")
            ui.show_text(te["completion"], "completion (the loss is on these tokens)")
    with st.expander("This question across iterations"):
        hist = data.question_history(run_dir, s["task"], s["question_id"])
        st.dataframe(hist, hide_index=True, width="stretch")
        others = [int(x) for x in hist["id"] if int(x) != s["id"]]
        if others:

            def _open(key: str = f"{PAGE}_hist") -> None:
                state["sid"] = str(st.session_state[key])

            st.selectbox(
                "Open sample #", others, index=None, key=f"{PAGE}_hist", on_change=_open, placeholder="pick a sample id"
            )

# ---- the filtered samples as a table around the one shown (a click opens a row), and all of them as a download
with right:
    pos = b["position"] or 1
    offset = (pos - 1) // TABLE_ROWS * TABLE_ROWS
    df = data.samples_page(
        run_dir,
        f,
        offset,
        TABLE_ROWS,  # read around the sample shown (keyset)
        anchor=b["sample_id"] if b["in_filter"] else None,
        anchor_position=b["position"],
    )
    st.caption(
        f"Rows {offset + 1:,}–{offset + len(df):,} of {b['total']:,} (click a row to open it). "
        + review.KEYS_HELP
        + " "
        + review.LABEL_KEYS_HELP
    )
    ids = [int(x) for x in df["id"]]

    def _pick(key: str = f"{PAGE}_table_{offset}") -> None:
        sel = st.session_state[key].selection
        rows = list(sel.rows) or [c[0] for c in sel.cells]  # a click on a cell opens its row too
        if rows and rows[0] < len(ids):
            state["sid"] = str(ids[rows[0]])

    view = df[["id", "answer", "gold", "decision", "iteration", "task", "question"]].rename(columns={"iteration": "it"})
    st.dataframe(
        view,
        hide_index=True,
        width="stretch",
        height=35 * (len(df) + 1) + 3,
        on_select=_pick,
        selection_mode=["single-row", "single-cell"],
        key=f"{PAGE}_table_{offset}",
        column_config={
            "question": st.column_config.TextColumn(width="large"),
            "id": st.column_config.NumberColumn(format="%d", width="small"),
            "it": st.column_config.NumberColumn(width="small", help="iteration (0 = few-shot baseline)"),
        },
    )
    st.caption(
        f"Download the {min(b['total'], exports.EXPORT_LIMIT):,} samples of these filters"
        + (f" (the first {exports.EXPORT_LIMIT:,} of {b['total']:,})" if b["total"] > exports.EXPORT_LIMIT else "")
    )
    review.downloads(
        lambda: data.filtered_samples(run_dir, f, annotations=anns)[0],
        review.safe_stem(run_dir.name, "samples", *(v for v in (task, phase, it, decision) if v != ui.ALL)),
        f"{PAGE}_dl",
        "the filtered samples",
    )
