"""Synthetic run stores for the tests and the benchmarks (``tests/dash_fixtures.py`` re-exports this module).

``build_run`` writes a small, realistic run through the public ``RunStore`` API
(create_run, begin_iteration, add_samples, finish_training, finish_iteration,
set_status). ``build_bulk`` writes a large one (100k samples and more) through add_samples too.
Both draw from the same deterministic generator, so the numbers are reproducible.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from star_core.store import RunStore, SampleRecord
from star_core.tasks.base import AUDIT_VERSION

#: Text that must display literally (never as HTML, markdown, LaTeX or a link).
PAYLOAD = "<script>alert(1)</script> <img src=x onerror=alert(1)> **bold** $x$ [link](javascript:alert(1)) :red[red]"
PAYLOAD_QID = "q-payload"

_NAMES = ["Ava", "Ben", "Cleo", "Dev", "Ema", "Finn", "Gus", "Hana"]
_THINGS = ["apples", "marbles", "stamps", "books", "shells", "coins"]
_CQA = [
    (
        "Where would you put a cup after washing it?",
        ["cupboard", "garden", "ocean", "desk", "shoe"],
        0,
        "A clean cup is stored where dishes are kept",
    ),
    (
        "What do people use to cut paper?",
        ["spoon", "scissors", "pillow", "cloud", "river"],
        1,
        "Scissors have blades made for cutting paper",
    ),
    (
        "Where is a good place to read quietly?",
        ["stadium", "concert", "library", "highway", "market"],
        2,
        "A library is kept quiet for reading",
    ),
    ("What would you wear on your feet?", ["hat", "gloves", "scarf", "shoes", "belt"], 3, "Shoes are worn on the feet"),
    (
        "What falls from clouds when it rains?",
        ["sand", "leaves", "snowmen", "bricks", "water"],
        4,
        "Rain is water falling from clouds",
    ),
]
_LETTERS = "abcde"


def _spaced(n: int) -> str:
    return " ".join(str(n))


def _arith_scratch(a: int, b: int) -> str:
    lines, carry = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    acc = ""
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        acc = str(s % 10) + acc
        carry = s // 10
        lines.append(
            f"{_spaced(int(str(a)[-i - 1 :] or 0))} + {_spaced(int(str(b)[-i - 1 :] or 0))} , "
            f"{' '.join(acc)} C: {carry}"
        )
    return "<scratch>\n" + "\n".join(lines) + "\n</scratch>"


def _question(task: str, qi: int, split: str, rng: random.Random) -> dict[str, Any]:
    """A question with its gold answer, prompt, hinted prompt, hint and a correct rationale."""
    if task == "arithmetic":
        d = 1 + qi % 5 if split == "train" else 1 + qi % 6
        lo = 10 ** (d - 1) if d > 1 else 0
        a, b = rng.randint(lo, 10**d - 1), rng.randint(lo, 10**d - 1)
        gold = str(a + b)
        block = f"Input:\n{_spaced(a)} + {_spaced(b)}\nTarget:\n"
        hint = _spaced(a + b)
        hblock = f"Input:\n{_spaced(a)} + {_spaced(b)}\nAnswer: {hint}\nTarget:\n"
        rat = _arith_scratch(a, b)
        return dict(
            qid=f"add-{d}d-{split}-{qi:05d}",
            grp=str(d),
            question=f"{a} + {b}",
            gold=gold,
            block=block,
            hblock=hblock,
            hint=hint,
            rationale=rat,
            out=lambda ans, r=rat: f"{r}\n{_spaced(int(ans))}",
            wrong=lambda: str(a + b + rng.choice([1, 10, -1, 100])),
        )
    if task == "commonsenseqa":
        stem, choices, ci, why = _CQA[qi % len(_CQA)]
        gold = _LETTERS[ci].upper()
        ch = "\n".join(f"({_LETTERS[i]}) {c}" for i, c in enumerate(choices))
        hch = "\n".join(f"({_LETTERS[i]}) {c}{' (CORRECT)' if i == ci else ''}" for i, c in enumerate(choices))
        q = f"Q: {stem} [#{qi}]\nAnswer Choices:\n{ch}"
        return dict(
            qid=f"cqa-{split}-{qi:05d}",
            grp="all",
            question=q,
            gold=gold,
            block=q + "\nA:",
            hblock=f"Q: {stem} [#{qi}]\nAnswer Choices:\n{hch}\nA:",
            hint=" (CORRECT)",
            rationale=why + ".",
            out=lambda ans, why=why, ch=choices: (
                f"{why}. So the answer is {ch[_LETTERS.index(ans.lower())]} ({ans.lower()})."
            ),
            wrong=lambda: rng.choice([L.upper() for L in _LETTERS if L.upper() != gold]),
        )
    name, thing = _NAMES[qi % len(_NAMES)], _THINGS[qi % len(_THINGS)]
    x, y = rng.randint(2, 60), rng.randint(2, 60)
    gold = str(x + y)
    q = f"{name} has {x} {thing} and finds {y} more. How many {thing} does {name} have now? [#{qi}]"
    rat = f"{name} starts with {x} {thing}. After finding {y} more: {x} + {y} = <<{x}+{y}={x + y}>>{x + y}."
    return dict(
        qid=f"gsm-{split}-{qi:05d}",
        grp="all",
        question=q,
        gold=gold,
        block=f"Q: {q}\nA:",
        hblock=f"Q: {q} (Answer: {gold})\nA:",
        hint=f" (Answer: {gold})",
        rationale=rat,
        out=lambda ans, rat=rat: f"{rat}\n#### {ans}",
        wrong=lambda: str(x + y + rng.choice([1, 2, -3, 10])),
    )


def _prefix(task: str, hinted: bool) -> str:
    """A two-exemplar few-shot prefix (the hinted one carries the hint markers, as in the paper)."""
    rng = random.Random(99)
    parts = []
    for i in (900, 901):
        q = _question(task, i, "train", rng)
        parts.append((q["hblock"] if hinted else q["block"]) + " " + q["out"](q["gold"]))
    return "\n\n".join(parts) + "\n\n"


def _skill(task: str, grp: str, iteration: int) -> float:
    base = {"arithmetic": 0.55, "commonsenseqa": 0.4, "gsm8k": 0.15}[task]
    if task == "arithmetic":
        base -= 0.09 * (int(grp) - 1)
    return max(0.02, min(0.95, base + 0.07 * iteration))


def real_prefix(task: str, hinted: bool) -> str:
    """The engine's own few-shot prefix of ``task`` (its default exemplars): realistic prompt lengths."""
    from star_core.tasks import get_task

    t = get_task(task)
    return t.few_shot_prefix(t.exemplars(t.default_exemplars), hint=hinted)


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
    evaluation) to iteration 0, for the tasks other than CommonsenseQA. ``real_prefixes``: the tasks' own
    few-shot prefixes instead of two synthetic exemplars."""
    questions: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in tasks:
        qr = random.Random(f"{seed}-{t}")
        questions[(t, "train")] = [_question(t, i, "train", qr) for i in range(n_train)]
        questions[(t, "eval")] = [_question(t, i, "eval", qr) for i in range(n_eval)]
    make = real_prefix if real_prefixes else _prefix
    prefixes = {(t, h): make(t, h) for t in tasks for h in (False, True)}

    def attempt(rng, t, q, it, split, phase, hinted=False):
        p = _skill(t, q["grp"], it)
        if hinted:
            p = min(0.97, p + 0.45)
        ok = rng.random() < p
        audit = None
        ans = q["gold"] if ok else q["wrong"]()
        raw = q["out"](ans)
        rationale = raw.rsplit("\n", 1)[0] if t != "commonsenseqa" else raw.split(" So the answer")[0]
        if t != "commonsenseqa":
            errors = [] if ok or rng.random() < 0.5 else [f"step 1: {q['question']} does not equal {ans}"]
            bare = not errors and len(q["question"]) % 3 == 0  # some right answers show no rationale
            verdict = "unfaithful" if errors else "no_rationale" if bare else "faithful"
            audit = {
                "checked": 1 + len(q["question"]) % 3,
                "errors": errors,
                "faithful": verdict == "faithful",
                "verdict": verdict,
                "no_rationale": "no intermediate step" if bare else None,
                "version": AUDIT_VERSION,
            }
        else:  # names no choice in words: nothing checkable
            audit = {
                "checked": 0,
                "errors": [],
                "faithful": None,
                "verdict": None,
                "no_rationale": None,
                "version": AUDIT_VERSION,
            }
        if ok:
            decision = "rationalized" if phase == "rationalize" else "correct"
            reason = (
                "the hinted retry reached the gold answer; stored without the hint"
                if phase == "rationalize"
                else f"parsed answer {ans} equals gold {q['gold']}"
            )
        else:
            roll = rng.random()
            if roll < 0.7:
                decision, reason = "wrong", f"parsed answer {ans} differs from gold {q['gold']}"
            elif roll < 0.85:
                decision, reason, ans = "unparsable", "no final answer line found", None
                raw = raw.rsplit("\n", 1)[0] + "\nI think the answer is"
            else:
                decision, reason, ans = "truncated", "output hit max_new_tokens before an answer", None
                raw = raw[: max(5, len(raw) // 2)]
            if phase == "rationalize" and decision == "wrong" and t == "commonsenseqa" and rng.random() < 0.5:
                decision, reason = "hint_leak", "the rationale mentions the (CORRECT) marker"
                ans = q["gold"]
                raw = f"The choice marked (CORRECT) is right. So the answer is ({q['gold'].lower()})."
                rationale = "The choice marked (CORRECT) is right."
        if phase == "eval":
            decision = "correct" if ok else decision
        kept = phase != "eval" and decision in ("correct", "rationalized")
        hinted_prompt = prefixes[(t, True)] + q["hblock"]
        rec = SampleRecord(
            iteration=it,
            task=t,
            split=split,
            phase=phase,
            question_id=q["qid"],
            question=q["question"],
            prompt=hinted_prompt if hinted else prefixes[(t, False)] + q["block"],
            raw_output=raw,
            gold=q["gold"],
            decision=decision,
            reason=reason,
            correct=ans == q["gold"],
            kept=kept,
            grp=q["grp"],
            hint=q["hint"] if hinted else None,
            rationale=rationale if ans is not None else raw,
            answer=ans,
            audit=audit,
            prompt_tokens=len(q["block"]) // 3,
            output_tokens=len(raw) // 3,
            seconds=0.01 * len(raw),
            train_prompt=q["block"] if kept else None,
            train_completion=(" " + q["out"](q["gold"])) if kept else None,
            train_iteration=it if kept else None,
        )
        return rec

    for it in range(iterations + 1):
        rng = random.Random(f"{seed}-{it}")
        if it >= 1:
            batch = [attempt(rng, t, q, it - 1, "train", "sample") for t in tasks for q in questions[(t, "train")]]
            for r in batch:
                r.iteration = it
                r.train_iteration = it if r.kept else None
            yield it, "sample", batch
            if rationalize:
                failed = {(r.task, r.question_id) for r in batch if not r.kept}
                rb = [
                    attempt(rng, t, q, it - 1, "train", "rationalize", hinted=True)
                    for t in tasks
                    for q in questions[(t, "train")]
                    if (t, q["qid"]) in failed
                ]
                for r in rb:
                    r.iteration = it
                    r.train_iteration = it if r.kept else None
                if payload and it == 1:
                    t = tasks[0]
                    rb.append(
                        SampleRecord(
                            iteration=1,
                            task=t,
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
                            grp="1" if t == "arithmetic" else "all",
                            rationale="I saw <b>(CORRECT)</b>",
                            answer="7",
                        )
                    )
                yield it, "rationalize", rb
        ev = [attempt(rng, t, q, it, "eval", "eval") for t in tasks for q in questions[(t, "eval")]]
        if payload and it == 0:
            t = tasks[0]
            ev.append(
                SampleRecord(
                    iteration=0,
                    task=t,
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
                    grp="1" if t == "arithmetic" else "all",
                    rationale="RATIONALE " + PAYLOAD,
                    answer="<b>x</b>",
                    audit={"checked": 2, "errors": ["step <i>2</i>: **3+4** != 8 $x$"], "faithful": False},
                )
            )
        yield it, "eval", ev
        if it == 0:
            yield from _iteration_zero_extras(attempt, questions, tasks, seed, warm_start, direct)


def _iteration_zero_extras(
    attempt,
    questions,
    tasks,
    seed: int,
    warm_start: int,
    direct: bool,
) -> Iterator[tuple[int, str, list[SampleRecord]]]:
    """The direct-answer evaluation, the warm start's reference examples and the warm-started model's
    evaluation (their own random streams, so the rest of a run is the same with or without them)."""
    sup = [t for t in tasks if t != "commonsenseqa"]

    def evaluation(phase: str, skill: float, rng: random.Random) -> list[SampleRecord]:
        recs = [attempt(rng, t, q, skill, "eval", "eval") for t in sup for q in questions[(t, "eval")]]
        for r in recs:
            r.phase, r.iteration = phase, 0
        return recs

    if direct:
        recs = evaluation("direct_eval", 0.5, random.Random(f"{seed}-direct"))
        for r in recs:
            r.raw_output = r.rationale = f"{r.question} = {r.answer}. The answer is {r.answer}."
            r.audit = {
                "checked": 1,
                "errors": [],
                "faithful": False,
                "verdict": "no_rationale",
                "no_rationale": "no intermediate step",
                "version": AUDIT_VERSION,
            }
        yield 0, "direct_eval", recs
    if warm_start:
        wr = random.Random(f"{seed}-warm")
        recs = []
        for t in sup:
            for i in range(warm_start):
                q = _question(t, 500 + i, "train", wr)
                out = " " + q["out"](q["gold"])
                recs.append(
                    SampleRecord(
                        iteration=0,
                        task=t,
                        split="train",
                        phase="warm_start",
                        question_id="warm-" + q["qid"],
                        question=q["question"],
                        prompt=q["block"],
                        raw_output=out,
                        gold=q["gold"],
                        decision="reference",
                        reason="reference rationale written by the task, not by the model: supervised warm start, "
                        "not bootstrapped",
                        correct=True,
                        kept=True,
                        grp=q["grp"],
                        rationale=q["rationale"],
                        answer=q["gold"],
                        audit={
                            "checked": 2,
                            "errors": [],
                            "faithful": True,
                            "verdict": "faithful",
                            "no_rationale": None,
                            "version": AUDIT_VERSION,
                        },
                        train_prompt=q["block"],
                        train_completion=out,
                        train_iteration=0,
                    )
                )
        yield 0, "warm_start", recs
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


def write_corrupt(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "store.sqlite").write_bytes(b"\x00garbage, not sqlite\xff" * 64)
    return run_dir


def write_half(run_dir: str | os.PathLike) -> Path:
    """Tables exist but no run row (a run that died while starting)."""
    st = RunStore(run_dir)
    st.close()
    return Path(run_dir)


def dead_pid() -> int:
    """A pid that is not alive on this host."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def set_running(run_dir: str | os.PathLike, pid: int | None = None, heartbeat_age: float = 0.0) -> None:
    """Mark a stored run as running with ``pid`` and a heartbeat ``heartbeat_age`` seconds old."""
    con = sqlite3.connect(Path(run_dir) / "store.sqlite")
    with con:
        con.execute(
            "UPDATE runs SET status='running', pid=?, heartbeat_at=?, updated_at=?",
            (pid if pid is not None else os.getpid(), time.time() - heartbeat_age, time.time() - heartbeat_age),
        )
    con.close()


def sql(run: Path, query: str, *params):
    """Run one read query on a run's store (test helper)."""
    con = sqlite3.connect(run / "store.sqlite")
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()
