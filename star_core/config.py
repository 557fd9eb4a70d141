"""Typed run configuration.

Every field has a docstring (the attribute docstring under it); ``star run
--help-config`` prints them. Values come from, in order: the defaults below, a
YAML/JSON config file, the CLI flags, then ``--set key=value`` pairs.
Validation errors name the field and the bad value.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from .config_ranges import (  # noqa: F401  (re-exported: config.RANGES, config.MAX_SEED, ...)
    MAX_BATCH_SIZE,
    MAX_DIGITS,
    MAX_SEED,
    MAX_STEPS,
    RANGES,
    _num,
    max_threads,
    range_text,
)
from .configfile import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES  # re-exported: the limit belongs with the reader
from .configfile import ConfigError, excerpt, load_file, parse_yaml
from .curriculum import CURRICULA
from .tasks import TASKS, Task, task_class, task_names
from .tasks.arithmetic import DEFAULT_FORMAT, EVAL_DIGITS, FORMATS, TRAIN_DIGITS

DEFAULT_MODEL = "bundled:smollm2-135m"


#: Sampling backends (``sampler``): the decoder in this process, or the same decoder on Ray workers.
SAMPLERS = ("local", "ray")
#: ``ray_address``: local (start a cluster here), auto (join the one ``ray start`` began), ray://host:port
#: (Ray Client) or host:port (a head node's GCS).
_RAY_ADDRESS = re.compile(r"^(local|auto|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})$")


class ModelError(ValueError):
    """The model could not be found or loaded; the message names the flag."""


@dataclass
class StarConfig:
    # ---- what to run ------------------------------------------------------
    task: str = "arithmetic"
    """Task: {tasks}."""
    model: str = DEFAULT_MODEL
    """Hugging Face model id, local model folder, a .gguf file, or 'bundled:smollm2-135m' (offline default)."""
    iterations: int = 2
    """Number of STaR outer iterations (iteration 0, the few-shot baseline, is extra)."""
    seed: int = 0
    """Seed for data generation/shuffling, exemplar choice, sampling and LoRA init."""
    name: str = ""
    """Run name shown in the dashboard; defaults to the run folder's name."""

    # ---- data -------------------------------------------------------------
    train_file: str | None = None
    """Training questions (JSONL or a datasets folder/id). Default: generated (arithmetic) or sample_data slices."""
    eval_file: str | None = None
    """Evaluation questions (JSONL or a datasets folder/id). Default as for train_file."""
    n_train: int = 200
    """Training questions sampled per iteration (first N after a seeded shuffle; arithmetic: generated)."""
    n_eval: int = 120
    """Evaluation questions (arithmetic: spread evenly over eval_digits)."""
    n_exemplars: int = 0
    """Few-shot exemplars in the prompt; 0 means the task's default (arithmetic 4, CQA 7, GSM8K 6)."""
    exemplars_file: str | None = None
    """JSON/JSONL file of few-shot exemplars that replaces the task's default choice."""
    prompt_exemplars: bool = True
    """True: every prompt carries the few-shot exemplars (the paper). False: only the few-shot model's prompts do (iteration 0's evaluation and its direct baseline); the warm-started model and every iteration's model are prompted with the question alone, the shape their training examples have (keep_prefix_in_training=false)."""
    arith_format: str = DEFAULT_FORMAT
    """Arithmetic rationale format: decomposition (default, works for small models) | columns | carry (one line per digit from the right, operands padded to one length, each line checked against the one before) | scratchpad (paper)."""
    train_digits: tuple[int, int] = TRAIN_DIGITS
    """Arithmetic: inclusive range of digit counts for training problems (paper: 1-5)."""
    eval_digits: tuple[int, int] = EVAL_DIGITS
    """Arithmetic: inclusive range of digit counts for evaluation problems."""

    # ---- sampling -----------------------------------------------------------
    max_new_tokens: int = 96
    """Generation budget per rationale; hitting it marks the sample `truncated`."""
    temperature: float = 0.0
    """0 = greedy (the paper's effective setting); >0 samples."""
    top_p: float = 1.0
    """Nucleus sampling cutoff when temperature > 0."""
    samples_per_question: int = 1
    """k samples per training question (needs temperature > 0 to differ)."""
    batch_size: int | str = "auto"
    """Rows decoded at once (continuous batching keeps them full). auto: from free GPU memory on CUDA, 32 on the CPU."""
    share_prefix_cache: bool = True
    """Compute the few-shot prefix's KV cache once and share it across each batch."""
    pack_cpu_linears: bool = True
    """On the CPU, decode with the fp32 linear layers run through oneDNN, weights packed once per decoding call (the same sums rounded differently, which now and then turns a near-tie in greedy decoding; how much faster depends on the CPU: see the README's benchmarks). False: torch's default."""
    direct_baseline: bool = False
    """Also evaluate the few-shot base model without rationales (exemplars as bare `47 + 38 = 85. The answer is 85.`) at iteration 0, as a reference line beside the few-shot baseline. Arithmetic (decomposition, columns or carry format) only."""

    # ---- filtering ------------------------------------------------------------
    rationalize: bool = True
    """Retry wrong answers with the gold answer as a hint (the paper's rationalization)."""
    reject_unfaithful: bool = False
    """Reject correct answers whose audited steps are wrong. Paper: False (only the final answer decides)."""
    max_kept_per_question: int = 1
    """With samples_per_question > 1: keep at most this many distinct rationales per question (ReST-EM style), the first ones in sample order among those the filter keeps; the rest become `duplicate` (same text as a kept one) or `over_limit`. 0 keeps every one."""
    curriculum: str = "off"
    """off (every iteration samples all training questions, the paper) | digits (arithmetic: iteration t trains only up to a frontier digit count, the largest count whose right-and-faithful rate on the evaluation of M(t-1) is at least curriculum_rate, plus one, within train_digits; samples_per_question at temperature and rationalization apply only at the frontier, earlier counts get one greedy sample and no hint; evaluations always cover every digit count; the frontier is stored per iteration)."""
    curriculum_rate: float = 0.5
    """With curriculum=digits: the right-and-faithful rate at which a digit count counts as solved."""
    curriculum_keep: float = 0.25
    """With curriculum=digits: the share of each digit count below the frontier still drawn for training (a seeded choice, rounded up; 0 = the frontier only)."""

    # ---- training ---------------------------------------------------------------
    warm_start: int = 0
    """Supervised warm start, not bootstrapped: before iteration 1, fine-tune a LoRA adapter on this many reference rationales written by the task (arithmetic: generated sums of warm_start_digits digits, never an eval or train question in either order; GSM8K: the reference solutions of training questions STaR does not use; CommonsenseQA: unsupported, it has no reference rationales). Iteration 1 samples with the warm-started model, and the warm examples join every iteration's training set (restart_from_base still decides where each adapter starts: the base model, or the previous adapter, the warm one for iteration 1). Iteration 0 still evaluates the few-shot base model; the warm-started model gets its own evaluation. 0 = off (the paper)."""
    warm_start_digits: tuple[int, int] = (1, 2)
    """Arithmetic warm start: inclusive range of digit counts of its sums (a digit count that runs out of sums, like the 55 one-digit ones up to the order, leaves its share to the larger ones)."""
    warm_start_pad: int = 0
    """Arithmetic carry format: write each warm-start reference trace with its operands zero-padded to a seeded width from the sum's own digit count up to this many digits (``47 + 38`` as ``0047 + 0038``, a trace of 4 digit lines), so no digit position is special; the sums keep their digit counts (warm_start_digits). 0 = no padding. The audit accepts a trace padded with zeros in front of both operands."""
    warm_start_steps: int = 60
    """Optimizer steps of the warm-start fine-tune (learning rate, batch size and LoRA settings as for the iterations)."""
    restart_from_base: bool = True
    """Paper: train each iteration's adapter from the base model. False continues from the last adapter."""
    train_steps: int = 40
    """Optimizer steps in iteration 1 (paper: 40)."""
    train_epochs: float = 0.0
    """Let the step budget grow with the training set: an iteration trains max(steps_for(i), ceil(train_epochs * examples / (train_batch_size * grad_accum))) steps. 0 = off (steps_for(i) only, the paper)."""
    accumulate_kept: bool = False
    """Keep what was learned: iteration i trains on the examples kept in every iteration up to i and the warm start's references (identical examples once), not only its own. False: only this iteration's (and the warm start's), the paper."""
    max_train_per_group: int = 0
    """With accumulate_kept: at most this many training examples per digit count (arithmetic; the task's group otherwise), a seeded choice. 0 = no cap."""
    steps_growth: float = 1.2
    """Steps multiply by this each iteration (paper: 1.2)."""
    learning_rate: float = 3e-4
    """AdamW learning rate for LoRA (paper's 1e-6 was full fine-tuning of a 6B model)."""
    warmup_steps: int = 5
    """Linear warm-up steps, then constant (paper: constant after warm-up)."""
    train_batch_size: int = 8
    """Examples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradient clipping (paper: 1.0)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (scale = alpha / r)."""
    lora_dropout: float = 0.0
    """LoRA dropout."""
    lora_targets: list[str] = field(default_factory=lambda: ["auto"])
    """Module names that get LoRA adapters: ['auto'] (the model type's attention and MLP projections, e.g.
    q_proj..down_proj for llama/mistral/qwen2, c_attn,c_proj,c_fc for gpt2; else all-linear),
    ['all-linear'], or a list of names (checked against the model right after it loads)."""
    mask_prompt: bool = True
    """Compute the loss only on rationale + answer tokens."""
    keep_prefix_in_training: bool = False
    """Keep the few-shot prefix in the training text (helped CQA in the paper)."""
    max_seq_len: int = 768
    """Training sequences are cut to this many tokens (from the left, keeping the completion)."""

    # ---- model / hardware -----------------------------------------------------
    quantization: str = "auto"
    """auto (on CUDA: 4-bit NF4 when the bf16 weights would take over 25% of GPU memory, else bf16; none on the CPU) | 4bit | none."""
    sample_from: str = "auto"
    """Over a 4-bit base: auto (on CUDA, sample from a bf16 copy with the adapter merged when it fits in half the free memory) | full (always the copy) | quantized (the 4-bit training model)."""
    device: str = "auto"
    """auto | cpu | cuda."""
    threads: int = 0
    """torch CPU threads; 0 leaves torch's default."""
    eval_adapter: str | None = None
    """A peft adapter attached for the iteration-0 evaluation (set by `star eval --adapter`)."""

    # ---- scale-out: sampling on a Ray cluster -------------------------------------
    sampler: str = "local"
    """Where every phase's rationales are decoded (sample, rationalize and the evaluations): local (star's decoder in this process) | ray (the same decoder on Ray workers, one actor per worker, each loading the base model and the iteration's adapter once; needs `pip install -e .[ray]`). Training, judging and the store stay in this process either way."""
    ray_address: str = "local"
    """With sampler=ray: local (start a Ray cluster on this machine for the run) | auto (join the cluster `ray start --head` began here) | ray://host:10001 (Ray Client) | host:6379 (a head node's address)."""
    ray_workers: int = 2
    """With sampler=ray: decoding actors, each holding one copy of the model (one per GPU on a GPU cluster)."""
    ray_cpus_per_worker: float = 1.0
    """With sampler=ray: CPUs each worker reserves (its torch threads, unless `threads` is set)."""
    ray_gpus_per_worker: float = 0.0
    """With sampler=ray: GPUs each worker reserves; > 0 decodes on CUDA, 0 on the CPU."""

    def validate(self, source: str = "config", origins: dict[str, str] | None = None) -> StarConfig:
        """Check every field; the error names the field, its value and where it came from (``origins``:
        field -> the file, "command line" or "--set" that set it last)."""

        def bad(name: str, why: str) -> ConfigError:
            where = (origins or {}).get(name, source)
            return ConfigError(f"{where}: field '{name}' = {excerpt(getattr(self, name))}: {why}")

        if self.task not in TASKS:
            raise bad("task", f"unknown task; choose one of {', '.join(TASKS)}")
        for name, (lo, hi, bounds) in RANGES.items():
            v = getattr(self, name)
            hi = hi() if callable(hi) else hi
            if isinstance(v, float) and not math.isfinite(v):
                raise bad(name, "must be a finite number")
            if v < lo or v > hi or (v == lo and bounds[0] == "(") or (v == hi and bounds[1] == ")"):
                raise bad(name, f"must be {range_text(name)}")
        if self.batch_size != "auto" and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or not 1 <= self.batch_size <= MAX_BATCH_SIZE
        ):
            raise bad("batch_size", f"must be auto or an integer from 1 to {_num(MAX_BATCH_SIZE)}")
        if self.samples_per_question > 1 and self.temperature == 0:
            raise bad("samples_per_question", "k > 1 needs temperature > 0 (greedy gives k identical samples)")
        task = task_class(self.task)
        if self.warm_start and not task.warm_start_references:
            raise bad(
                "warm_start",
                f"unsupported for {self.task}: it has no reference rationales "
                f"(supported: {', '.join(task_names('warm_start_references'))})",
            )
        if self.warm_start and self.eval_adapter:
            raise bad("warm_start", "cannot be combined with eval_adapter (star eval --adapter)")
        if self.warm_start_pad and (self.arith_format != "carry" or not self.warm_start):
            raise bad("warm_start_pad", "pads the warm start's carry traces: needs arith_format=carry and warm_start")
        if self.direct_baseline and not task.supports_direct_baseline(self):
            needs = [task_class(n).direct_baseline_needs for n in TASKS]
            raise bad("direct_baseline", f"{' or '.join(n for n in needs if n)} only")
        last = self.train_steps * self.steps_growth ** max(0, self.iterations - 1)
        if last > MAX_STEPS:
            raise bad(
                "steps_growth",
                f"train_steps * steps_growth ** (iterations - 1) = {last:.3g} steps in the "
                f"last iteration; at most {MAX_STEPS:,}",
            )
        if not self.prompt_exemplars and self.keep_prefix_in_training:
            raise bad(
                "prompt_exemplars",
                "false prompts trained models without the exemplars: it cannot be "
                "combined with keep_prefix_in_training=true",
            )
        if self.curriculum not in CURRICULA:
            raise bad("curriculum", f"choose {' or '.join(CURRICULA)}")
        if self.curriculum != "off" and not task.digit_groups:
            names = " or ".join(f"the {n} task" for n in task_names("digit_groups"))
            raise bad("curriculum", f"digits needs {names} (its questions have digit counts)")
        if self.arith_format not in FORMATS:
            raise bad("arith_format", f"choose {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")
        for name in ("train_digits", "eval_digits", "warm_start_digits"):
            lo, hi = getattr(self, name)
            if not (1 <= lo <= hi <= MAX_DIGITS):
                raise bad(name, f"must be [lo, hi] with 1 <= lo <= hi <= {MAX_DIGITS}")
        if self.quantization not in ("auto", "4bit", "none"):
            raise bad("quantization", "choose auto, 4bit or none")
        if self.sample_from not in ("auto", "full", "quantized"):
            raise bad("sample_from", "choose auto, full or quantized")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad("device", "choose auto, cpu or cuda")
        if not self.lora_targets:
            raise bad("lora_targets", "name at least one module (or all-linear)")
        if self.sampler not in SAMPLERS:
            raise bad("sampler", f"choose {' or '.join(SAMPLERS)}")
        if not _RAY_ADDRESS.match(self.ray_address or ""):
            raise bad("ray_address", "expected local, auto, ray://host:port or host:port")
        return self

    def steps_for(self, iteration: int) -> int:
        """Training steps for iteration i >= 1: train_steps * growth**(i-1)."""
        return max(1, round(self.train_steps * self.steps_growth ** (iteration - 1)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def make_task(cfg: StarConfig) -> Task:
    """The run's task, built from its settings by its class (``Task.from_config``)."""
    return task_class(cfg.task).from_config(cfg)


FIELD_NAMES = {f.name for f in fields(StarConfig)}


def field_docs() -> dict[str, str]:
    """Per-field docstrings, read from this module's source (``{tasks}`` reads as the registered tasks)."""
    import inspect

    src = inspect.getsource(StarConfig)
    tree = ast.parse(src)
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            docs[a.target.id] = str(b.value.value).replace("{tasks}", " | ".join(TASKS))  # type: ignore[union-attr]
    return docs


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert a raw value (from YAML or a --set string) to the field's type."""
    hint = get_type_hints(StarConfig)[name]
    origin = get_origin(hint)
    args = get_args(hint)

    def fail(why: str) -> ConfigError:
        return ConfigError(f"{source}: field '{name}' = {excerpt(value)}: {why}")

    if isinstance(value, str) and hint is not str and not (origin is not None and str in args):
        try:
            value = parse_yaml(value, f"{source} {name}")
        except ConfigError as e:
            raise fail(str(e).split(": ", 1)[-1]) from None
    if hint == (int | str):  # an integer or the word auto
        if isinstance(value, str) and value.strip() == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                return int(str(value).strip())
            except ValueError:
                raise fail("expected an integer or auto") from None
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise fail("expected true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("expected an integer")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("expected a number")
        return float(value)
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise fail("expected a string")
        return value
    if origin is tuple:
        if isinstance(value, str):
            try:
                value = [int(v) for v in value.replace("-", ",").split(",") if v.strip()]
            except ValueError:
                raise fail("expected two integers, e.g. 1-5 or [1, 5]") from None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise fail("expected two integers, e.g. 1-5 or [1, 5]")
        return (int(value[0]), int(value[1]))
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail("expected a list of strings")
        return value
    # Optional[str]
    if value is None or isinstance(value, str):
        return value
    raise fail("expected a string or null")


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(FIELD_NAMES), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def apply(cfg: StarConfig, values: dict[str, Any], source: str, origins: dict[str, str] | None = None) -> StarConfig:
    for k, v in values.items():
        if not isinstance(k, str):
            raise ConfigError(f"{source}: a field name must be a word, not {excerpt(k)}")
        if k not in FIELD_NAMES:
            raise ConfigError(f"{source}: unknown field '{k}'{_suggest(k)}")
        setattr(cfg, k, _coerce(k, v, source))
        if origins is not None:
            origins[k] = source
    return cfg


def parse_set(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"--set {excerpt(p)}: expected key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    return out


def build(file: str | None = None, flags: dict[str, Any] | None = None, sets: list[str] | None = None) -> StarConfig:
    cfg = StarConfig()
    origins: dict[str, str] = {}
    if file:
        apply(cfg, load_file(file), str(file), origins)
    apply(cfg, {k: v for k, v in (flags or {}).items() if v is not None}, "command line", origins)
    apply(cfg, parse_set(sets or []), "--set", origins)
    return cfg.validate(origins=origins)


def save(cfg: StarConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def from_saved(path: Path) -> StarConfig:
    cfg = StarConfig()
    apply(cfg, load_file(path), str(path))
    return cfg.validate(str(path))
