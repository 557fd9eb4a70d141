"""The STaR outer loop, resumable at every step.

Iteration 0 evaluates the untrained few-shot model (the baseline). Each
iteration i >= 1 then:
  1. samples a rationale per training question with model M(i-1)   stage -> sampled
  2. retries the wrong ones with the gold answer as a hint          stage -> rationalized
  3. trains adapter i on the kept examples (from the base model)    stage -> trained
  4. evaluates M(i) on the eval split and writes the metrics        stage -> done

Every batch of samples is one transaction with a UNIQUE key, so after a crash
``resume`` skips what is stored and redoes only what is not. Training writes
its adapter to a temporary folder and renames it, then records the losses and
the stage in one transaction; an interrupted training run is simply redone.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import config as config_mod
from .config import StarConfig
from .evaluation import accuracy_rows
from .filtering import judge
from .store import ADAPTERS_DIR, CONFIG_NAME, DB_NAME, RunStore, SampleRecord
from .tasks import Problem, Task, get_task

log = logging.getLogger("star")

STAGES = ["pending", "sampled", "rationalized", "trained", "done"]


class RunError(RuntimeError):
    """A run cannot start or resume (the message says why and what to do)."""


class Stopped(Exception):
    """Raised from the SIGTERM handler: the run stops cleanly and stays resumable."""


def make_task(cfg: StarConfig) -> Task:
    if cfg.task == "arithmetic":
        return get_task("arithmetic", format=cfg.arith_format, train_digits=tuple(cfg.train_digits),
                        eval_digits=tuple(cfg.eval_digits))
    return get_task(cfg.task)


@dataclass
class Data:
    task: Task
    train: list[Problem]
    eval: list[Problem]
    exemplars: list
    exemplar_source: str


def load_data(cfg: StarConfig) -> Data:
    task = make_task(cfg)
    n_ex = cfg.n_exemplars or task.default_exemplars
    exemplars = task.exemplars(n_ex, seed=cfg.seed, path=cfg.exemplars_file)
    source = f"file {cfg.exemplars_file}" if cfg.exemplars_file else f"task default (seed {cfg.seed})"
    train = task.load("train", path=cfg.train_file, limit=cfg.n_train, seed=cfg.seed)
    ex_ids = {e.problem.id for e in exemplars}
    train = [p for p in train if p.id not in ex_ids]
    evals = task.load("eval", path=cfg.eval_file, limit=cfg.n_eval, seed=cfg.seed)
    if not train:
        raise RunError("no training questions: check --train-file / n_train")
    if not evals:
        raise RunError("no evaluation questions: check --eval-file / n_eval")
    return Data(task, train, evals, exemplars, source)


class Runner:
    def __init__(self, cfg: StarConfig, run_dir: Path, store: RunStore, data: Data, progress: bool = True):
        self.cfg, self.run_dir, self.store, self.data = cfg, run_dir, store, data
        self.task = data.task
        self.progress = progress
        self.loaded = None
        self.model = None  # base model, possibly wrapped in a PeftModel
        self.adapter: str | None = None  # adapter currently attached

    # ---- model state ---------------------------------------------------------
    def _ensure_model(self) -> None:
        if self.loaded is None:
            from .models import load_base

            if self.cfg.threads:
                import torch

                torch.set_num_threads(self.cfg.threads)
            self.loaded = load_base(self.cfg.model, self.cfg.quantization, self.cfg.device)
            self.model = self.loaded.model

    def use_adapter(self, rel: str | None) -> None:
        """Attach the adapter at ``rel`` (relative to the run folder), or none."""
        self._ensure_model()
        if rel == self.adapter:
            return
        from .models import load_adapter, merge_for_inference, strip_lora

        self.model = strip_lora(self.model)
        if rel is not None:
            self.model = load_adapter(self.model, self.run_dir / rel)
            merge_for_inference(self.model, self.loaded.quantized)
        self.adapter = rel
        self.model.eval()

    # ---- prompts -----------------------------------------------------------
    def train_prompt(self, p: Problem) -> str:
        q = self.task.format_question(p, hint=False)
        if self.cfg.keep_prefix_in_training:
            return self.task.few_shot_prefix(self.data.exemplars, hint=False) + q
        return q

    # ---- one phase: generate, judge, store ------------------------------------
    def run_phase(self, iteration: int, phase: str, problems: list[Problem]) -> None:
        cfg, task = self.cfg, self.task
        k = cfg.samples_per_question if phase == "sample" else 1
        done = self.store.done_question_ids(iteration, task.name, phase)
        todo = [(p, j) for p in problems for j in range(k) if (p.id, j) not in done]
        if not todo:
            return
        hint = phase == "rationalize"
        split = "eval" if phase == "eval" else "train"
        prompts = [task.prompt(p, self.data.exemplars, hint=hint) for p, _ in todo]
        bar = tqdm(total=len(todo), desc=f"iter {iteration} {phase}", unit="q", disable=not self.progress,
                   leave=False)

        def on_batch(idx: list[int], gens) -> None:
            recs = []
            for i, g in zip(idx, gens):
                p, j = todo[i]
                d = judge(task, p, g.text, g.truncated, phase, cfg.max_new_tokens, cfg.reject_unfaithful)
                rec = SampleRecord(
                    iteration=iteration, task=task.name, split=split, phase=phase, question_id=p.id, k=j,
                    grp=p.group, question=p.question, prompt=prompts[i],
                    hint=task.hint_text(p) if hint else None, raw_output=g.text, rationale=d.parsed.rationale,
                    answer=d.parsed.answer, gold=p.gold, decision=d.decision, reason=d.reason,
                    correct=d.correct, kept=d.kept, audit=d.audit.to_dict(), prompt_tokens=g.prompt_tokens,
                    output_tokens=g.output_tokens, seconds=g.seconds)
                if d.kept:
                    rec.train_prompt = self.train_prompt(p)
                    rec.train_completion = d.text.rstrip()
                    rec.train_iteration = iteration
                recs.append(rec)
            self.store.add_samples(recs)
            bar.update(len(idx))

        from .sampling import generate

        seed = cfg.seed * 7919 + iteration * 31 + {"sample": 0, "rationalize": 1, "eval": 2}[phase]
        generate(self.model, self.loaded.tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                 is_complete=task.is_complete, temperature=cfg.temperature if phase != "eval" else 0.0,
                 top_p=cfg.top_p, batch_size=cfg.batch_size, share_prefix=cfg.share_prefix_cache,
                 seed=seed, stop_chars=task.stop_chars, on_batch=on_batch)
        bar.close()

    def needs_rationalization(self, iteration: int) -> list[Problem]:
        rows = self.store.samples(iteration, self.task.name, "sample")
        solved = {r["question_id"] for r in rows if r["kept"]}
        by_id = {p.id: p for p in self.data.train}
        return [by_id[q] for q in dict.fromkeys(r["question_id"] for r in rows) if q not in solved and q in by_id]

    # ---- training ------------------------------------------------------------------
    def train_iteration(self, iteration: int) -> None:
        from .models import fresh_lora, load_adapter, lora_config, strip_lora
        from .training import TrainArgs, train

        cfg = self.cfg
        rows = self.store.train_examples(iteration)
        examples = [(r["prompt"], r["completion"]) for r in rows]
        rel = f"{ADAPTERS_DIR}/iter_{iteration}"
        final = self.run_dir / rel
        tmp = self.run_dir / f"{rel}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self._ensure_model()
        base = strip_lora(self.model)
        prev = f"{ADAPTERS_DIR}/iter_{iteration - 1}"
        if not cfg.restart_from_base and iteration > 1 and (self.run_dir / prev).is_dir():
            self.model = load_adapter(base, self.run_dir / prev, trainable=True)
        else:
            self.model = fresh_lora(base, lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout,
                                                      list(cfg.lora_targets)), seed=cfg.seed + iteration)
        self.adapter = None
        steps = cfg.steps_for(iteration)
        losses: list = []
        if examples:
            bar = tqdm(total=steps, desc=f"iter {iteration} train", unit="step", disable=not self.progress,
                       leave=False)
            args = TrainArgs(steps=steps, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps,
                             batch_size=cfg.train_batch_size, grad_accum=cfg.grad_accum,
                             max_grad_norm=cfg.max_grad_norm, mask_prompt=cfg.mask_prompt,
                             max_seq_len=cfg.max_seq_len, seed=cfg.seed + iteration)

            def on_step(step: int, loss: float, lr: float) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if step % 10 == 0:
                    self.store.heartbeat()

            losses = train(self.model, self.loaded.tokenizer, examples, args, on_step)
            bar.close()
        else:
            log.warning("iteration %d: no kept examples; the adapter is untrained", iteration)
        self.model.save_pretrained(str(tmp))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.adapter = rel
        self.model.eval()
        from .models import merge_for_inference

        merge_for_inference(self.model, self.loaded.quantized)
        self.store.finish_training(iteration, losses, rel, len(examples))

    def finish_eval(self, iteration: int) -> None:
        rows = self.store.samples(iteration, self.task.name, "eval")
        metrics = accuracy_rows([dict(r) for r in rows])
        self.store.finish_iteration(iteration, metrics)
        parts = [f"{m['grp']}: {100 * m['accuracy']:.1f}%" for m in metrics]
        log.info("iteration %d eval accuracy  %s", iteration, "  ".join(parts))

    # ---- the loop -----------------------------------------------------------------
    def run(self) -> None:
        cfg, store = self.cfg, self.store
        if store.iteration_stage(0) != "done":
            store.begin_iteration(0, None)
            self.use_adapter(cfg.eval_adapter)
            self.run_phase(0, "eval", self.data.eval)
            self.finish_eval(0)
        for i in range(1, cfg.iterations + 1):
            stage = store.iteration_stage(i)
            if stage == "done":
                continue
            store.begin_iteration(i, cfg.steps_for(i))
            at = STAGES.index(stage or "pending")
            if at < STAGES.index("rationalized"):
                prev = store.iteration_stage(i - 1)
                prev_adapter = f"{ADAPTERS_DIR}/iter_{i - 1}" if i > 1 else None
                if prev != "done":
                    raise RunError(f"iteration {i - 1} is not finished ({prev}); the store is inconsistent")
                self.use_adapter(prev_adapter)
            if at < STAGES.index("sampled"):
                self.run_phase(i, "sample", self.data.train)
                store.set_stage(i, "sampled")
            if at < STAGES.index("rationalized"):
                if cfg.rationalize:
                    self.run_phase(i, "rationalize", self.needs_rationalization(i))
                store.set_stage(i, "rationalized")
            if at < STAGES.index("trained"):
                self.train_iteration(i)
            self.use_adapter(f"{ADAPTERS_DIR}/iter_{i}")
            self.run_phase(i, "eval", self.data.eval)
            self.finish_eval(i)


def _install_sigterm() -> None:
    def handler(signum, frame):  # noqa: ARG001
        raise Stopped()

    signal.signal(signal.SIGTERM, handler)


def start(cfg: StarConfig, run_dir: str | Path, progress: bool = True) -> Path:
    """Start a new run in ``run_dir`` (which must not hold a run yet)."""
    run_dir = Path(run_dir)
    if (run_dir / DB_NAME).exists():
        raise RunError(f"{run_dir} already holds a run; use `star run --resume {run_dir}` or another --out")
    data = load_data(cfg)  # validate all input before anything is written
    from .models import resolve_model_path

    resolve_model_path(cfg.model, convert=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_mod.save(cfg, run_dir / CONFIG_NAME)
    store = RunStore(run_dir)
    name = cfg.name or run_dir.name
    store.create_run(name, cfg.task, cfg.model, cfg.to_dict(), cfg.iterations, device="starting")
    store.save_exemplars(cfg.task, [
        {"question_id": e.problem.id, "question": e.problem.question, "rationale": e.rationale,
         "answer": e.answer, "source": data.exemplar_source} for e in data.exemplars])
    _execute(cfg, run_dir, store, data, progress)
    return run_dir


def resume(run_dir: str | Path, progress: bool = True) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).exists() or not (run_dir / CONFIG_NAME).exists():
        raise RunError(f"{run_dir}: not a run folder (needs {CONFIG_NAME} and {DB_NAME})")
    from .queries import run_status

    status = run_status(run_dir)
    if status == "running":
        raise RunError(f"{run_dir} is still running in another process; stop it first (or wait for it)")
    if status == "finished":
        raise RunError(f"{run_dir} has already finished; start a new run to go further")
    cfg = config_mod.from_saved(run_dir / CONFIG_NAME)
    store = RunStore(run_dir)
    if not store.has_run():
        raise RunError(f"{run_dir}: the store has no run record; start a new run instead")
    data = load_data(cfg)
    store.set_status("running", message="resumed")
    _execute(cfg, run_dir, store, data, progress)
    return run_dir


def _execute(cfg: StarConfig, run_dir: Path, store: RunStore, data: Data, progress: bool) -> None:
    _install_sigterm()
    runner = Runner(cfg, run_dir, store, data, progress)
    t0 = time.time()
    try:
        runner._ensure_model()
        with store.tx() as c:
            c.execute("UPDATE runs SET device=?, pid=? WHERE id=?",
                      (runner.loaded.description, os.getpid(), store.run_id))
        runner.run()
    except (Stopped, KeyboardInterrupt):
        store.set_status("stopped", message="stopped by signal; resume with star run --resume")
        raise
    except BaseException as e:
        store.set_status("crashed", error="".join(traceback.format_exception_only(type(e), e)).strip(),
                         message=traceback.format_exc()[-2000:])
        raise
    store.set_status("finished", message=f"finished in {time.time() - t0:.0f} s")
    store.close()  # checkpoints the WAL into the main file


def read_config(run_dir: Path) -> dict[str, Any]:
    return config_mod.load_file(run_dir / CONFIG_NAME)
