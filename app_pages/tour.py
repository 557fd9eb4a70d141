"""Teaching tour: one question followed through a STaR run, beside the objective STaR optimises with this
run's numbers. Queries live in star_core/queries/tour.py, read through star_dashboard.data (cached); model and
dataset text is shown literally (st.code / st.text / escaped markdown; the hint highlight goes through
ui.show_highlighted, which escapes)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from star_core import queries, stats
from star_core.queries import tour
from star_dashboard import data, flags, hints, links, ui

PAGE = "tour"
KEYS = ("q", "it")

ui.page_header(
    "Teaching tour",
    "One question followed through the run, for walking a class through how STaR "
    "learns: the model's first attempt, the hint it was then given, its rationalization, the training "
    "example kept from it, and whether later models answer it alone; beside it, the objective STaR "
    "optimises, with this run's numbers.",
)
run_dir = ui.current_run()
ui.run_heading(run_dir)
flags.audit_banner(run_dir, "(the tour picks only rationales that pass today's audit, so none may qualify here)")


# ---- the run at a glance: without a sample there is no question to follow yet
ov = data.tour_overview(run_dir)
if not ov["n_samples"]:
    st.info(
        "This run has no samples yet, so there is no question to follow. The tour starts as soon as the "
        "first batch is stored (iteration 0 evaluates the few-shot model first).",
        icon=":material/hourglass_empty:",
    )
    st.stop()

# ---- the question picker: the candidates best story first (★ the automatic pick), a question named by a link
# even beyond the listed ones, and "Surprise me" for another of the best kind; the pick lives in the URL (?q=)
cands = data.tour_candidates(run_dir)
by_key = {c["key"]: c for c in cands["candidates"]}
auto = tour.auto_pick(cands)
if auto is None:
    st.info("No question of this run can be followed yet.", icon=":material/search_off:")
    st.stop()

ss = st.session_state
state = ui.url_state(PAGE, KEYS)
options = [c["key"] for c in cands["candidates"]]
linked = state.get("q")
if linked and linked not in by_key:  # a link to a question beyond the listed candidates
    parts = tour.split_key(linked)
    extra = data.tour_story(run_dir, *parts) if parts else None
    if extra is not None:
        by_key[linked] = {
            "key": linked,
            "task": parts[0],
            "question_id": parts[1],
            "kind": extra["kind"],
            "label": f"[{tour.KIND_TAG[extra['kind']]}] {parts[0]} · {parts[1]}",
        }
        options.insert(0, linked)
    else:
        st.warning(
            "The link names a question this run does not hold; showing the automatic pick instead.",
            icon=":material/link_off:",
        )


def _label(k: str) -> str:
    c = by_key.get(k)
    if c is None:
        return k
    return ("★ " if k == auto["key"] else "") + c["label"]


def _surprise() -> None:
    pick = tour.surprise(cands, ss.get(f"{PAGE}_q"))
    if pick is not None:
        ss[f"{PAGE}_q"] = pick["key"]
        state["q"] = pick["key"]


pc1, pc2 = st.columns([5, 1], vertical_alignment="bottom")
with pc1:
    qkey = ui.state_select(
        PAGE,
        state,
        "q",
        "Question to follow",
        options,
        format_func=_label,
        default=auto["key"],
        help="★ = the automatic pick. Tags: wrong → rationalized → learned (the whole STaR "
        "cycle), wrong → rationalized, wrong → learned, wrong, seen.",
    )
pc2.button(
    "Surprise me",
    icon=":material/casino:",
    key=f"{PAGE}_surprise",
    on_click=_surprise,
    disabled=len(options) < 2,
    width="stretch",
)

cur = by_key[qkey]
task, qid = cur["task"], cur["question_id"]
s = data.tour_story(run_dir, task, qid)
if s is None:
    st.info("This question has no stored samples any more; pick another one.", icon=":material/search_off:")
    st.stop()

# what kind of story this is, and why the tour fell back when it did
kind = s["kind"]
lead = "Picked automatically. " if qkey == auto["key"] else ""
st.markdown(f"**Story: {tour.KIND_TAG[kind]}.** {lead}{tour.KIND_TEXT[kind]}")
if cands["best_kind"] != "learned":
    if not ov["sampled_iterations"]:
        why = (
            "Only iteration 0 (the few-shot baseline) has run so far: nothing has been sampled for training "
            "yet, so this story is the untrained model's attempt at an evaluation question."
        )
    elif ov["rationalize"] is False:
        why = (
            "Rationalization was off in this run: wrong answers were never retried with the hint, so no "
            "question can be rescued. The tour follows a question the model got wrong instead."
        )
    elif not ov["rationalized_iterations"]:
        why = (
            "No hinted retries are stored yet (the run may still be sampling), so no question has been "
            "rescued by rationalization so far."
        )
    elif cands["best_kind"] == "rationalized":
        why = (
            "Some wrong answers were rescued by rationalization, but no later model has answered one of them "
            "correctly without the hint yet" + (" (the run is still going)." if ov["status"] == "running" else ".")
        )
    elif cands["best_kind"] == "answer_only":
        why = (
            "Questions did go from wrong to right here, but none of their right answers comes with a rationale that "
            "passes the audit under today's rules, so none is told as learned."
        )
    else:
        why = "No wrong answer of this run was rescued by rationalization."
    st.info(
        "No question here went wrong → rationalized → right later with a rationale that passes the audit, the "
        f"full STaR cycle. {why}",
        icon=":material/info:",
    )

left, right = st.columns([3, 2], gap="large")


# --------------------------------------------------------------------------
# the story (left)
# --------------------------------------------------------------------------
def show_attempt(smp: dict[str, Any], title: str) -> None:
    h1, h2 = st.columns([4, 1], vertical_alignment="center")
    h1.markdown(title + (ui.md_escape(f" (sample k={smp['k']})") if smp["k"] else ""))
    ui.decision_badge(smp["decision"], h2)
    ui.show_text(smp["raw_output"], "what the model wrote (rationale and answer)")
    ans = smp["answer"] if smp["answer"] is not None else "(none)"
    mark = ":green[:material/check_circle:] matches" if smp["correct"] else ":red[:material/cancel:] differs from"
    st.text(f"parsed answer: {ans} · gold: {smp['gold']}")  # model text: text, never markdown
    st.markdown(f"The parsed answer {mark} the gold one" + (" · kept" if smp["kept"] else " · not kept"))
    st.caption("Why the filter decided so:")
    st.text(smp["reason"])
    hints.show_audit(smp)


def show_train(rows: list[dict[str, Any]], i: int) -> None:
    for te in rows:
        st.caption(ui.md_escape(f"stored for training M{i} · source {te['source']} · the prompt has no hint"))
        ui.show_text(te["prompt"], "training prompt")
        ui.show_text(te["completion"], "completion (the loss is on these tokens)")


with left:
    st.subheader("One question's story", anchor=False)
    st.markdown(
        f"{ui.md_escape(task)} · question **{ui.md_escape(qid)}**"
        + (ui.md_escape(f" · {s['grp']}-digit") if s["grp"] not in (None, "", "all") else "")
        + f" · {ui.md_escape(s['split'])} split"
    )
    ui.show_text(s["question"], "question")
    st.caption("gold answer")
    st.code(s["gold"], language="text")

    # ---- iteration by iteration: the first attempts, the hinted retry, the training example kept from it and
    # the evaluations, the focus iteration marked, so a class sees where the question went wrong and was rescued
    focus, learned_at = s["focus_iteration"], s["learned_iteration"]
    for it in s["iterations"]:
        i = it["iteration"]
        is_focus = i == focus
        with st.container(border=True):
            role = (
                (
                    "few-shot baseline: the untrained model, evaluation only"
                    if not ov["warm_start"]
                    else f"few-shot baseline: the untrained model; then the warm start fine-tunes M0 on "
                    f"{ov['warm_start']} reference rationales"
                    + (f" of {ov['warm_start_digits']}-digit sums" if ov.get("warm_start_digits") else "")
                    + f" ({queries.WARM_NOTE}): what STaR then changes is measured against that model"
                )
                if i == 0
                else f"model M{i - 1} answers the training questions; M{i} is then trained on the kept set"
                + (" and the warm start's reference examples" if ov["warm_start"] else "")
            )
            icon = (
                ":material/flag:"
                if is_focus
                else (":material/school:" if i == learned_at else ":material/radio_button_unchecked:")
            )
            st.markdown(f"### {icon} Iteration {i}\n{role}")
            if is_focus and kind in ("learned", "rationalized", "self_learned", "wrong"):
                st.caption("The iteration this story is about.")
            if i == learned_at and kind == "answer_only":
                who = f"M{i - 1}" if any(x["correct"] for x in it["first"]) else f"M{i}"
                st.warning(
                    f"Answered correctly without the hint by {who}, but no rationale for it passes the audit "
                    "under today's rules: the model learned the answer, not the reasoning.",
                    icon=":material/report:",
                )
            elif i == learned_at:
                who = f"M{i - 1}" if any(x["passes_audit"] for x in it["first"]) else f"M{i}"
                st.success(
                    f"Answered correctly without the hint by {who}, with a rationale that passes the audit: "
                    "STaR has learned this question.",
                    icon=":material/celebration:",
                )
            elif focus is not None and i > focus and it["solved_without_hint"] is False:
                st.warning("Still wrong without the hint at this iteration.", icon=":material/replay:")

            for smp in it["first"]:
                with st.container():
                    st.markdown("**① First attempt**, no hint")
                    show_attempt(smp, f"by M{i - 1}")
            if it["retry"]:
                for smp in it["retry"]:
                    st.markdown("**② The hint**: the question is asked again with the answer given away")
                    hints.show_hinted_prompt(smp)
                    st.markdown("**③ Rationalization**: the model explains the given answer")
                    show_attempt(smp, f"hinted retry by M{i - 1}")
            elif it["first"] and not any(x["kept"] for x in it["first"]):
                if ov["rationalize"] is False:
                    st.caption("Rationalization was off in this run: no hinted retry.")
                else:
                    st.caption(
                        "No hinted retry stored for this question here"
                        + (" (yet)." if ov["status"] == "running" else ".")
                    )
            if it["first"] or it["retry"]:
                st.markdown("**④ Kept as a training example?**")
                if it["train"]:
                    show_train(it["train"], i)
                else:
                    st.caption(
                        f"No: no attempt here was kept, so its weight is 0 and M{i} is not trained on this question."
                    )
            for smp in it["eval"]:
                st.markdown(
                    f"**Evaluation** of M{i}, no hint"
                    + (" (the few-shot model, before the warm start)" if i == 0 and it["warm"] else "")
                )
                show_attempt(smp, f"by M{i}")
            for smp in it["warm"]:
                st.markdown("**Evaluation after the warm start** (supervised, not bootstrapped), no hint")
                show_attempt(smp, "by M0 after the warm start")
    if focus is not None and learned_at is None and kind in ("rationalized", "wrong"):
        st.caption(
            "No later iteration has answered this question correctly without the hint"
            + (" yet: the run is still going." if ov["status"] == "running" else ".")
        )


# --------------------------------------------------------------------------
# the objective, with this run's numbers (right)
# --------------------------------------------------------------------------
def pct(e: dict[str, Any] | None) -> str:
    return f"{100 * e['accuracy']:.1f}%" if e else "–"


with right:
    st.subheader("What STaR optimises", anchor=False)
    st.markdown(
        "For each training question $x_i$ the model samples a rationale $\\hat r_i$ and an answer "
        "$\\hat y_i$. STaR maximises the expected number of questions answered correctly:"
    )
    st.latex(r"J = \sum_i \mathbb{E}[\mathbb{1}(\hat y_i = y_i)]")
    st.markdown("Its gradient (the policy-gradient, or REINFORCE, identity):")
    st.latex(r"\nabla J = \sum_i \mathbb{E}[\mathbb{1}(\hat y_i = y_i)\,\nabla \log p(\hat y_i, \hat r_i \mid x_i)]")
    st.markdown(
        "The indicator is the filter: a sample with the right answer has weight 1, a wrong one weight 0 "
        "and simply drops out. What is left is the gradient of the log-likelihood of the kept samples, "
        "so one step of STaR is ordinary fine-tuning (maximum likelihood) on its own correct rationales."
    )

    # ---- the iteration whose numbers fill the objective (?it=; the story's focus by default): N sampled, K
    # kept, the rescued retries, the training set and the evaluation before and after, so the terms of J are
    # this run's counts, not symbols
    its = ov["sampled_iterations"]
    it_param: str | None = None
    multi = len(ov["tasks"]) > 1
    task_arg = task if multi else None
    if not its:
        st.info(
            "Only iteration 0 (the few-shot baseline) has run so far: no training question has been sampled, "
            "so there is nothing to weigh yet. The numbers appear once iteration 1 has sampled.",
            icon=":material/hourglass_empty:",
        )
        n0 = data.objective_numbers(run_dir, 0, task_arg)
        if n0["eval_now"]:
            e = n0["eval_now"]
            st.metric(
                "Eval accuracy of the few-shot model (iteration 0)",
                pct(e),
                help=f"{e['n_correct']} of {e['n']} evaluation questions",
            )
    else:
        links.note_link_values(state, {"it": ([str(i) for i in its], "iteration")}, "the story's iteration")
        default_it = focus if focus in its else its[-1]
        if ss.get(f"_{PAGE}_q_prev") != qkey and not state.get("_link"):
            state["it"] = str(default_it)
            ss.pop(f"{PAGE}_it", None)
        ss[f"_{PAGE}_q_prev"] = qkey
        it_s = ui.state_select(
            PAGE,
            state,
            "it",
            "Iteration",
            [str(i) for i in its],
            default=str(default_it),
            format_func=lambda v: f"iteration {v}",
            help="Iteration i samples the training questions with M(i-1) and trains M(i).",
        )
        i = int(it_s)
        n = data.objective_numbers(run_dir, i, task_arg)
        st.markdown(f"#### This run, iteration {i}")
        if multi:
            st.caption(ui.md_escape(f"Numbers for task {task} (the task of the question on the left)."))
        N, K1, R, K = n["sampled"], n["kept_first"], n["rescued"], n["K"]
        st.markdown(f"Model M{i - 1} answered **{N}** training samples ({n['questions']} questions).")
        m = st.columns(2)
        m[0].metric("Sampled (N)", N, help="first attempts, plain prompt, no hint")
        m[1].metric("Right: weight 1, kept", K1, help="1(ŷ=y) = 1 and kept by the filter")
        m = st.columns(2)
        m[0].metric("Dropped: weight 0", n["dropped"], help="wrong, unparsable or truncated (or rejected)")
        rz_off = n["rationalize"] is False
        m[1].metric(
            "Rescued by rationalization",
            "off" if rz_off else R,
            help="hinted retries that reached the gold answer, stored without the hint",
        )
        if n["correct_rejected"]:
            st.caption(
                f"{n['correct_rejected']} of the dropped samples had the right answer but the filter rejected "
                "them anyway (e.g. unfaithful steps), so their weight was 0 too."
            )
        tail = (
            (
                r"\frac{"
                + str(K1)
                + "}{"
                + str(N)
                + r"}\cdot\frac{1}{"
                + str(K1)
                + r"}\sum_{j \in \mathrm{kept}}\nabla\log p(\hat y_j, \hat r_j \mid x_j)"
            )
            if K1 and N
            else "0"
        )
        st.latex(
            r"\begin{aligned}\widehat{\nabla J} &= \frac{1}{N}\sum_{j=1}^{N}\mathbb{1}(\hat y_j = y_j)\,"
            r"\nabla\log p(\hat y_j, \hat r_j \mid x_j)\\ &= " + tail + r"\end{aligned}"
        )
        if not K1:
            st.caption(
                f"No first attempt was right at iteration {i}: every weight is 0, so on its own answers the "
                "gradient is zero" + ("." if rz_off else "; only rationalization can add examples.")
            )
        if rz_off:
            st.markdown(
                f"Rationalization was off in this run: the {n['dropped']} wrong samples stay at weight 0 and "
                f"nothing rescues them. The training set is the **K = {K}** kept samples."
            )
        elif not n["retried"] and n["stage"] in (None, "pending", "sampled"):
            st.markdown(
                f"Rationalization has not run yet at this iteration (stage: "
                f"{ui.md_escape(n['stage'] or 'pending')}): the {n['dropped']} failures wait for their "
                f"hinted retry. The kept set so far has **K = {K}** samples."
            )
        else:
            st.markdown(
                f"Rationalization then retried **{n['retried']}** failures with the hint and rescued "
                f"**{R}** of them: their rationales join the kept set (hint removed), though they were "
                "sampled with the answer in view, so they are not strictly samples of p(r, y | x)."
            )
            st.latex(r"K = " + str(K1) + " + " + str(R) + " = " + str(K))
        st.markdown(
            f"So the gradient estimate is the average of ∇log p over the **K = {K}** kept samples: "
            f"ordinary fine-tuning (maximum likelihood) of M{i} on a training set of {K} examples"
            + (", starting again from the base model." if ov["restart_from_base"] is not False else ".")
        )
        W = n["warm_examples"]
        if W:
            st.info(
                f"Warm start: the training set of M{i} also holds the {W} reference rationales of the warm "
                f"start. They are {queries.WARM_NOTE}: a supervised term beside the STaR gradient, not samples of "
                f"p(r, y | x). M{i} trains on {K} + {W} examples"
                + (", and M0, which sampled iteration 1, is the warm-started model." if i == 1 else "."),
                icon=":material/school:",
            )
        if K:
            st.latex(
                r"\widehat{\nabla J} \;\propto\; \frac{1}{"
                + str(K)
                + r"}\sum_{j=1}^{"
                + str(K)
                + r"}\nabla\log p(\hat y_j, \hat r_j \mid x_j)"
            )
        else:
            st.warning(
                f"The kept set is empty: M{i} has nothing to learn from at this iteration.", icon=":material/block:"
            )
        if n["trained"] is None:
            st.caption(f"M{i} is not trained yet (stage: {ui.md_escape(n['stage'] or 'pending')}).")
        else:
            st.caption(
                f"Stored: {n['train_examples']} training examples"
                + (" of this task" if multi else "")
                + f"; M{i} was trained on {n['trained']}"
                + (" (all tasks together)" if multi else "")
                + (f" for {n['train_steps']} optimizer steps." if n["train_steps"] else ".")
            )
        # ---- did the model improve: the eval accuracy before and after, its change paired question by question
        # and coloured only when significant, so a class does not read noise as learning
        prev, now = n["eval_prev"], n["eval_now"]
        if now is None:
            st.caption(f"M{i} has not been evaluated yet" + (f"; M{i - 1} scored {pct(prev)}." if prev else "."))
        else:
            before = "the warm start" if prev and prev["phase"] == "warm_eval" else f"iteration {i - 1}"
            ch = data.eval_change(run_dir, i, task_arg)
            delta = None
            if prev:
                delta = f"{100 * (now['accuracy'] - prev['accuracy']):+.1f} points vs {before}"
                delta += f" ({flags.change_words(ch['lost'], ch['gained'], ch['pairs'])})" if ch else " (not paired)"
            st.metric(
                f"Eval accuracy, {before.removeprefix('the ')} → {i}",
                pct(now),
                delta=delta,
                delta_color=flags.delta_color(ch["lost"], ch["gained"]) if ch else "off",
                help=f"M{i}: {stats.describe(now['n_correct'], now['n'])}"
                + (f"; M{i - 1}: {stats.describe(prev['n_correct'], prev['n'])}" if prev else "")
                + ". The change is tested question by question (exact McNemar on the questions gained and lost); "
                "it is coloured only when p < 0.05.",
            )
            st.caption(
                f"Eval accuracy moved from {pct(prev)} (M{i - 1}) to {pct(now)} (M{i})"
                + (
                    "; not a significant change: it may be noise."
                    if ch and not ch["significant"]
                    else "; a significant change (p < 0.05)."
                    if ch
                    else "."
                )
            )
        # ---- back to the story: what this iteration meant for the question followed on the left
        if i == focus and kind in ("learned", "rationalized", "self_learned", "wrong"):
            it_row = next((x for x in s["iterations"] if x["iteration"] == i), None)
            if it_row:
                fate = (
                    "among the kept (weight 1)"
                    if any(x["kept"] for x in it_row["first"])
                    else "rescued by rationalization"
                    if any(x["kept"] for x in it_row["retry"])
                    else "dropped (weight 0)"
                )
                st.caption(f"The question on the left, at this iteration: {fate}.")
        it_param = it_s
    ui.write_url(PAGE, {"q": qkey, "it": it_param})

# ---- the whole run in one sentence per digit count: did STaR change it? (its paired test in the sentence) -------
_effects = [e for e in ui.guard(data.star_effect, run_dir) if e.measure == "faithful_accuracy"]
if _effects:
    with st.expander("Did STaR change each digit count? (right and faithful, first model vs last iteration)"):
        for e in _effects:
            st.markdown(ui.md_escape(e.sentence()))
