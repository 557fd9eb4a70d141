"""The STaR outer loop, resumable at every step.

Iteration 0 evaluates the untrained few-shot model (the baseline), and with
``direct_baseline`` the same model prompted without rationales. With a warm
start (``warm_start=N``, star_core.warmstart) it then fine-tunes the warm-start
adapter on N reference rationales (supervised, not bootstrapped; stage ->
trained) and evaluates it; M(0) is then the warm-started model. Each
iteration i >= 1 then:
  1. samples rationales per training question with model M(i-1)   stage -> sampled
     (at most max_kept_per_question distinct ones kept per question)
  2. retries the wrong ones with the gold answer as a hint          stage -> rationalized
  3. trains adapter i on the kept examples (and the warm-start       stage -> trained
     examples, if any; from the base model by default)
  4. evaluates M(i) on the eval split and writes the metrics        stage -> done

With the digit curriculum (``curriculum=digits``, star_core.curriculum) step 1 samples only the
questions up to the iteration's frontier (k samples at the frontier, one greedy sample below it) and
step 2 retries only the frontier's; with ``accumulate_kept`` step 3 trains on every example kept so far.

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
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import backends, curriculum, runfolder, runlock, warmstart
from . import config as config_mod
from . import store as store_mod
from .config import StarConfig
from .errors import RunError, Stopped
from .evaluation import accuracy_rows
from .filtering import judge, limit_per_question
from .rundata import Data, load_data
from .runfolder import clean_tmp_adapters
from .store import ADAPTERS_DIR, CONFIG_NAME, DB_NAME, EVAL_PHASES, PHASE_SPLIT, STAGES, RunStore, SampleRecord
from .tasks import Problem

log = logging.getLogger("star")

#: The warm-start adapter, relative to the run folder (M(0) when there is a warm start).
WARM_ADAPTER = f"{ADAPTERS_DIR}/warm_start"
#: Offsets of each phase's sampling seed within an iteration.
_SEED_OFFSET = {"sample": 0, "rationalize": 1, "eval": 2, "warm_eval": 3, "direct_eval": 4}


class Runner:
    def __init__(self, cfg: StarConfig, run_dir: Path, store: RunStore, data: Data, progress: bool = True):
        self.cfg, self.run_dir, self.store, self.data = cfg, run_dir, store, data
        self.task = data.task
        self.progress = progress
        self.loaded = None
        self.model = None  # base model, possibly wrapped in a PeftModel
        self.adapter: str | None = None  # adapter currently attached
        self._copy = None  # full-precision sampling copy over a 4-bit base (False: none is used)
        self._copy_adapter: str | None = None
        self.lora_targets: list[str] = []  # cfg.lora_targets resolved against the model (on load)
        # Where phases decode: this process, on the sampling model, or Ray workers (cfg.sampler).
        self.backend = backends.make(cfg, self.task, run_dir, lambda: (self.sampling_model(), self.loaded.tokenizer))

    # ---- model state ---------------------------------------------------------
    def _ensure_model(self) -> None:
        if self.loaded is None:
            from .models import load_base

            if self.cfg.threads:
                import torch

                torch.set_num_threads(self.cfg.threads)
            self.loaded = load_base(self.cfg.model, self.cfg.quantization, self.cfg.device)
            self.model = self.loaded.model
            from .training import resolve_lora_targets

            try:  # a model-dependent check, before iteration 0 spends any time
                self.lora_targets = resolve_lora_targets(self.cfg.lora_targets, self.model)
            except ValueError as e:
                raise RunError(f"{self.cfg.model}: {e}") from None

    def model_adapter(self, iteration: int) -> str | None:
        """The adapter of M(iteration), relative to the run folder: none for the few-shot model M(0),
        the warm-start adapter when there is one."""
        if iteration >= 1:
            return f"{ADAPTERS_DIR}/iter_{iteration}"
        return WARM_ADAPTER if self.cfg.warm_start else None

    def sampling_model(self):
        """The model that samples: the training model, or over a 4-bit base a full-precision copy
        with the current adapter merged (``sample_from``; the choice is logged once)."""
        from .models import full_precision_copy, load_adapter, merge_for_inference, strip_lora, want_sampling_copy

        self._ensure_model()
        if self._copy is None:
            use, why = want_sampling_copy(self.cfg.sample_from, self.loaded)
            log.info("sampling: %s", why)
            self._copy = full_precision_copy(self.loaded) if use else False
            self._copy_adapter = None
        if self._copy is False:
            return self.model
        if self._copy_adapter != self.adapter:
            m = strip_lora(self._copy.model)
            if self.adapter is not None:
                m = load_adapter(m, self.run_dir / self.adapter)
                merge_for_inference(m, quantized=False)
            m.eval()
            self._copy.model, self._copy_adapter = m, self.adapter
        return self._copy.model

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
    def run_phase(self, iteration: int, phase: str, problems: list[Problem], greedy: bool = False) -> None:
        """Generate, judge and store ``phase``'s samples of ``problems`` (``greedy``: one sample each at
        temperature 0, the curriculum's questions below its frontier)."""
        cfg, task = self.cfg, self.task
        k = cfg.samples_per_question if phase == "sample" and not greedy else 1
        done = self.store.done_question_ids(iteration, task.name, phase)
        todo = [(p, j) for p in problems for j in range(k) if (p.id, j) not in done]
        if not todo:
            return
        hint = phase == "rationalize"
        split = PHASE_SPLIT[phase]
        exemplars = self.data.direct_exemplars if phase == "direct_eval" else self.data.exemplars
        if not cfg.prompt_exemplars and (iteration >= 1 or phase == "warm_eval"):
            exemplars = []  # a trained model is prompted as it was trained: the question alone
        prompts = [task.prompt(p, exemplars, hint=hint) for p, _ in todo]
        bar = tqdm(total=len(todo), desc=f"iter {iteration} {phase}", unit="q", disable=not self.progress, leave=False)

        def on_batch(idx: list[int], gens) -> None:
            recs = []
            for i, g in zip(idx, gens):
                p, j = todo[i]
                d = judge(task, p, g.text, g.truncated, phase, cfg.max_new_tokens, cfg.reject_unfaithful)
                rec = SampleRecord(
                    iteration=iteration,
                    task=task.name,
                    split=split,
                    phase=phase,
                    question_id=p.id,
                    k=j,
                    grp=p.group,
                    question=p.question,
                    prompt=prompts[i],
                    hint=task.hint_text(p) if hint else None,
                    raw_output=g.text,
                    rationale=d.parsed.rationale,
                    answer=d.parsed.answer,
                    gold=p.gold,
                    decision=d.decision,
                    reason=d.reason,
                    correct=d.correct,
                    kept=d.kept,
                    audit=d.audit.to_dict(),
                    prompt_tokens=g.prompt_tokens,
                    output_tokens=g.output_tokens,
                    seconds=g.seconds,
                )
                if d.kept:
                    rec.train_prompt = self.train_prompt(p)
                    rec.train_completion = d.text.rstrip()
                    rec.train_iteration = iteration
                recs.append(rec)
            self.store.add_samples(recs)
            bar.update(len(idx))

        seed = cfg.seed * 7919 + iteration * 31 + _SEED_OFFSET[phase]
        self.backend.generate(
            prompts,
            adapter=self.adapter,
            seed=seed,
            on_batch=on_batch,
            temperature=0.0 if phase in EVAL_PHASES or greedy else cfg.temperature,
        )
        bar.close()

    def limit_kept(self, iteration: int) -> None:
        """At most max_kept_per_question distinct kept samples per question (a no-op with one sample)."""
        if self.cfg.samples_per_question > 1:
            kept = self.store.kept_samples(iteration, self.task.name, "sample")
            self.store.unkeep(limit_per_question([dict(r) for r in kept], self.cfg.max_kept_per_question))

    def sample(self, iteration: int) -> None:
        """Iteration ``iteration``'s samples: every training question, or with the digit curriculum those up
        to its frontier (stored in the run's meta), k samples at temperature at the frontier, one greedy below."""
        if self.cfg.curriculum == "off":
            self.run_phase(iteration, "sample", self.data.train)
            return
        rec = curriculum.plan(self.store.con, self.store.run_id, iteration, self.cfg, self.data.train)
        self.store.save_frontier(iteration, rec)
        log.info("iteration %d: curriculum frontier %d digits (%s)", iteration, rec["frontier"], rec["questions"])
        chosen = curriculum.questions(rec, self.data.train, self.cfg.seed, iteration)
        front = str(rec["frontier"])
        self.run_phase(iteration, "sample", [p for p in chosen if p.group == front])
        self.run_phase(iteration, "sample", [p for p in chosen if p.group != front], greedy=True)

    def needs_rationalization(self, iteration: int) -> list[Problem]:
        """The questions sampled wrong (with the digit curriculum: those of its frontier only)."""
        rows = self.store.samples(iteration, self.task.name, "sample")
        solved = {r["question_id"] for r in rows if r["kept"]}
        by_id = {p.id: p for p in self.data.train}
        rec = curriculum.load(self.store.con).get(iteration) if self.cfg.curriculum != "off" else None
        return [
            by_id[q]
            for q in dict.fromkeys(r["question_id"] for r in rows)
            if q not in solved and q in by_id and (rec is None or by_id[q].group == str(rec["frontier"]))
        ]

    # ---- training ------------------------------------------------------------------
    def train_adapter(self, iteration: int) -> None:
        """Train the adapter of M(iteration) on its training set: iteration 0 is the warm start."""
        from .models import fresh_lora, load_adapter, lora_config, strip_lora
        from .training import TrainArgs, train

        cfg = self.cfg
        rows = self.store.training_set(iteration)
        if cfg.accumulate_kept and iteration >= 1:  # every kept example so far and the warm start's
            kept = curriculum.training_rows(self.store.con, self.store.run_id, iteration)
            rows = curriculum.grow(kept, cfg.max_train_per_group, cfg.seed + iteration)
        examples = [(r["prompt"], r["completion"]) for r in rows]
        rel = self.model_adapter(iteration)
        assert rel is not None
        final = self.run_dir / rel
        tmp = self.run_dir / f"{rel}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self._ensure_model()
        base = strip_lora(self.model)
        prev = self.model_adapter(iteration - 1) if iteration >= 1 else None
        if not cfg.restart_from_base and prev is not None and (self.run_dir / prev).is_dir():
            self.model = load_adapter(base, self.run_dir / prev, trainable=True)
        else:
            self.model = fresh_lora(
                base,
                lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, self.lora_targets),
                seed=cfg.seed + iteration,
            )
        self.adapter = None
        steps = cfg.steps_for(iteration) if iteration >= 1 else cfg.warm_start_steps
        if iteration >= 1:  # train_epochs: the budget grows with the training set
            steps = curriculum.steps(steps, len(examples), cfg.train_epochs, cfg.train_batch_size * cfg.grad_accum)
        losses: list = []
        if examples:
            name = f"iter {iteration} train" if iteration >= 1 else "warm start (supervised)"
            bar = tqdm(total=steps, desc=name, unit="step", disable=not self.progress, leave=False)
            args = TrainArgs(
                steps=steps,
                learning_rate=cfg.learning_rate,
                warmup_steps=cfg.warmup_steps,
                batch_size=cfg.train_batch_size,
                grad_accum=cfg.grad_accum,
                max_grad_norm=cfg.max_grad_norm,
                mask_prompt=cfg.mask_prompt,
                max_seq_len=cfg.max_seq_len,
                seed=cfg.seed + iteration,
            )

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
        self.store.finish_training(iteration, losses, rel, len(examples), train_steps=steps)

    def log_accuracy(self, iteration: int, phase: str) -> list[dict[str, Any]]:
        rows = self.store.samples(iteration, self.task.name, phase)
        metrics = accuracy_rows([dict(r) for r in rows])
        parts = [f"{m['grp']}: {100 * m['accuracy']:.1f}%" for m in metrics]
        log.info("iteration %d %s accuracy  %s", iteration, phase, "  ".join(parts))
        return metrics

    def finish_eval(self, iteration: int) -> None:
        """Write the metrics of M(iteration) (iteration 0: the few-shot model) and mark the iteration done."""
        self.store.finish_iteration(iteration, self.log_accuracy(iteration, "eval"))

    # ---- the loop -----------------------------------------------------------------
    def iteration_zero(self) -> None:
        """The few-shot baseline (and its direct-answer reference), then the supervised warm start."""
        cfg, store = self.cfg, self.store
        store.begin_iteration(0, cfg.warm_start_steps if cfg.warm_start else None)
        if store.iteration_stage(0) == "pending":
            self.use_adapter(cfg.eval_adapter)
            self.run_phase(0, "eval", self.data.eval)
            if cfg.direct_baseline:
                self.run_phase(0, "direct_eval", self.data.eval)
                self.log_accuracy(0, "direct_eval")
            if cfg.warm_start:
                store.add_samples(warmstart.records(self.task, self.data.warm, self.train_prompt))
                self.train_adapter(0)  # stage -> trained
        if cfg.warm_start:
            self.use_adapter(WARM_ADAPTER)
            self.run_phase(0, "warm_eval", self.data.eval)
            self.log_accuracy(0, "warm_eval")
        self.finish_eval(0)

    def run(self) -> None:
        cfg, store = self.cfg, self.store
        if store.iteration_stage(0) != "done":
            self.iteration_zero()
        for i in range(1, cfg.iterations + 1):
            stage = store.iteration_stage(i)
            if stage == "done":
                continue
            store.begin_iteration(i, cfg.steps_for(i))
            at = STAGES.index(stage or "pending")
            if at < STAGES.index("rationalized"):
                prev = store.iteration_stage(i - 1)
                if prev != "done":
                    raise RunError(f"iteration {i - 1} is not finished ({prev}); the store is inconsistent")
                self.use_adapter(self.model_adapter(i - 1))
            if at < STAGES.index("sampled"):
                self.sample(i)
                self.limit_kept(i)
                store.set_stage(i, "sampled")
            if at < STAGES.index("rationalized"):
                if cfg.rationalize:
                    self.run_phase(i, "rationalize", self.needs_rationalization(i))
                store.set_stage(i, "rationalized")
            if at < STAGES.index("trained"):
                self.train_adapter(i)
            self.use_adapter(self.model_adapter(i))
            self.run_phase(i, "eval", self.data.eval)
            self.finish_eval(i)


def _install_sigterm() -> None:
    def handler(signum, frame):
        raise Stopped()

    signal.signal(signal.SIGTERM, handler)


def _lock(run_dir: Path) -> runlock.RunLock:
    """The run's lock (one writer per run), or a RunError naming the pid that holds it."""
    try:
        return runlock.acquire(run_dir)
    except runlock.RunLocked as e:
        raise RunError(str(e)) from None


def start(cfg: StarConfig, run_dir: str | Path, progress: bool = True) -> Path:
    """Start a new run in ``run_dir`` (which must not hold a run yet)."""
    run_dir = Path(run_dir)
    runfolder.check_closed(run_dir)  # nothing of the folder links out of it (RunFolderError)
    if not runfolder.unstarted(run_dir):
        store_mod.check(run_dir / DB_NAME)  # a damaged or foreign store says so (StoreError)
        raise RunError(f"{run_dir} already holds a run; use `star run --resume {run_dir}` or another --out")
    data = load_data(cfg)  # validate all input before anything is written
    backends.preflight(cfg)  # sampler=ray: Ray installed, the cluster's address answers
    from .models import resolve_model_path

    resolve_model_path(cfg.model, convert=False)
    with _lock(run_dir):  # before config.yaml: a second `star run --out` on this folder writes nothing
        if not runfolder.unstarted(run_dir) or ((run_dir / CONFIG_NAME).exists() and not (run_dir / DB_NAME).exists()):
            raise RunError(f"{run_dir} already holds a run; use `star run --resume {run_dir}` or another --out")
        store = RunStore(run_dir)  # its tables first (one transaction): a crash from here leaves a folder
        config_mod.save(cfg, run_dir / CONFIG_NAME)  # that holds no run record, which --out takes again
        name = cfg.name or run_dir.name
        store.create_run(name, cfg.task, cfg.model, cfg.to_dict(), cfg.iterations, device="starting")
        store.save_exemplars(
            cfg.task,
            [
                {
                    "question_id": e.problem.id,
                    "question": e.problem.question,
                    "rationale": e.rationale,
                    "answer": e.answer,
                    "source": data.exemplar_source,
                }
                for e in data.exemplars
            ],
        )
        _execute(cfg, run_dir, store, data, progress)
    return run_dir


def resume(run_dir: str | Path, progress: bool = True) -> Path:
    run_dir = Path(run_dir)
    runfolder.check_closed(run_dir)  # nothing of the folder links out of it (RunFolderError)
    if not (run_dir / DB_NAME).exists() or not (run_dir / CONFIG_NAME).exists():
        raise RunError(f"{run_dir}: not a run folder (needs {CONFIG_NAME} and {DB_NAME})")
    from .queries import run_status

    with _lock(run_dir):  # a second `star run --resume` (or a run still going) holds it: refused, nothing written
        store_mod.check(run_dir / DB_NAME, deep=True)  # read-only: a damaged or foreign store is never written
        if runfolder.unstarted(run_dir):
            raise RunError(
                f"{run_dir}: the run never started (its store holds no run record); start it again with "
                f"star run --config {run_dir / CONFIG_NAME} --out {run_dir}"
            )
        status = run_status(run_dir)
        if status == "running":
            raise RunError(f"{run_dir} is still running in another process; stop it first (or wait for it)")
        if status == "finished":
            raise RunError(f"{run_dir} has already finished; start a new run to go further")
        cfg = config_mod.from_saved(run_dir / CONFIG_NAME)
        clean_tmp_adapters(run_dir)
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
        runner.backend.start()  # sampler=ray: join or start the cluster before the model loads
        runner._ensure_model()
        store.set_device(runner.loaded.description)
        runner.run()
    except (Stopped, KeyboardInterrupt):
        store.set_status("stopped", message="stopped by signal; resume with star run --resume")
        raise
    except BaseException as e:
        store.set_status(
            "crashed",
            error="".join(traceback.format_exception_only(type(e), e)).strip(),
            message=traceback.format_exc()[-2000:],
        )
        raise
    finally:
        runner.backend.close()
    store.set_status("finished", message=f"finished in {time.time() - t0:.0f} s")
    store.close()  # checkpoints the WAL into the main file
