"""Accuracy: per-evaluation accuracy, right-and-faithful accuracy and rationale share (one or several runs), the
warm start and the direct-answer baseline, digit-length breakdown, changes between evaluations, training loss."""

from __future__ import annotations

import html

import plotly.graph_objects as go
import streamlit as st

from star_core import queries, stats
from star_core.tasks import task_names
from star_dashboard import data, flags, review, ui
from star_dashboard.charts import CUSTOM, HOVER, error_bars, in_percent, interval_words, markers, tick, x_axis

PAGE = "acc"
PALETTE = ["#1c7ed6", "#e8590c", "#2f9e44", "#9c36b5", "#e03131", "#0c8599", "#f08c00", "#5c940d"]

ui.page_header(
    "Accuracy",
    "Accuracy after each iteration (iteration 0 = the few-shot baseline, before any "
    "training; ◆ = after the supervised warm start, when the run has one), per task and split, with its "
    "95 % Wilson interval as error bars; the same for right-and-faithful answers and for the share of "
    "outputs that show a rationale; whether a change between evaluations is significant (paired exact "
    "McNemar test on the same questions); overlay runs to compare them (e.g. with and without "
    "rationalization), and the training loss of each iteration.",
)


# ---- the runs shown: the current run plus any overlaid in the sidebar (kept in the URL as ?ov=), the measure
# the curves show, and the paper's reference lines; each run gets a unique label for the legends
linked_overlays = [k for k in str(st.query_params.get("ov", "")).split(",") if k]  # before the URL is rewritten
run_dir = ui.current_run()
ui.run_heading(run_dir)

runs = [r for r in st.session_state.get("_runs", []) if r["status"] not in ("corrupt", "empty")]
keys = [r["key"] for r in runs]
names = {r["key"]: f"{r['name']} ({r['status']})" for r in runs}
cur = ui.run_key()
with st.sidebar:
    st.subheader("Compare")
    ss = st.session_state
    if ss.get(f"_{PAGE}_cur") != cur or f"{PAGE}_runs" not in ss or linked_overlays != ss.get(f"_{PAGE}_ov"):
        base = [cur] if cur in keys else keys[:1]
        ss[f"{PAGE}_runs"] = base + [k for k in linked_overlays if k in keys and k not in base]
        ss[f"_{PAGE}_cur"] = cur
    else:
        ss[f"{PAGE}_runs"] = [k for k in ss[f"{PAGE}_runs"] if k in keys]
    picked = st.multiselect("Runs to overlay", keys, key=f"{PAGE}_runs", format_func=lambda k: names.get(k, k))
    overlays = [k for k in picked if k != cur]
    ss[f"_{PAGE}_ov"] = overlays
    if not ss.get("_bad_run"):
        ui.set_params({"ov": ",".join(overlays)})  # the overlaid runs are in the URL
    measure = st.radio(
        "Measure",
        list(queries.MEASURES),
        key=f"{PAGE}_measure",
        format_func=lambda m: queries.MEASURES[m],
        help="accuracy: the right answer; right and faithful: the right answer with every audited "
        "step holding and at least one shown; shows a rationale: outputs whose audit verdict is "
        "not 'no rationale' (right or wrong)",
    )
    show_ref = st.toggle(
        "Paper's GPT-J numbers",
        value=True,
        key=f"{PAGE}_ref",
        help="Dashed lines: CommonsenseQA dev and GSM8K test results of the paper (GPT-J 6B)",
    )
dirs = []
for k in picked or [cur]:
    try:
        dirs.append(data.resolve_run(k, ui.roots()))
    except queries.RunUnavailable:
        continue
if not dirs:
    dirs = [run_dir]
for d in dirs:
    if flags.audit_banner(d, f"for {d.name}" if len(dirs) > 1 else ""):
        break
labels = {}
for d in dirs:
    base = next((r["name"] for r in runs if r["path"] == str(d)), d.name)
    labels[str(d)] = base if base not in labels.values() else f"{base} [{d.parent.name}]"

# ---- the measure's curves, one chart per task and split: every run overlaid, each evaluation with its 95 %
# interval, the warm start's evaluation (◆) and the direct-answer baseline (dotted) where the run has them, so a
# gain can be told apart from noise, from supervision and from the rationale format
allm = data.measures_frame(dirs)
met = allm[allm["measure"] == measure]
if allm.empty:
    st.info(
        "No accuracy yet: metrics are written when an iteration's evaluation finishes "
        "(iteration 0 evaluates the few-shot baseline first).",
        icon=":material/hourglass_empty:",
    )
elif met.empty:
    st.info(
        f"No '{queries.MEASURES[measure]}' numbers for these runs: their outputs were audited under audit version 1, "
        "which took a bare answer for a faithful rationale, so only their accuracy is given.",
        icon=":material/info:",
    )
if not met.empty:
    met = in_percent(met)
    direct = met[met["phase"] == "direct_eval"]
    met = met[met["phase"].isin(queries.CHAINED_PHASES)]
    combos = met[["task", "split"]].drop_duplicates().sort_values(["task", "split"]).values.tolist()
    cols = st.columns(min(len(combos), 2) or 1, gap="large")
    for n, (task, split) in enumerate(combos):
        sub = met[(met["task"] == task) & (met["split"] == split) & (met["grp"] == "all")]
        xs = sorted(sub["point"].unique().tolist()) or [0]
        x0, x1 = xs[0], max(xs[-1], xs[0] + 1)
        fig = go.Figure()
        for j, (rd, g) in enumerate(sub.groupby("run_dir", sort=False)):
            g = g.sort_values("point")
            color = PALETTE[j % len(PALETTE)]
            fig.add_scatter(
                x=g["point"],
                y=g["pct"],
                mode="lines+markers",
                name=html.escape(labels[rd]),
                line=dict(color=color, width=3),
                marker=markers(g),
                error_y=error_bars(g),
                customdata=g[CUSTOM].values,
                hovertemplate=HOVER + "<extra>%{fullData.name}</extra>",
            )
            d = direct[
                (direct["run_dir"] == rd)
                & (direct["task"] == task)
                & (direct["split"] == split)
                & (direct["grp"] == "all")
            ]
            for r in d.itertuples():
                fig.add_scatter(
                    x=[x0, x1],
                    y=[r.pct, r.pct],
                    mode="lines",
                    meta="direct",
                    name=html.escape(f"{labels[rd]}: direct answer, no rationale {r.pct:.1f}"),
                    line=dict(color=color, dash="dot", width=1.5),
                    hovertemplate=html.escape(
                        f"direct answer (few-shot, no rationale): {r.pct:.1f}% "
                        f"({r.k}/{r.n}), 95% interval {r.low_pct:.1f}–"
                        f"{r.high_pct:.1f}%"
                    )
                    + "<extra></extra>",
                )
        if show_ref and measure == "accuracy":
            for (lab, v), dash in zip(
                queries.PAPER_REFERENCE.get((task, split), {}).items(), ("dot", "dash", "longdash")
            ):
                fig.add_scatter(
                    x=[x0, x1],
                    y=[v, v],
                    mode="lines",
                    name=f"the paper's number, not this run: {lab} {v}",
                    line=dict(color="#868e96", dash=dash, width=1.5),
                    hoverinfo="name",
                    meta="reference",
                )
        fig.update_layout(
            title=html.escape(f"{task} · {split} split · {queries.MEASURES[measure]}"),
            height=380,
            margin=dict(l=10, r=10, t=40, b=10),
            xaxis=x_axis(sub["point"]),
            yaxis=dict(title=f"{queries.MEASURES[measure]} %", range=[0, 101]),
            showlegend=True,
            legend=dict(orientation="h", y=-0.25),
        )
        with cols[n % len(cols)]:
            st.plotly_chart(ui.phone_safe(fig), key=f"{PAGE}_curve_{task}_{split}")
    if (met["phase"] == "warm_eval").any():
        st.caption(
            "◆ warm start: the model after the warm start, " + queries.WARM_NOTE + ". Iteration 1 samples with "
            "it, so the gain from there on is STaR's, and the gain up to it is supervision's."
        )
    if not direct.empty:
        st.caption(
            "Dotted: the direct-answer baseline, the few-shot model prompted with bare answers "
            "(`47 + 38 = 85. The answer is 85.`, no rationale), so that the rationale format can be told "
            "apart from the arithmetic."
        )

    # ---- the three measures of the first run side by side: a right answer is not yet right reasoning, and a run
    # can gain accuracy while its rationales fail the audit or disappear
    st.subheader("Accuracy, right and faithful, and rationale share")
    first = allm[
        (allm["run_dir"] == str(dirs[0])) & (allm["grp"] == "all") & allm["phase"].isin(queries.CHAINED_PHASES)
    ]
    first = in_percent(first)
    pairs = first[["task", "split"]].drop_duplicates().sort_values(["task", "split"]).values.tolist()
    cols = st.columns(min(len(pairs), 2) or 1, gap="large")
    for n, (task, split) in enumerate(pairs):
        fig = go.Figure()
        sub = first[(first["task"] == task) & (first["split"] == split)]
        for j, (m, words) in enumerate(queries.MEASURES.items()):
            g = sub[sub["measure"] == m].sort_values("point")
            if not g.empty:
                fig.add_scatter(
                    x=g["point"],
                    y=g["pct"],
                    mode="lines+markers",
                    name=words,
                    marker=markers(g),
                    line=dict(color=PALETTE[j], width=2, dash=("solid", "dash", "dot")[j]),
                    error_y=error_bars(g),
                    customdata=g[CUSTOM].values,
                    hovertemplate=HOVER + f"<extra>{words}</extra>",
                )
        fig.update_layout(
            title=html.escape(f"{labels[str(dirs[0])]} · {task} · {split}"),
            height=340,
            margin=dict(l=10, r=10, t=40, b=10),
            xaxis=x_axis(sub["point"]),
            yaxis=dict(title="%", range=[0, 101]),
            legend=dict(orientation="h", y=-0.3),
        )
        with cols[n % len(cols)]:
            st.plotly_chart(ui.phone_safe(fig), key=f"{PAGE}_measures_{task}_{split}")
    st.caption(
        "Right and faithful: the right answer with the audit verdict 'faithful' (every checked step holds "
        "and the rationale shows one). Shows a rationale: outputs, right or wrong, whose audit verdict is not "
        "'no rationale' (a bare answer or the question restated); an output without an answer is not "
        "audited and counts as showing one. Runs audited under audit version 1 have accuracy only."
    )

    # ---- arithmetic by digit count: where the model learns (and the curriculum's frontier, when the run has
    # one), since a total over digit counts hides which lengths moved
    ar = met[met["task"].isin(task_names("digit_groups")) & (met["grp"] != "all")]
    if not ar.empty:
        st.subheader("Arithmetic by number of digits")
        ar_run = (
            st.selectbox(
                "Run", list(dict.fromkeys(ar["run_dir"])), format_func=lambda d: labels.get(d, d), key=f"{PAGE}_ar_run"
            )
            if ar["run_dir"].nunique() > 1
            else ar["run_dir"].iloc[0]
        )
        a = ar[ar["run_dir"] == ar_run]
        split = "eval" if "eval" in set(a["split"]) else a["split"].iloc[0]
        a = a[a["split"] == split].copy()
        a["digits"] = a["grp"].astype(int)
        c1, c2 = st.columns(2, gap="large")
        fig = go.Figure()
        for j, (dg, g) in enumerate(a.sort_values("digits").groupby("digits", sort=True)):
            g = g.sort_values("point")
            fig.add_scatter(
                x=g["point"],
                y=g["pct"],
                mode="lines+markers",
                name=f"{dg} digits",
                marker=markers(g),
                line=dict(color=PALETTE[j % len(PALETTE)]),
                error_y=error_bars(g),
                customdata=g[CUSTOM].values,
                hovertemplate=HOVER + f"<extra>{dg} digits</extra>",
            )
        fig.update_layout(
            height=360,
            margin=dict(l=10, r=10, t=30, b=10),
            title=html.escape(f"{split} {queries.MEASURES[measure]} per digit count"),
            xaxis=x_axis(a["point"], "iteration"),
            yaxis=dict(title=f"{queries.MEASURES[measure]} %", range=[0, 101]),
        )
        c1.plotly_chart(ui.phone_safe(fig), key=f"{PAGE}_digits")
        piv = a.pivot_table(index="digits", columns="point", values="pct", aggfunc="mean").sort_index()
        a["kn"] = [stats.describe(int(k), int(n)) for k, n in zip(a["k"], a["n"])]
        kn = a.pivot_table(index="digits", columns="point", values="kn", aggfunc="first").reindex_like(piv)
        heat = go.Figure(
            go.Heatmap(
                z=piv.values,
                x=[tick(c) for c in piv.columns],
                y=[str(i) for i in piv.index],
                colorscale="Blues",
                zmin=0,
                zmax=100,
                text=piv.round(0).values,
                texttemplate="%{text}",
                customdata=kn.values,
                hovertemplate="%{y} digits, %{x}: %{customdata}<extra></extra>",
                colorbar=dict(title="%"),
            )
        )
        heat.update_layout(
            height=360,
            margin=dict(l=10, r=10, t=30, b=10),
            title="digits × iteration",
            xaxis=dict(title="iteration", type="category"),
            yaxis_title="digits",
        )
        c2.plotly_chart(ui.phone_safe(heat), key=f"{PAGE}_heat")
        st.caption(
            "Cells: accuracy in percent, each with its own n (hover for k/n and the 95 % interval); the shade is "
            "the value, not a change. For reference, **the paper's numbers, not this run's**: without "
            "rationalization the paper's GPT-J learned one digit length at a time; with it, 2-digit accuracy "
            "jumped from under 1 % to 32 % in one iteration."
        )
        frontiers = ui.guard(data.curriculum_frontiers, ar_run)
        if frontiers:
            st.markdown("**Digit curriculum**: the frontier each iteration trained up to")
            st.dataframe(
                [
                    {
                        "iteration": it,
                        "frontier (digits)": r["frontier"],
                        "measured on": queries.eval_label(r["measured_on"]["iteration"], r["measured_on"]["phase"]),
                        "questions drawn by digits": ", ".join(f"{d}: {n}" for d, n in r.get("questions", {}).items()),
                    }
                    for it, r in frontiers.items()
                ],
                hide_index=True,
            )
            st.caption(
                f"The frontier is one digit count past the largest solved right and faithful at the rate "
                f"{next(iter(frontiers.values())).get('rate')} on the evaluation before; samples at temperature and "
                "rationalization apply at the frontier only. Evaluations cover every digit count."
            )

if not allm.empty:
    # ---- did STaR change each digit count? one sentence per group of the first run shown, its paired test in it
    # The model STaR starts from (the warm-started one, else the few-shot one) against the last iteration: a
    # per-group sentence, because a total can hide opposite moves of its groups.
    effects = [e for e in ui.guard(data.star_effect, dirs[0]) if e.measure == "faithful_accuracy"]
    if effects:
        st.subheader("Did STaR change each digit count?")
        for e in effects:
            icon = ":green[:material/check_circle:]" if e.significant else ":gray[:material/remove:]"
            st.markdown(icon + " " + ui.md_escape(e.sentence()))
        st.caption(
            "Right and faithful: a right answer whose every audited step holds. Each question is paired with itself "
            "in the two evaluations (exact McNemar on the questions that changed); a sentence says significant only "
            f"when p < {stats.ALPHA}. `star summary` prints the same sentences, for right answers too."
        )
    # ---- changes between evaluations: each question paired with itself (gained, lost, exact McNemar), because
    # two accuracies with overlapping intervals can still differ on the same questions
    st.subheader("Changes between evaluations")
    ch = data.changes_frame(dirs)
    if ch.empty:
        st.caption("No change yet: it needs two evaluated iterations.")
    else:
        ch = ch.assign(
            run=ch["run_dir"].map(labels),
            evaluation=[queries.eval_label(i, ph) for i, ph in zip(ch["iteration"], ch["phase"])],
            compared_with=[queries.eval_label(i, ph) for i, ph in zip(ch["since"], ch["since_phase"])],
        )
        top = ch[ch["grp"] == "all"]
        for r in top.itertuples(index=False):
            icon = ":green[:material/check_circle:]" if r.significant else ":gray[:material/remove:]"
            what = (
                f"iteration {r.iteration} vs {r.since}"
                if r.phase == r.since_phase == "eval"
                else f"{r.evaluation} vs {r.compared_with}"
            )
            st.markdown(
                icon
                + " "
                + ui.md_escape(
                    f"{r.run} · {r.task} {r.split}, {what}: {stats.describe_change(int(r.lost), int(r.gained))}"
                )
            )
        view = ch.assign(significant=ch["significant"].map({True: "yes", False: "no"}))[
            ["gained", "lost", "p_value", "significant", "pairs", "evaluation", "compared_with", "task", "split", "grp"]
            + (["run"] if len(dirs) > 1 else [])
        ]
        st.dataframe(
            view,
            hide_index=True,
            width="stretch",
            column_config={
                "grp": st.column_config.TextColumn("group", help="digit count for arithmetic; all = every question"),
                "gained": st.column_config.NumberColumn(help="questions wrong before and right now"),
                "lost": st.column_config.NumberColumn(help="questions right before and wrong now"),
                "p_value": st.column_config.NumberColumn(
                    "p (McNemar)", format="%.3g", help="two-sided exact binomial test on gained vs lost"
                ),
                "significant": st.column_config.TextColumn(f"significant (p < {stats.ALPHA})"),
            },
        )
        st.caption(
            "Each change pairs every evaluation question with its answer one evaluation before (the "
            "iteration before, or the warm-started model for iteration 1). Only the "
            "questions that changed count (gained, lost); with no real change each would go either way "
            "with probability ½. " + interval_words(top["pairs"]) + " A row is marked significant only "
            f"when p < {stats.ALPHA}."
        )

    # ---- every number of the charts in one table (k of n and the interval), for reading off or copying
    with st.expander("Table of every measure (with 95 % Wilson intervals)"):
        cell = allm.assign(
            label=allm["run_dir"].map(labels),
            measure=allm["measure"].map(queries.MEASURES),
            column=[
                ("direct answer" if ph == "direct_eval" else tick(p)) for ph, p in zip(allm["phase"], allm["point"])
            ],
            cell=[stats.describe(int(k), int(n)) for k, n in zip(allm["k"], allm["n"])],
        )
        heads = cell.drop_duplicates("column")
        order = heads.assign(direct=heads["phase"] == "direct_eval").sort_values(["direct", "point"])["column"]
        tbl = cell.pivot(index=["label", "task", "split", "grp", "measure"], columns="column", values="cell")
        st.dataframe(tbl[list(order)].reset_index(), hide_index=True, width="stretch")

# ---- the training loss of each iteration of the first run, and the final loss per iteration of every run: did
# training on the kept rationales converge
st.subheader("Training loss")
loss = data.losses_frame(dirs)
if loss.empty:
    st.info(
        "No training losses yet: they are stored when an iteration's training finishes.",
        icon=":material/hourglass_empty:",
    )
else:
    c1, c2 = st.columns([3, 2], gap="large")
    lr = loss[loss["run_dir"] == str(dirs[0])]
    fig = go.Figure()
    its = sorted(lr["iteration"].unique())
    for j, it in enumerate(its):
        g = lr[lr["iteration"] == it]
        shade = 0.35 + 0.65 * (j + 1) / max(len(its), 1)
        fig.add_scatter(
            x=g["step"],
            y=g["loss"],
            mode="lines",
            name="warm start (supervised)" if it == 0 else f"iteration {it}",
            line=dict(color=f"rgba(28,126,214,{shade:.2f})", width=2),
        )
    fig.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="optimizer step",
        yaxis_title="loss",
        title=html.escape(f"{labels.get(str(dirs[0]), '')}: loss per iteration (a fresh adapter each time)"),
    )
    c1.plotly_chart(ui.phone_safe(fig), key=f"{PAGE}_loss")
    final = loss.sort_values("step").groupby(["run_dir", "iteration"], as_index=False).last()
    f2 = go.Figure()
    for j, (rd, g) in enumerate(final.groupby("run_dir", sort=False)):
        f2.add_scatter(
            x=g["iteration"],
            y=g["loss"],
            mode="lines+markers",
            name=html.escape(labels.get(rd, rd)),
            line=dict(color=PALETTE[j % len(PALETTE)]),
        )
    f2.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=30, b=10),
        title="final loss of each iteration",
        xaxis=dict(title="iteration", dtick=1),
        yaxis_title="loss",
        legend=dict(orientation="h", y=-0.3),
    )
    c2.plotly_chart(ui.phone_safe(f2), key=f"{PAGE}_final_loss")

# ---- how far people's labels agree with the audit's verdicts (Cohen's kappa)
review.agreement_view(dirs[0], labels.get(str(dirs[0]), dirs[0].name))
