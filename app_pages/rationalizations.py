"""Rationalizations: a wrong first attempt, the hinted retry, and the training example stored from it."""

from __future__ import annotations

import streamlit as st

from star_core import queries
from star_dashboard import data, hints, links, ui

PAGE = "rz"
KEYS = ("task", "it", "decision", "sid")

# ---- the run; without hinted retries the page says why (rationalization off, or none stored yet)
ui.page_header(
    "Rationalizations",
    "For a question the model got wrong: its first attempt, the prompt retried "
    "with the gold answer as a hint (highlighted), the hinted output, and the training example stored "
    "from it with the hint removed. Hint leaks are marked.",
)
run_dir = ui.current_run()
ui.run_heading(run_dir)
fac = data.facets(run_dir)
if "rationalize" not in fac["phases"]:
    info = ui.guard(data.run_info, run_dir)
    if info.get("config", {}).get("rationalize") is False:
        st.info(
            "Rationalization is off in this run's config: wrong answers are not retried with a hint.",
            icon=":material/block:",
        )
    else:
        st.info(
            "No hinted retries stored yet. They appear once an iteration has sampled the training split "
            "and retried its wrong answers.",
            icon=":material/hourglass_empty:",
        )
    st.stop()

# ---- the filters (task, iteration, retry outcome), only the values that occur among the hinted retries
state = ui.url_state(PAGE, KEYS)
with st.sidebar:
    st.subheader("Filters")
    task = ui.state_select(PAGE, state, "task", "Task", [ui.ALL] + fac["tasks"])
    _task = None if task == ui.ALL else task
    its = queries.occurring(fac, "iteration", task=_task, phase="rationalize")
    it = ui.state_select(PAGE, state, "it", "Iteration", [ui.ALL] + [str(i) for i in its])
    decision = ui.state_select(
        PAGE,
        state,
        "decision",
        "Retry outcome",
        [ui.ALL]
        + queries.occurring(
            fac, "decision", task=_task, phase="rationalize", iteration=None if it == ui.ALL else int(it)
        ),
        help="rationalized = kept; hint_leak = the rationale leans on the hint",
    )

# ---- where we are: the retry the URL names, else the first match, with Prev and Next
f = queries.SampleFilter(
    phase="rationalize",
    task=None if task == ui.ALL else task,
    iteration=None if it == ui.ALL else int(it),
    decision=None if decision == ui.ALL else decision,
)
want_sid = links.linked_sample(state)
b = ui.browse_current(PAGE, run_dir, f, state)
ui.write_url(PAGE, {"task": task, "it": it, "decision": decision, "sid": state.get("sid")})
links.note_missing_sample(PAGE, run_dir, state, want_sid, b["sample_id"])
if b["sample_id"] is None:
    st.info("No hinted retry matches these filters.", icon=":material/search_off:")
    links.reset_button(PAGE, state, KEYS)
    st.stop()

# ---- the retry at a glance: its decision, the gold answer, the hint shown, and whether the hint leaks into the
# output (training on a leak would teach the model to copy the hint, not to reason)
rz = data.rationalization(run_dir, b["sample_id"])
retry, first, te = rz["retry"], rz["first"], rz["train_example"]
if retry["phase"] != "rationalize":
    st.warning("This sample is not a hinted retry; opening it on the Rationales page instead is more useful.")
ui.navigator(PAGE, state, b, noun="retry")

hint = retry.get("hint") or ""
with st.container(border=True):
    h1, h2 = st.columns([4, 1], vertical_alignment="center")
    h1.markdown(
        f"**Iteration {retry['iteration']}** · {ui.md_escape(retry['task'])} · question "
        f"{ui.md_escape(retry['question_id'])} · retry #{retry['id']}"
    )
    ui.decision_badge(retry["decision"], h2)
    c1, c2 = st.columns(2)
    with c1:
        st.caption("Gold answer")
        st.code(retry["gold"], language="text")
    with c2:
        st.caption("Hint shown to the model")
        st.code(hint if hint else "(no hint stored)", language="text")
    st.text(retry["reason"])
    leak = hints.show_leak(retry)

# ---- the four steps in order: the wrong first attempt, the hinted prompt, the hinted output, and the training
# example stored from it with the hint removed, so one can check that what trains the model carries no hint
row1 = st.columns(2, gap="large")
with row1[0]:
    st.markdown("#### 1 · First attempt (plain prompt)")
    if first is None:
        st.info("The first attempt of this question is not stored.")
    else:
        ui.decision_badge(first["decision"])
        ui.show_text(first["question"], "question")
        ui.show_text(first["raw_output"], "model output")
        st.text(
            f"parsed answer: {first['answer'] if first['answer'] is not None else '(none)'}"
            f" · gold: {first['gold']} · {first['reason']}"
        )
with row1[1]:
    st.markdown("#### 2 · Hinted prompt (hint highlighted)")
    hints.show_hinted_prompt(retry, show_hint=False)

row2 = st.columns(2, gap="large")
with row2[0]:
    st.markdown("#### 3 · Hinted output")
    ui.decision_badge(retry["decision"])
    ui.show_highlighted(retry["raw_output"], leak["spans"], hints.LEAK_BG)
    st.text(
        f"parsed answer: {retry['answer'] if retry['answer'] is not None else '(none)'}"
        f" · matches gold: {'yes' if retry['correct'] else 'no'}"
    )
    hints.show_audit(retry)
with row2[1]:
    st.markdown("#### 4 · Training example as stored (hint removed)")
    if te is None:
        st.info(
            f"Not kept: the retry was rejected ({ui.md_escape(retry['decision'])}), so nothing was stored for "
            "training.",
            icon=":material/delete:",
        )
    else:
        st.caption(ui.md_escape(f"trains adapter {te['iteration']} · source {te['source']}"))
        still = queries.find_all(te["prompt"], hint.strip()) if leak["checkable"] else []
        if still:
            st.error("The stored training prompt still contains the hint text.", icon=":material/warning:")
        ui.show_highlighted(te["prompt"], still, hints.LEAK_BG)
        ui.show_text(te["completion"], "completion (the loss is on these tokens)")
