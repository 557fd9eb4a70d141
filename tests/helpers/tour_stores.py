"""The hand-built stores the teaching tour's tests tell stories about: ``record`` writes one sample of a known
question (``GOLD``) as the engine stores it, ``build_story_run`` a run whose questions each take a known path
(wrong, rationalized, learned), ``build_strict_run`` one that rejects right answers with wrong steps."""

from __future__ import annotations

from pathlib import Path

from star_core import queries as Q
from star_core.store import RunStore, SampleRecord

SCRIPT = "<script>alert('tour')</script> **bold** $x$ :red[red]"
PREFIX = "Input:\n1 + 1\nAnswer: 2\nTarget:\n<scratch>\n1 + 1 , 2 C: 0\n</scratch>\n2\n\n"
GOLD = {"q-learn": "12", "q-rz": "30", "q-ok": "7", "q-wrong": "99", "e-1": "5", "e-2": "8"}


def record(
    it: int,
    phase: str,
    qid: str,
    ok: bool,
    *,
    decision: str | None = None,
    kept: bool | None = None,
    out: str | None = None,
    audit: dict | None = None,
) -> SampleRecord:
    """One stored sample of question ``qid`` at iteration ``it`` and ``phase``, answered right (``ok``) or one off;
    its decision, kept flag, output and audit follow from that unless given."""
    gold = GOLD[qid]
    ans = gold if ok else str(int(gold) + 1)
    hinted = phase == "rationalize"
    block = f"Input:\n{qid} sum\n" + (f"Answer: {gold}\n" if hinted else "") + "Target:\n"
    out = out if out is not None else f"<scratch>\nwork for {qid} at {it}/{phase}\n</scratch>\n{ans}"
    if decision is None:
        decision = ("rationalized" if hinted else "correct") if ok else "wrong"
    if kept is None:
        kept = phase != "eval" and decision in ("correct", "rationalized")
    if audit is None and ok:  # a right answer's steps hold under today's rules unless a test says otherwise
        audit = FAITHFUL
    return SampleRecord(
        iteration=it,
        task="arithmetic",
        split="eval" if phase == "eval" else "train",
        phase=phase,
        question_id=qid,
        question=f"{qid} sum",
        prompt=PREFIX + block,
        raw_output=out,
        gold=gold,
        decision=decision,
        reason=f"answer {ans} vs gold {gold}",
        correct=ok,
        kept=kept,
        hint=f"Answer: {gold}" if hinted else None,
        rationale=out.rsplit("\n", 1)[0],
        answer=ans,
        audit=audit,
        train_prompt=f"Input:\n{qid} sum\nTarget:\n" if kept else None,
        train_completion=" " + out if kept else None,
        train_iteration=it if kept else None,
    )


def eval_metrics(recs: list[SampleRecord]) -> list[dict]:
    """The metrics rows of these evaluation records (all arithmetic, one group)."""
    n, c = len(recs), sum(r.correct for r in recs)
    return [{"task": "arithmetic", "split": "eval", "grp": "all", "n": n, "n_correct": c, "accuracy": c / n}]


UNFAITHFUL = {"checked": 2, "errors": ["step 2: 5 + 6 is not 12"], "faithful": False}
FAITHFUL = {"checked": 2, "errors": [], "faithful": True, "verdict": "faithful", "version": Q.AUDIT_VERSION}


def build_story_run(
    run_dir: Path, *, rationalize: bool = True, iterations: int = 2, stop_after_sample: int | None = None
) -> Path:
    """Iteration 1: q-learn wrong -> rationalized (output holds a <script>, audit unfaithful); q-rz wrong ->
    rationalized; q-ok correct; q-wrong wrong, retry wrong. Iteration 2: q-learn and q-ok correct; q-rz and
    q-wrong wrong, retries wrong. Eval questions e-1, e-2 at each iteration."""
    st = RunStore(run_dir)
    cfg = {"task": "arithmetic", "rationalize": rationalize, "iterations": iterations}
    st.create_run(run_dir.name, "arithmetic", "tiny", cfg, iterations, "cpu (test)")
    plan = {
        1: {
            "sample": [("q-learn", False), ("q-rz", False), ("q-ok", True), ("q-wrong", False)],
            "rationalize": [("q-learn", True), ("q-rz", True), ("q-wrong", False)],
        },
        2: {
            "sample": [("q-learn", True), ("q-rz", False), ("q-ok", True), ("q-wrong", False)],
            "rationalize": [("q-rz", False), ("q-wrong", False)],
        },
    }
    evals = {0: [False, True], 1: [True, False], 2: [True, True]}
    for it in range(iterations + 1):
        st.begin_iteration(it, 40 if it else None)
        if it:
            st.add_samples([record(it, "sample", q, ok) for q, ok in plan[it]["sample"]])
            st.set_stage(it, "sampled")
            if stop_after_sample == it:
                break
            if rationalize:
                recs = []
                for q, ok in plan[it]["rationalize"]:
                    special = q == "q-learn" and it == 1
                    recs.append(
                        record(
                            it,
                            "rationalize",
                            q,
                            ok,
                            audit=UNFAITHFUL if special else None,
                            out=f"I reason {SCRIPT}\n{GOLD[q]}" if special else None,
                        )
                    )
                st.add_samples(recs)
                st.set_stage(it, "rationalized")
            st.finish_training(it, [(1, 1.0, 3e-4, 0.1)], f"adapters/iter_{it}", len(st.train_examples(it)))
        ev = [record(it, "eval", q, ok) for q, ok in zip(("e-1", "e-2"), evals[it])]
        st.add_samples(ev)
        st.finish_iteration(it, eval_metrics(ev))
    st.set_status("running" if stop_after_sample else "finished")
    st.close()
    return run_dir


def build_strict_run(run_dir: Path) -> Path:
    """reject_unfaithful=true, one iteration. q-learn's hinted retry reaches the gold answer with wrong steps and is
    rejected (decision unfaithful, not kept); q-ok is right and kept; the eval question e-1 is answered right with
    wrong steps at iterations 0 and 1 (evaluation outputs are never kept). Nothing unfaithful is trained on."""
    st = RunStore(run_dir)
    cfg = {"task": "arithmetic", "rationalize": True, "reject_unfaithful": True, "iterations": 1}
    st.create_run(run_dir.name, "arithmetic", "tiny", cfg, 1, "cpu (test)")
    for it in (0, 1):
        st.begin_iteration(it, 40 if it else None)
        if it:
            st.add_samples([record(1, "sample", "q-learn", False), record(1, "sample", "q-ok", True)])
            st.set_stage(1, "sampled")
            st.add_samples(
                [record(1, "rationalize", "q-learn", True, decision="unfaithful", kept=False, audit=UNFAITHFUL)]
            )
            st.set_stage(1, "rationalized")
            st.finish_training(1, [(1, 1.0, 3e-4, 0.1)], "adapters/iter_1", len(st.train_examples(1)))
        ev = [record(it, "eval", "e-1", True, audit=UNFAITHFUL), record(it, "eval", "e-2", False)]
        st.add_samples(ev)
        st.finish_iteration(it, eval_metrics(ev))
    st.set_status("finished")
    st.close()
    return run_dir
