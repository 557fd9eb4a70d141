"""Synthetic run stores for the tests and the benchmarks (``tests/helpers/dash_fixtures.py`` re-exports this module).

``build_run`` writes a small, realistic run through the public ``RunStore`` API
(create_run, begin_iteration, add_samples, finish_training, finish_iteration,
set_status). ``build_bulk`` writes a large one (100k samples and more) through add_samples too.
Both draw from the same deterministic generator, so the numbers are reproducible. Each task writes its own
questions (``Task.synthetic_question``), so a task added to the registry needs nothing here.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from star_core.store import RunStore, SampleRecord
from star_core.tasks import SyntheticQuestion, Task, get_task, task_class
from star_core.tasks.base import AUDIT_VERSION

#: Text that must display literally (never as HTML, markdown, LaTeX or a link).
PAYLOAD = "<script>alert(1)</script> <img src=x onerror=alert(1)> **bold** $x$ [link](javascript:alert(1)) :red[red]"
PAYLOAD_QID = "q-payload"

Prefixes = dict[tuple[str, bool], str]
"""(task, hinted) -> the few-shot prefix of its prompts."""


def _prefix(task: Task, hinted: bool) -> str:
    """A two-exemplar few-shot prefix (the hinted one carries the hint markers, as in the paper)."""
    rng = random.Random(99)
    parts = []
    for i in (900, 901):
        q = task.synthetic_question(i, "train", rng)
        parts.append((q.hblock if hinted else q.block) + " " + q.out(q.gold))
    return "\n\n".join(parts) + "\n\n"


def real_prefix(task: str, hinted: bool) -> str:
    """The engine's own few-shot prefix of ``task`` (its default exemplars): realistic prompt lengths."""
    t = get_task(task)
    return t.few_shot_prefix(t.exemplars(t.default_exemplars), hint=hinted)


def _audit_record(checked: int, errors: list[str], verdict: str | None, no_rationale: str | None) -> dict[str, Any]:
    """An audit record as the engine stores it (``Audit.to_dict``)."""
    return {
        "checked": checked,
        "errors": errors,
        "faithful": None if verdict is None else verdict == "faithful",
        "verdict": verdict,
        "no_rationale": no_rationale,
        "version": AUDIT_VERSION,
    }


def _audit(rng: random.Random, q: SyntheticQuestion, ok: bool, ans: str) -> dict[str, Any]:
    """The audit record of an answer: some wrong answers show a wrong step, some right ones no rationale."""
    if not q.audited:
        return _audit_record(0, [], None, None)
    errors = [] if ok or rng.random() < 0.5 else [f"step 1: {q.question} does not equal {ans}"]
    bare = not errors and len(q.question) % 3 == 0  # some right answers show no rationale
    verdict = "unfaithful" if errors else "no_rationale" if bare else "faithful"
    return _audit_record(1 + len(q.question) % 3, errors, verdict, "no intermediate step" if bare else None)


def _decide(rng: random.Random, q: SyntheticQuestion, ok: bool, phase: str, ans: str | None, raw: str, rationale: str):
    """The filter's decision and reason, with the answer, output and rationale it leaves (a wrong answer may
    turn into an unparsable, truncated or hint-leaking output)."""
    if ok:
        decision = "rationalized" if phase == "rationalize" else "correct"
        reason = (
            "the hinted retry reached the gold answer; stored without the hint"
            if phase == "rationalize"
            else f"parsed answer {ans} equals gold {q.gold}"
        )
        return decision, reason, ans, raw, rationale
    roll = rng.random()
    if roll < 0.7:
        decision, reason = "wrong", f"parsed answer {ans} differs from gold {q.gold}"
    elif roll < 0.85:
        decision, reason, ans = "unparsable", "no final answer line found", None
        raw = raw.rsplit("\n", 1)[0] + "\nI think the answer is"
    else:
        decision, reason, ans = "truncated", "output hit max_new_tokens before an answer", None
        raw = raw[: max(5, len(raw) // 2)]
    if phase == "rationalize" and decision == "wrong" and q.hint_leak is not None and rng.random() < 0.5:
        decision, reason = "hint_leak", "the rationale mentions the (CORRECT) marker"
        ans = q.gold
        raw, rationale = q.hint_leak
    return decision, reason, ans, raw, rationale


def _attempt(rng, prefixes: Prefixes, t: str, q: SyntheticQuestion, it, split, phase, hinted=False) -> SampleRecord:
    """One sample of question ``q`` by the synthetic model of iteration ``it`` (its skill grows with ``it``)."""
    p = max(0.02, min(0.95, q.skill + 0.07 * it))
    if hinted:
        p = min(0.97, p + 0.45)
    ok = rng.random() < p
    ans = q.gold if ok else q.wrong()
    raw = q.out(ans)
    audit = _audit(rng, q, ok, ans)
    decision, reason, ans, raw, rationale = _decide(rng, q, ok, phase, ans, raw, q.rationale_of(raw))
    if phase == "eval":
        decision = "correct" if ok else decision
    kept = phase != "eval" and decision in ("correct", "rationalized")
    hinted_prompt = prefixes[(t, True)] + q.hblock
    return SampleRecord(
        iteration=it,
        task=t,
        split=split,
        phase=phase,
        question_id=q.qid,
        question=q.question,
        prompt=hinted_prompt if hinted else prefixes[(t, False)] + q.block,
        raw_output=raw,
        gold=q.gold,
        decision=decision,
        reason=reason,
        correct=ans == q.gold,
        kept=kept,
        grp=q.grp,
        hint=q.hint if hinted else None,
        rationale=rationale if ans is not None else raw,
        answer=ans,
        audit=audit,
        prompt_tokens=len(q.block) // 3,
        output_tokens=len(raw) // 3,
        seconds=0.01 * len(raw),
        train_prompt=q.block if kept else None,
        train_completion=(" " + q.out(q.gold)) if kept else None,
        train_iteration=it if kept else None,
    )


def _payload_grp(task: str) -> str:
    return "1" if task_class(task).digit_groups else "all"


def _payload_retry(task: str) -> SampleRecord:
    """A hinted retry whose every text field holds markup that must display literally."""
    return SampleRecord(
        iteration=1,
        task=task,
        split="train",
        phase="rationalize",
        question_id=PAYLOAD_QID,
        question="Payload question " + PAYLOAD,
        prompt="Q: ex <b>(CORRECT)</b>\nA: fine\n\nQ: payload " + PAYLOAD + " <b>(CORRECT)</b>\nA:",
        hint=" <b>(CORRECT)</b>",
        raw_output="I saw <b>(CORRECT)</b> " + PAYLOAD,
        gold="7",
        decision="hint_leak",
        reason="the rationale repeats the hint <b>(CORRECT)</b>",
        correct=True,
        grp=_payload_grp(task),
        rationale="I saw <b>(CORRECT)</b>",
        answer="7",
    )


def _payload_eval(task: str) -> SampleRecord:
    """An evaluation sample whose every text field holds markup that must display literally."""
    return SampleRecord(
        iteration=0,
        task=task,
        split="eval",
        phase="eval",
        question_id=PAYLOAD_QID,
        question="Payload question " + PAYLOAD,
        prompt="Q: payload\nA:",
        raw_output="RAW " + PAYLOAD,
        gold="7",
        decision="wrong",
        reason="parsed answer <b>x</b> differs from gold 7",
        correct=False,
        grp=_payload_grp(task),
        rationale="RATIONALE " + PAYLOAD,
        answer="<b>x</b>",
        audit={"checked": 2, "errors": ["step <i>2</i>: **3+4** != 8 $x$"], "faithful": False},
    )


def _training_phases(
    rng, prefixes: Prefixes, questions, tasks, it: int, rationalize: bool, payload: bool
) -> Iterator[tuple[int, str, list[SampleRecord]]]:
    """Iteration ``it``'s samples of every training question, then the hinted retries of those not kept."""
    batch = [_attempt(rng, prefixes, t, q, it - 1, "train", "sample") for t in tasks for q in questions[(t, "train")]]
    for r in batch:
        r.iteration = it
        r.train_iteration = it if r.kept else None
    yield it, "sample", batch
    if not rationalize:
        return
    failed = {(r.task, r.question_id) for r in batch if not r.kept}
    rb = [
        _attempt(rng, prefixes, t, q, it - 1, "train", "rationalize", hinted=True)
        for t in tasks
        for q in questions[(t, "train")]
        if (t, q.qid) in failed
    ]
    for r in rb:
        r.iteration = it
        r.train_iteration = it if r.kept else None
    if payload and it == 1:
        rb.append(_payload_retry(tasks[0]))
    yield it, "rationalize", rb


def synth_records(
    tasks=("arithmetic",),
    iterations: int = 2,
    n_train: int = 12,
    n_eval: int = 6,
    rationalize: bool = True,
    seed: int = 0,
    payload: bool = True,
    warm_start: int = 0,
    direct: bool = False,
    real_prefixes: bool = False,
) -> Iterator[tuple[int, str, list[SampleRecord]]]:
    """Yield (iteration, phase, records) batches, in the order the engine writes them. ``direct`` adds the
    direct-answer evaluation and ``warm_start`` that many reference examples (and the warm-started model's
    evaluation) to iteration 0, for the tasks with reference rationales (not CommonsenseQA). ``real_prefixes``:
    the tasks' own few-shot prefixes instead of two synthetic exemplars."""
    questions: dict[tuple[str, str], list[SyntheticQuestion]] = {}
    for t in tasks:
        task, qr = get_task(t), random.Random(f"{seed}-{t}")
        questions[(t, "train")] = [task.synthetic_question(i, "train", qr) for i in range(n_train)]
        questions[(t, "eval")] = [task.synthetic_question(i, "eval", qr) for i in range(n_eval)]
    if real_prefixes:
        prefixes = {(t, h): real_prefix(t, h) for t in tasks for h in (False, True)}
    else:
        prefixes = {(t, h): _prefix(get_task(t), h) for t in tasks for h in (False, True)}
    for it in range(iterations + 1):
        rng = random.Random(f"{seed}-{it}")
        if it >= 1:
            yield from _training_phases(rng, prefixes, questions, tasks, it, rationalize, payload)
        ev = [_attempt(rng, prefixes, t, q, it, "eval", "eval") for t in tasks for q in questions[(t, "eval")]]
        if payload and it == 0:
            ev.append(_payload_eval(tasks[0]))
        yield it, "eval", ev
        if it == 0:
            yield from _iteration_zero_extras(prefixes, questions, tasks, seed, warm_start, direct)


def _warm_start_records(tasks, warm_start: int, seed: int) -> list[SampleRecord]:
    """``warm_start`` reference examples per task, each kept with its training example."""
    wr = random.Random(f"{seed}-warm")
    recs = []
    for t in tasks:
        task = get_task(t)
        for i in range(warm_start):
            q = task.synthetic_question(500 + i, "train", wr)
            out = " " + q.out(q.gold)
            recs.append(
                SampleRecord(
                    iteration=0,
                    task=t,
                    split="train",
                    phase="warm_start",
                    question_id="warm-" + q.qid,
                    question=q.question,
                    prompt=q.block,
                    raw_output=out,
                    gold=q.gold,
                    decision="reference",
                    reason="reference rationale written by the task, not by the model: supervised warm start, "
                    "not bootstrapped",
                    correct=True,
                    kept=True,
                    grp=q.grp,
                    rationale=q.rationale,
                    answer=q.gold,
                    audit=_audit_record(2, [], "faithful", None),
                    train_prompt=q.block,
                    train_completion=out,
                    train_iteration=0,
                )
            )
    return recs


def _iteration_zero_extras(
    prefixes: Prefixes,
    questions,
    tasks,
    seed: int,
    warm_start: int,
    direct: bool,
) -> Iterator[tuple[int, str, list[SampleRecord]]]:
    """The direct-answer evaluation, the warm start's reference examples and the warm-started model's
    evaluation (their own random streams, so the rest of a run is the same with or without them)."""
    sup = [t for t in tasks if task_class(t).warm_start_references]

    def evaluation(phase: str, skill: float, rng: random.Random) -> list[SampleRecord]:
        recs = [_attempt(rng, prefixes, t, q, skill, "eval", "eval") for t in sup for q in questions[(t, "eval")]]
        for r in recs:
            r.phase, r.iteration = phase, 0
        return recs

    if direct:
        recs = evaluation("direct_eval", 0.5, random.Random(f"{seed}-direct"))
        for r in recs:
            r.raw_output = r.rationale = f"{r.question} = {r.answer}. The answer is {r.answer}."
            r.audit = _audit_record(1, [], "no_rationale", "no intermediate step")
        yield 0, "direct_eval", recs
    if warm_start:
        yield 0, "warm_start", _warm_start_records(sup, warm_start, seed)
        yield 0, "warm_eval", evaluation("warm_eval", 2.0, random.Random(f"{seed}-warm-eval"))


def _metrics(records: list[SampleRecord]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str], list[int]] = {}
    for r in records:
        for g in {"all", r.grp}:
            a = acc.setdefault((r.task, g), [0, 0])
            a[0] += 1
            a[1] += int(r.correct)
    return [
        {"task": t, "split": "eval", "grp": g, "n": n, "n_correct": c, "accuracy": c / n}
        for (t, g), (n, c) in sorted(acc.items())
    ]


def build_run(
    run_dir: str | os.PathLike,
    *,
    tasks=("arithmetic",),
    iterations: int = 2,
    n_train: int = 12,
    n_eval: int = 6,
    rationalize: bool = True,
    status: str = "finished",
    seed: int = 0,
    name: str | None = None,
    payload: bool = True,
    model: str = "tiny-test-model",
    stop_after: tuple[int, str] | None = None,
    warm_start: int = 0,
    direct: bool = False,
) -> Path:
    """Write a small synthetic run through RunStore; returns the run folder.

    ``status``: the final runs.status ("running" keeps this process's pid, so it reads as live).
    ``stop_after=(iteration, phase)`` stops writing after that batch (a run caught mid-way).
    """
    run_dir = Path(run_dir)
    st = RunStore(run_dir)
    cfg = {
        "task": ",".join(tasks),
        "model": model,
        "iterations": iterations,
        "rationalize": rationalize,
        "n_train": n_train,
        "n_eval": n_eval,
        "max_new_tokens": 128,
        "temperature": 0.0,
        "samples_per_question": 1,
        "seed": seed,
        "warm_start": warm_start,
        "warm_start_digits": [1, 2],
        "direct_baseline": direct,
    }
    (run_dir / "config.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in cfg.items()))
    st.create_run(name or run_dir.name, ",".join(tasks), model, cfg, iterations, "cpu (test)")
    steps = 40
    batches = list(synth_records(tasks, iterations, n_train, n_eval, rationalize, seed, payload, warm_start, direct))
    for b, (it, phase, recs) in enumerate(batches):
        if st.iteration_stage(it) is None:
            st.begin_iteration(it, steps if it else (30 if warm_start else None))
        st.add_samples(recs)
        if phase == "sample":
            st.set_stage(it, "sampled")
        elif phase == "rationalize":
            st.set_stage(it, "rationalized")
        if stop_after == (it, phase):
            break
        if phase == "eval":
            evals = recs
        if phase == "warm_start":
            st.finish_training(
                0, [(s, 1.5 / (1 + 0.1 * s), 3e-4, 0.1) for s in range(1, 31)], "adapters/warm_start", len(recs)
            )
        if b + 1 == len(batches) or batches[b + 1][0] != it:  # the iteration's last batch
            st.finish_iteration(it, _metrics(evals))
        elif phase == ("rationalize" if rationalize else "sample"):
            n = len(st.training_set(it))
            losses = [(s, 2.0 / (1 + 0.05 * s + 0.3 * it), 3e-4, 0.1) for s in range(1, steps + 1)]
            st.finish_training(it, losses, f"adapters/iter_{it}", n)
            steps = int(steps * 1.2)
    if status != "running":
        st.set_status(status, error="RuntimeError: synthetic crash" if status == "crashed" else None)
    st.close()
    return run_dir


def build_bulk(
    run_dir: str | os.PathLike,
    *,
    n_samples: int = 100_000,
    iterations: int = 10,
    tasks=("arithmetic", "commonsenseqa", "gsm8k"),
    seed: int = 0,
    batch_size: int = 64,
    real_prefixes: bool = True,
    timings: list[tuple[int, int, float]] | None = None,
) -> Path:
    """A large finished run (about ``n_samples`` samples), written through ``RunStore.add_samples`` in batches
    of ``batch_size`` (one transaction each, as the engine writes), with the tasks' real few-shot prefixes.
    ``timings`` receives (samples stored before the batch, batch size, seconds) for every batch."""
    run_dir = Path(run_dir)
    st = RunStore(run_dir)
    st.create_run(
        run_dir.name,
        ",".join(tasks),
        "bulk-model",
        {"task": ",".join(tasks), "iterations": iterations},
        iterations,
        "cpu (bench)",
    )
    # per iteration and task: n_train samples + ~0.39 n_train hinted retries + n_eval (= n_train/4) evals
    per = n_samples / (len(tasks) * (iterations * 1.39 + (iterations + 1) * 0.25))
    n_train, n_eval = int(per), int(per * 0.25)
    stored = 0
    for it, phase, recs in synth_records(
        tasks, iterations, n_train, n_eval, True, seed, payload=False, real_prefixes=real_prefixes
    ):
        if st.iteration_stage(it) is None:
            st.begin_iteration(it, 40 if it else None)
        for i in range(0, len(recs), batch_size):
            chunk = recs[i : i + batch_size]
            t0 = time.perf_counter()
            st.add_samples(chunk)
            if timings is not None:
                timings.append((stored, len(chunk), time.perf_counter() - t0))
            stored += len(chunk)
        if phase == "rationalize":
            st.finish_training(
                it,
                [(s, 2.0 / (1 + 0.05 * s + 0.3 * it), 3e-4, 0.1) for s in range(1, 41)],
                f"adapters/iter_{it}",
                len(st.training_set(it)),
            )
        if phase == "eval":
            st.finish_iteration(it, _metrics(recs))
    st.set_status("finished")
    st.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    st.close()
    return run_dir
