"""Filter decisions: what happened to every sample of an iteration, and how exploration changes."""

from __future__ import annotations

import html

import plotly.graph_objects as go
import streamlit as st

from star_core import queries, stats
from star_dashboard import data, reasons, ui

PAGE = "dec"
COLORS = {d: hexa for d, (_, hexa) in ui.DECISION_COLOR.items()}

# ---- the run, its warm-start examples (reference rationales: supervised, never sampled or filtered), and the task
# and iteration every section below shows
ui.page_header(
    "Filter decisions",
    "Per iteration: how many train questions were sampled, how many answers were "
    "right, how many wrong ones were rescued by a hinted retry, what was rejected and why, and how "
    "many examples trained the next model. Click a bar or a button to read those samples.",
)
ui.plain_url()
run_dir = ui.current_run()
ui.run_heading(run_dir)
fac = data.facets(run_dir)
counts = data.decision_counts(run_dir)
n_warm = int(counts.loc[counts["phase"] == "warm_start", "n"].sum())
if n_warm:
    with st.container(border=True):
        st.markdown(ui.warm_start_note(n_warm) + " They were not sampled or filtered: each is kept as `reference`.")
        if st.button(f"Open the {n_warm} reference rationales", key=f"{PAGE}_open_warm"):
            st.switch_page(
                "app_pages/rationales.py", query_params={"run": ui.run_key(), "it": "0", "phase": "warm_start"}
            )
train_its = sorted(counts.loc[counts["phase"].isin(["sample", "rationalize"]), "iteration"].unique().tolist())
if not train_its:
    st.info(
        "No training-split samples yet: iteration 0 only evaluates the few-shot baseline. "
        "The filter's numbers appear once iteration 1 has sampled.",
        icon=":material/hourglass_empty:",
    )
    st.stop()

c1, c2 = st.columns(2)
tasks = fac["tasks"]
task = c1.selectbox("Task", [ui.ALL] + tasks, key=f"{PAGE}_task") if len(tasks) > 1 else ui.ALL
task_arg = None if task == ui.ALL else task
if task_arg:
    counts = counts[counts["task"] == task_arg]
iteration = c2.selectbox(
    "Iteration",
    train_its,
    index=len(train_its) - 1,
    key=f"{PAGE}_it",
    help="Iteration i samples with model i-1, keeps correct and rationalized answers, and trains adapter i on them.",
)


def open_samples(it: int, phase: str, decision: str | None) -> None:
    params = {"run": ui.run_key(), "it": str(it), "phase": phase}
    if decision:
        params["decision"] = decision
    if task_arg:
        params["task"] = task_arg
    st.switch_page("app_pages/rationales.py", query_params=params)


# ---- the funnel of one iteration: from samples to the training set, and why samples were not kept, because what
# the filter keeps (with the warm start's references, and earlier kept examples when they accumulate) is what
# the next model learns from
fn = data.funnel(run_dir, iteration, task_arg)
m = st.columns(7)
m[0].metric("Sampled", fn["sampled"], help="first attempts: train questions × samples per question, plain prompt")
m[1].metric("Right, kept", fn["correct"], help="first attempts with the right answer, kept by the filter")
m[2].metric("Not kept", fn["failed"], help="first attempts the filter did not keep (wrong answer or rejected)")
m[3].metric("Retried with the hint", fn["retried"])
m[4].metric(
    "Rescued (rationalized)", fn["rationalized"], help="hinted retries with the right answer; kept, hint removed"
)
m[5].metric("Kept for training", fn["kept"], help="right first attempts + rescued retries (samples, not questions)")
m[6].metric(
    "Trained on",
    fn["trained"] if fn["trained"] is not None else "–",
    help="the number of examples this iteration's adapter was trained on",
)
st.caption(
    "These count samples of this iteration. The newly solved and lost numbers further down count questions, "
    "compared with the iteration before."
)


def sankey(fn: dict) -> go.Figure:
    labels, colors, idx = [], [], {}

    def node(key: str, label: str, color: str = "#868e96") -> int:
        if key not in idx:
            idx[key] = len(labels)
            labels.append(label)
            colors.append(color)
        return idx[key]

    src, dst, val, lcol = [], [], [], []

    def link(a: int, b: int, v: int, color: str) -> None:
        if v:
            src.append(a)
            dst.append(b)
            val.append(v)
            lcol.append(color)

    s0 = node("sampled", f"sampled {fn['sampled']}", "#495057")
    trained = node("trained", f"training set {fn['kept']}", "#1c7ed6")
    retried = node("retried", f"retried with hint {fn['retried']}", "#74c0fc") if fn["retried"] else None
    first_to_retry: dict[str, int] = {}
    for (first, _), n in fn["retry_from"].items():
        first_to_retry[first] = first_to_retry.get(first, 0) + n
    for d, n in sorted(fn["sample_decisions"].items(), key=lambda kv: -kv[1]):
        c = COLORS.get(d, ui.OTHER_COLOR[1])
        a = node(f"s:{d}", f"{html.escape(d)} {n}", c)  # Plotly draws <a href> in labels: escape
        link(s0, a, n, c + "80")
        if d == "correct":
            link(a, trained, fn["correct"], c + "80")
        elif retried is not None:
            link(a, retried, first_to_retry.get(d, 0), "#74c0fc80")
    if retried is not None:
        unknown = first_to_retry.get("unknown", 0)
        if unknown:
            link(node("s:unknown", f"first attempt not stored {unknown}"), retried, unknown, "#74c0fc80")
        for d, n in sorted(fn["retry_decisions"].items(), key=lambda kv: -kv[1]):
            c = COLORS.get(d, ui.OTHER_COLOR[1])
            lab = f"{d} {n}" if d == "rationalized" else f"rejected: {html.escape(d)} {n}"
            a = node(f"r:{d}", lab, c)
            link(retried, a, n, c + "80")
            if d == "rationalized":
                link(a, trained, fn["rationalized"], c + "80")
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node=dict(label=labels, color=colors, pad=18, thickness=16),
            link=dict(source=src, target=dst, value=val, color=lcol),
            textfont=dict(size=13, color="#212529"),
        )
    )
    fig.update_layout(
        height=380,
        margin=dict(l=10, r=10, t=30, b=10),
        title=f"Iteration {fn['iteration']}: from samples to the training set",
    )
    return fig


left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(ui.phone_safe(sankey(fn)), key=f"{PAGE}_sankey")
with right:
    st.markdown("**Why samples were not kept, by kind**")
    reasons.show(
        reasons.group(fn["sample_decisions"], fn["retry_decisions"]),
        lambda phase, d: open_samples(iteration, phase, d),
        f"{PAGE}_kind",
    )
    st.markdown(f"**Every sample of iteration {iteration}, by decision**")
    for phase, dec in (("sample", fn["sample_decisions"]), ("rationalize", fn["retry_decisions"])):
        if not dec:
            continue
        st.caption(queries.PHASES[phase])
        with st.container(horizontal=True):
            for d, n in sorted(dec.items(), key=lambda kv: -kv[1]):
                if st.button(f"{ui.md_escape(d)} · {n}", key=f"{PAGE}_open_{phase}_{d}"):
                    open_samples(iteration, phase, d)
    frequent = data.top_reasons(run_dir, iteration, task_arg, 12)
    if not frequent.empty:
        with st.expander("The most frequent reasons, word for word"):
            st.dataframe(
                frequent[["n", "decision", "phase", "reason"]],
                hide_index=True,
                width="stretch",
                column_config={"reason": st.column_config.TextColumn(width="large")},
            )

# ---- decisions per iteration (click a bar to read those samples): how the filter's verdicts shift as the model
# changes
st.subheader("Decisions per iteration")
st.caption("Click a bar segment to open those samples on the Rationales page.")
tr = counts[counts["phase"].isin(["sample", "rationalize"])]
agg = tr.groupby(["iteration", "phase", "decision"], as_index=False)["n"].sum()
fig = go.Figure()
meta: list[tuple[str, str]] = []
for phase in ("sample", "rationalize"):
    sub = agg[agg["phase"] == phase]
    for d in sorted(sub["decision"].unique(), key=lambda x: (x not in ("correct", "rationalized"), x)):
        dd = sub[sub["decision"] == d]
        fig.add_bar(
            x=[f"{i}" for i in dd["iteration"]],
            y=dd["n"].tolist(),
            name=f"{queries.PHASES[phase]}: {html.escape(d)}",
            marker_color=COLORS.get(d, ui.OTHER_COLOR[1]),
            offsetgroup=phase,
            marker_pattern_shape="/" if phase == "rationalize" else "",
            customdata=[[phase, d, int(i)] for i in dd["iteration"]],
            hovertemplate="iteration %{customdata[2]}<br>%{fullData.name}: %{y}<extra></extra>",
        )
        meta.append((phase, d))
fig.update_layout(
    barmode="stack",
    height=380,
    margin=dict(l=10, r=10, t=10, b=10),
    xaxis_title="iteration",
    xaxis=dict(type="category"),
    yaxis_title="samples",
    legend=dict(orientation="h", y=-0.25),
    clickmode="event+select",
)
event = st.plotly_chart(ui.phone_safe(fig), key=f"{PAGE}_bars", on_select="rerun", selection_mode="points")
pts = (event.selection.points if event and getattr(event, "selection", None) else []) or []
if pts:  # customdata carries (phase, decision, iteration): x is offset by the grouped bars
    cd = pts[0].get("customdata")
    if isinstance(cd, (list, tuple)) and len(cd) == 3 and (cd[0], cd[1]) in meta:
        open_samples(int(cd[2]), cd[0], cd[1])

# ---- training examples per iteration, by source (right first attempts, rescued retries, warm-start references):
# how much each adapter learned from
c1, c2 = st.columns(2, gap="large")
with c1:
    st.subheader("Training examples per iteration")
    tc = data.train_counts(run_dir)
    tc = tc[(tc["iteration"] > 0) | (tc["reference"] > 0)]
    f2 = go.Figure()
    f2.add_bar(x=tc["iteration"], y=tc["correct"], name="correct (first attempt)", marker_color=COLORS["correct"])
    f2.add_bar(
        x=tc["iteration"], y=tc["rationalized"], name="rationalized (hint removed)", marker_color=COLORS["rationalized"]
    )
    if n_warm:
        f2.add_bar(
            x=tc["iteration"],
            y=tc["reference"],
            name="reference (warm start: supervised)",
            marker_color=COLORS["reference"],
            marker_pattern_shape="x",
        )
    f2.add_scatter(
        x=tc["iteration"],
        y=tc["trained"],
        name="trained on",
        mode="markers+lines",
        marker=dict(symbol="diamond", size=9, color="#212529"),
    )
    f2.update_layout(
        barmode="stack",
        height=330,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title="iteration",
        xaxis=dict(dtick=1),
        legend=dict(orientation="h", y=-0.3),
    )
    st.plotly_chart(ui.phone_safe(f2), key=f"{PAGE}_train")
    st.caption(
        "Each iteration trains a fresh adapter from the base model on that iteration's kept set only "
        "(the set is not accumulated)"
        + (", with the warm start's reference examples (iteration 0: the warm start itself)." if n_warm else ".")
    )

# ---- exploration: questions newly solved and lost per iteration, each pair tested (exact McNemar), because STaR
# stalls once few new questions are solved (B-STaR)
with c2:
    st.subheader("Newly solved and lost questions")
    trans = data.solve_transitions(run_dir, task_arg)
    split = st.radio(
        "Split",
        ["train", "eval"],
        horizontal=True,
        key=f"{PAGE}_split",
        help="train: the previous model's plain first attempts; eval: the evaluation split",
    )
    tt = (
        trans[trans["split"] == split]
        .groupby("iteration", as_index=False)[["questions", "solved", "newly_solved", "lost", "ever_solved"]]
        .sum(min_count=1)
    )
    tt["p_value"] = [
        stats.mcnemar(int(lo), int(ga)) if lo == lo and ga == ga else float("nan")
        for lo, ga in zip(tt["lost"], tt["newly_solved"])
    ]
    sig = [stats.significant(p) for p in tt["p_value"]]
    f3 = go.Figure()
    f3.add_bar(
        x=tt["iteration"],
        y=tt["newly_solved"],
        name="newly solved (coloured when p < 0.05)",
        marker_color=[COLORS["correct"] if s_ else "#adb5bd" for s_ in sig],
        customdata=tt["p_value"],
        hovertemplate="newly solved %{y}, paired p = %{customdata:.2g}<extra></extra>",
    )
    f3.add_bar(
        x=tt["iteration"],
        y=-tt["lost"],
        name="lost (solved before, not now)",
        marker_color=[COLORS["wrong"] if s_ else "#ced4da" for s_ in sig],
        customdata=tt[["lost", "p_value"]].values,
        hovertemplate="lost %{customdata[0]}, paired p = %{customdata[1]:.2g}<extra></extra>",
    )
    f3.add_scatter(x=tt["iteration"], y=tt["solved"], name="solved", mode="markers+lines", marker_color="#212529")
    f3.add_scatter(
        x=tt["iteration"], y=tt["ever_solved"], name="ever solved", mode="lines", line=dict(dash="dot", color="#868e96")
    )
    f3.update_layout(
        barmode="relative",
        height=330,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title="iteration",
        xaxis=dict(dtick=1),
        legend=dict(orientation="h", y=-0.3),
    )
    st.plotly_chart(ui.phone_safe(f3), key=f"{PAGE}_trans")
    st.caption(
        "Exploration fades when few questions are newly solved per iteration (B-STaR). The first "
        "iteration of a split has nothing to compare with. Each iteration's newly solved and lost questions "
        "are tested against each other (exact McNemar, paired on the same questions); the bars are grey "
        "unless p < 0.05."
    )
    show = tt[["iteration", "newly_solved", "lost", "p_value", "solved", "questions", "ever_solved"]]
    st.dataframe(
        show,
        hide_index=True,
        width="stretch",
        column_config={"p_value": st.column_config.NumberColumn("p (McNemar)", format="%.3g")},
    )

# ---- every decision count in one table, for reading off or copying
with st.expander("All decision counts"):
    piv = counts.pivot_table(
        index=["iteration", "phase"], columns="decision", values="n", aggfunc="sum", fill_value=0
    ).reset_index()
    st.dataframe(piv, hide_index=True, width="stretch")
