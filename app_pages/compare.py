"""Compare: one question under two runs, or under two iterations of one run, side by side."""

from __future__ import annotations

import streamlit as st

from star_core import queries
from star_core.queries import comparison, exports
from star_dashboard import data, flags, hints, links, review, ui

PAGE = "cmp"
KEYS = ("ra", "ia", "rb", "ib", "task", "phase", "f", "qid", "sid")

# ---- the runs that can be compared (the readable ones); side A starts on the run picked in the sidebar
ui.page_header(
    "Compare",
    "One question under two runs, or under two iterations of one run: both rationales with "
    "their differences marked, both decisions and both audits. Questions are matched by question id.",
)
runs = [r for r in (st.session_state.get("_runs") or []) if r["status"] not in ("corrupt", "empty")]
if not runs:
    ui.no_runs_message()
    st.stop()
keys = [r["key"] for r in runs]
names = {r["key"]: r["name"] for r in runs}
state = ui.url_state(PAGE, KEYS)
if ui.run_key() in keys:
    state.setdefault("ra", ui.run_key())
    state.setdefault("rb", state["ra"])


def _run(k: str):
    try:
        return data.resolve_run(k, ui.roots())
    except queries.RunUnavailable as e:
        ui.show_unavailable(e)
        st.stop()


# ---- the two sides (sidebar, in the URL): a run and an iteration each, on a task and phase both hold, since
# questions are matched by id
main = st.container()  # messages about the sidebar's choices go to the main area
with st.sidebar:
    st.subheader("Side A")
    ra = ui.state_select(PAGE, state, "ra", "Run A", keys, format_func=lambda k: names.get(k, k), default=keys[0])
    ca = data.compare_choices(_run(ra))
    st.subheader("Side B")
    rb = ui.state_select(PAGE, state, "rb", "Run B", keys, format_func=lambda k: names.get(k, k), default=ra)
    cb = data.compare_choices(_run(rb))
    both = ca.merge(cb, on=["task", "phase"], suffixes=("_a", "_b"))
    tasks = sorted(both["task"].unique())
    if not tasks:
        main.warning(
            "These two runs share no task and phase, so no question can be put side by side. Pick another "
            "run for A or B in the sidebar.",
            icon=":material/call_split:",
        )
        st.stop()
    task = ui.state_select(PAGE, state, "task", "Task", tasks, default=tasks[0])
    phases = [p for p in queries.PHASES if p in set(both.loc[both["task"] == task, "phase"])]
    phase = ui.state_select(
        PAGE,
        state,
        "phase",
        "Phase",
        phases,
        default="eval" if "eval" in phases else phases[0],
        format_func=ui.phase_label,
    )
    its_a = [str(i) for i in sorted(ca[(ca["task"] == task) & (ca["phase"] == phase)]["iteration"])]
    its_b = [str(i) for i in sorted(cb[(cb["task"] == task) & (cb["phase"] == phase)]["iteration"])]
    with main:
        links.note_link_values(state, {"ia": (its_a, "iteration of A"), "ib": (its_b, "iteration of B")}, "its default")
    ia = ui.state_select(PAGE, state, "ia", "Iteration of A", its_a, default=its_a[0])
    ib = ui.state_select(PAGE, state, "ib", "Iteration of B", its_b, default=its_b[-1])

# ---- the comparison: the questions both sides hold, how many B gained and lost against A (exact McNemar), so a
# change can be told from noise, and which questions to show
run_a, run_b = _run(ra), _run(rb)
res = data.compare(run_a, int(ia), run_b, int(ib), task, phase)
rows, counts = res["rows"], res["counts"]
label_a = comparison.side_label(names.get(ra, ra), int(ia))
label_b = comparison.side_label(names.get(rb, rb), int(ib))
with st.sidebar:
    st.subheader("Show")
    flt = ui.state_select(
        PAGE,
        state,
        "f",
        "Questions",
        list(comparison.FILTERS),
        default="all",
        format_func=lambda k: f"{comparison.FILTERS[k]} ({counts[k]:,})",
    )

st.markdown(
    f"**A**: {ui.md_escape(label_a)} · **B**: {ui.md_escape(label_b)} · {ui.md_escape(task)} · "
    f"{ui.md_escape(ui.phase_label(phase))}"
)
_gained, _lost = counts["a_wrong_b_right"], counts["a_right_b_wrong"]
st.caption(
    f"Of the {len(rows):,} questions in both, B is right where A was wrong on {_gained:,} and wrong where A was "
    f"right on {_lost:,}: {flags.change_words(_lost, _gained)} (exact McNemar on those {_gained + _lost:,})."
)
if res["only_a"] or res["only_b"]:
    st.info(
        f"The two sides ask different questions: {len(rows):,} are in both and shown here; "
        f"{res['only_a']:,} only in A and {res['only_b']:,} only in B are left out.",
        icon=":material/join_inner:",
    )
shown = rows[comparison.filter_mask(rows, flt)].reset_index(drop=True)

# ---- where we are: the question id (in the URL), or A's sample id (the navigator's Prev / Next)
ids = shown["a_id"].tolist()
qids = shown["question_id"].tolist()
if state.get("sid", "").isdigit() and int(state["sid"]) in ids:
    state["qid"] = qids[ids.index(int(state["sid"]))]
goto = state.pop("goto", None)
if goto and goto.isdigit() and qids:
    state["qid"] = qids[min(max(int(goto), 1), len(qids)) - 1]
if state.get("qid") not in qids:
    state["qid"] = qids[0] if qids else ""
state.pop("sid", None)
ui.write_url(PAGE, {k: state.get(k) for k in KEYS if k != "sid"})

if shown.empty:
    st.info("No question matches this filter.", icon=":material/search_off:")

    def _all() -> None:
        state["f"] = "all"
        st.session_state.pop(f"{PAGE}_f", None)

    st.button("Show every question", key=f"{PAGE}_reset", on_click=_all, icon=":material/filter_alt_off:")
    st.stop()
pos = qids.index(state["qid"])
row = shown.iloc[pos]
b = {
    "total": len(shown),
    "position": pos + 1,
    "prev_id": ids[pos - 1] if pos else None,
    "next_id": ids[pos + 1] if pos + 1 < len(ids) else None,
}


def _go(sid: int) -> None:
    state["sid"] = str(sid)


ui.navigator(PAGE, state, b, noun="question")
review.keyboard_moves(f"{PAGE}_keys", b["prev_id"], b["next_id"], _go)
st.caption(review.KEYS_HELP)

# ---- one question: both rationales with their word differences marked, both decisions, answers and audits,
# because a changed answer is only half the story; either side can be annotated or opened in Rationales
with st.container(border=True):
    st.caption(
        ui.md_escape(
            f"question id {row['question_id']}" + (f" · {row['grp']}-digit" if str(row["grp"]).isdigit() else "")
        )
    )
    ui.show_text(row["question"], "Question")
    ui.show_text(row["gold"], "Gold answer")
    ha, hb = comparison.diff_html(row["a_text"], row["b_text"])
    marked = comparison.diff_fits(row["a_text"], row["b_text"])
    if not marked:
        st.caption(
            "These rationales are too long to mark word by word "
            f"(over {comparison.DIFF_MAX_TOKENS:,} words, spaces and marks on a side): both are shown whole, side by "
            "side, without marks."
        )
    cols = st.columns(2, gap="large")
    for col, side, label, run_dir, html_ in ((cols[0], "a", label_a, run_a, ha), (cols[1], "b", label_b, run_b, hb)):
        s = data.get_sample(run_dir, int(row[f"{side}_id"]))
        with col:
            st.markdown(f"**{side.upper()}**: {ui.md_escape(label)} · sample \\#{int(s['id'])}")
            ui.decision_badge(s["decision"])
            st.text(s["reason"])
            note = {"a": " (struck out: not in B)", "b": " (marked: not in A)"}[side] if marked else ""
            st.caption("Rationale" + note)
            st.html(html_)
            st.caption("Parsed answer")
            ui.show_text(s["answer"] if s["answer"] is not None else "(none)")
            st.markdown(
                ":green[:material/check_circle:] **right answer** (matches the gold)"
                if s["correct"]
                else ":red[:material/cancel:] **wrong answer** (differs from the gold)"
            )
            hints.show_audit(s)
            with st.expander(f"Annotate {side.upper()}'s sample"):
                review.annotate(run_dir, int(s["id"]), key=f"{PAGE}_ann_{side}")
            st.page_link(
                "app_pages/rationales.py",
                label="Open in Rationales",
                icon=":material/psychology:",
                query_params={"run": ra if side == "a" else rb, "sid": str(int(s["id"]))},
            )

# ---- the questions shown as a table, and a download of them with both sides
st.subheader("The questions shown")
view = shown[
    ["question_id", "a_answer", "b_answer", "gold", "a_correct", "b_correct", "answer_changed", "rationale_changed"]
]
st.dataframe(view, hide_index=True, width="stretch", height=min(400, 35 * (len(view) + 1) + 3))
review.downloads(
    lambda: exports.compare_frame(shown, label_a, label_b),
    review.safe_stem("compare", label_a, "vs", label_b, flt),
    f"{PAGE}_dl",
    "these questions, both sides",
)
