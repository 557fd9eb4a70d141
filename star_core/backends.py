"""The sampling backends: every phase of the loop decodes through one interface.

:class:`LocalBackend` runs star's decoder (:func:`star_core.sampling.generate`)
in this process on the model it is given. :class:`RayBackend` runs the same
decoder on Ray workers: a phase's prompts become a Ray Data dataset of work
units (``chunk`` rows of prompts each), processed by ``map_batches`` with a
fixed pool of one actor per worker. Each actor loads the base model and the
phase's adapter once (the adapter travels through Ray's object store, so the
workers need no shared filesystem), then decodes its units. The results stream
back to this process, which alone judges them and writes the store, one
transaction per unit, exactly as the local decoder's batches are written.

A worker that dies is restarted and its unit decoded again (``RAY_RETRIES``
times at most); the driver stores each unit once, and the store's unique keys
would refuse a second copy anyway. Greedy outputs do not depend on how the
prompts are split (the decoder gives every prompt the tokens it would get
alone), so ``sampler=ray`` stores what ``sampler=local`` stores. With
``temperature > 0`` each unit draws from its own seeded generator (the phase's
seed and the unit's number), so a retried unit repeats its samples, but they
differ from the local decoder's single stream.

Ray is imported only here, and only when ``sampler=ray``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import StarConfig
    from .sampling import Generation
    from .tasks import Task

log = logging.getLogger("star")

OnBatch = Callable[[list[int], "list[Generation]"], None]

#: Times a dead worker is restarted, and a unit of work retried, before the phase fails.
RAY_RETRIES = 3
#: Object store of a cluster started for the run (``ray_address=local``): prompts, outputs and one
#: adapter at a time are small; Ray spills to disk beyond it.
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20
#: Prompts per unit of work when ``batch_size=auto``: a CPU worker's decoding batch, or a GPU's.
CPU_UNIT, GPU_UNIT = 32, 256
#: Seconds to wait for a TCP connection to the cluster before saying it is unreachable.
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "install it with `pip install -e '.[ray]'` (or `bash scripts/setup.sh --dev`)"


def _error(msg: str) -> Exception:
    from .errors import RunError

    return RunError(msg)


@dataclass(frozen=True)
class DecodeSettings:
    """The run's decoding settings: the config's fields that star's decoder takes."""

    max_new_tokens: int
    top_p: float
    batch_size: int | str
    share_prefix: bool
    pack_linears: bool

    @classmethod
    def of(cls, cfg: StarConfig) -> DecodeSettings:
        return cls(cfg.max_new_tokens, cfg.top_p, cfg.batch_size, cfg.share_prefix_cache, cfg.pack_cpu_linears)


def decode(
    model, tokenizer, settings: DecodeSettings, task: Task, prompts, temperature: float, seed: int, on_batch=None
):
    """star's decoder (``sampling.generate``) with the run's decoding settings and the task's stop rule:
    the one call both backends make."""
    from . import sampling  # looked up at call time (tests replace sampling.generate)

    return sampling.generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        is_complete=task.is_complete,
        temperature=temperature,
        top_p=settings.top_p,
        batch_size=settings.batch_size,
        share_prefix=settings.share_prefix,
        seed=seed,
        stop_chars=task.stop_chars,
        on_batch=on_batch,
        pack_linears=settings.pack_linears,
    )


class LocalBackend:
    """star's decoder in this process.

    ``sampling_model()`` gives the model to sample from, with the phase's adapter attached, and its
    tokenizer: the model is loaded only when a phase first decodes, and which adapter it carries changes
    from phase to phase, so the backend asks for it at each phase (the runner's ``sampling_model``).
    """

    name = "local"

    def __init__(self, sampling_model: Callable[[], tuple[Any, Any]], settings: DecodeSettings, task: Task) -> None:
        self.sampling_model, self.settings, self.task = sampling_model, settings, task

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def generate(
        self, prompts: Sequence[str], *, adapter: str | None, temperature: float, seed: int, on_batch: OnBatch
    ) -> None:
        model, tokenizer = self.sampling_model()  # ``adapter`` is attached already (the runner chose it)
        decode(model, tokenizer, self.settings, self.task, prompts, temperature, seed, on_batch)


def make(
    cfg: StarConfig, task: Task, run_dir: Path, sampling_model: Callable[[], tuple[Any, Any]]
) -> LocalBackend | RayBackend:
    """The backend ``cfg.sampler`` names (Ray is not imported here): the Ray backend sends each phase's
    adapter from ``run_dir`` to its workers, which load the model themselves; the local backend decodes on
    ``sampling_model()``."""
    if cfg.sampler == "ray":
        return RayBackend(cfg, run_dir)
    return LocalBackend(sampling_model, DecodeSettings.of(cfg), task)


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------
def import_ray():
    """``ray`` and ``ray.data``, or a clear error saying how to install them."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise _error(f"sampler=ray needs Ray Data, which is not installed ({e}); {INSTALL_HINT}") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``ray://host:port`` or ``host:port`` address; None for local and auto."""
    if address in ("local", "auto"):
        return None
    hp = address.removeprefix("ray://")
    host, _, port = hp.rpartition(":")
    return host, int(port)


def preflight(cfg: StarConfig) -> None:
    """Before a run writes anything: Ray is installed, and a cluster address answers on its port.

    A probe with a short timeout that speaks Ray's protocol (:mod:`star_core.rayprobe`), so that a wrong
    host or port, or a port of another service, is an error in seconds rather than a wait inside ``ray.init``.
    """
    if cfg.sampler != "ray":
        return
    import_ray()
    address = cfg.ray_address
    if address == "auto":  # the cluster `ray start` began on this machine, or $RAY_ADDRESS
        try:
            from ray._private.services import canonicalize_bootstrap_address  # not public: checked if present
        except ImportError:
            return  # ray.init says it later
        try:
            address = canonicalize_bootstrap_address("auto") or "local"
        except Exception as e:
            raise _error(
                f"ray_address=auto: no running Ray cluster found ({str(e).strip().splitlines()[0]}). "
                "Start one with `ray start --head`, set RAY_ADDRESS, or use ray_address=local"
            ) from None
    hp = _host_port(address) if address != "local" else None
    if hp is None:
        return
    host, port = hp
    if not 0 < port < 65536:
        raise _error(f"ray_address={cfg.ray_address}: port {port} is out of range")
    from .rayprobe import not_ray

    try:
        other = not_ray(host, port, timeout=CONNECT_TIMEOUT_S)  # Ray's protocol, not only an open port
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise _error(
            f"ray_address={cfg.ray_address}: cannot reach the Ray cluster at {host}:{port} ({why}, within "
            f"{CONNECT_TIMEOUT_S:g} s). Start its head node (`ray start --head`), check the address and "
            "port, or use ray_address=local to start a cluster on this machine"
        ) from None
    if other:
        raise _error(
            f"ray_address={cfg.ray_address}: {host}:{port} is not a Ray cluster: {other}. Give the head node's "
            "address (host:6379, or ray://host:10001 for Ray Client), or use ray_address=local"
        )


def adapter_files(folder: Path) -> dict[str, bytes]:
    """An adapter folder's files (``adapter_config.json``, ``adapter_model.safetensors``, ...) as bytes,
    to put in the object store."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    if "adapter_config.json" not in files:
        raise _error(f"{folder}: not a peft adapter folder (no adapter_config.json)")
    return files


def unit_size(cfg: StarConfig, n: int) -> int:
    """Prompts per unit of work for a phase of ``n`` prompts: the decoding batch (``batch_size``; auto: 32
    on CPU workers, 256 on GPU workers), or fewer so that every worker gets a unit. One unit is one Ray
    task, one retry and one store transaction."""
    batch = cfg.batch_size if isinstance(cfg.batch_size, int) else GPU_UNIT if cfg.ray_gpus_per_worker > 0 else CPU_UNIT
    return max(1, min(batch, math.ceil(n / cfg.ray_workers)))


def unit_seed(seed: int, unit: int) -> int:
    """The sampling seed of one unit of a phase (only used at temperature > 0)."""
    return (seed * 1_000_003 + unit) % 2**63


def _gen_to_dict(g) -> dict:
    return {
        "text": g.text,
        "prompt_tokens": g.prompt_tokens,
        "output_tokens": g.output_tokens,
        "truncated": g.truncated,
        "seconds": g.seconds,
    }


class DecodeWorker:
    """The Ray Data actor: one copy of the model with one adapter merged, decoding units of prompts.

    Built by Ray on a worker, with the run's config (a dict), ``[reference]`` to the adapter's files in
    the object store (or None for the base model) and the phase's sampling settings.
    """

    def __init__(self, cfg: dict, adapter, temperature: float, device: str, threads: int) -> None:
        import torch

        from . import config as config_mod
        from .models import full_precision_copy, load_adapter, load_base, merge_for_inference, want_sampling_copy

        torch.set_num_threads(threads)
        c = config_mod.apply(config_mod.StarConfig(), cfg, "the run's config (on a Ray worker)")
        self.task, self.temperature = config_mod.make_task(c), temperature
        self.settings = DecodeSettings.of(c)
        loaded = load_base(c.model, c.quantization, device)
        use, _ = want_sampling_copy(c.sample_from, loaded)
        if use:
            loaded = full_precision_copy(loaded)
        model = loaded.model
        if adapter:  # [a reference]: nested, so the worker fetches it (not an argument Ray must keep for restarts)
            import ray

            files = ray.get(adapter[0])
            with tempfile.TemporaryDirectory(prefix="star-adapter-") as d:
                for name, data in files.items():
                    (Path(d) / name).write_bytes(data)
                model = load_adapter(model, d)
                merge_for_inference(model, loaded.quantized)
        model.eval()
        self.model, self.tokenizer = model, loaded.tokenizer
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        units, outs = [], []
        for unit, seed, prompts in zip(batch["unit"], batch["seed"], batch["prompts"]):
            gens = decode(
                self.model, self.tokenizer, self.settings, self.task, json.loads(prompts), self.temperature, int(seed)
            )
            units.append(int(unit))
            outs.append(json.dumps([_gen_to_dict(g) for g in gens]))
        return {"unit": units, "gens": outs, "worker": [self.worker] * len(units)}


class RayBackend:
    """star's decoder on Ray workers (``sampler=ray``): see the module's docstring."""

    name = "ray"

    def __init__(self, cfg: StarConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.ray = None
        self.owns_cluster = False
        self._adapter_ref: tuple[str | None, object] | None = None
        self.workers_seen: set[str] = set()
        """``host:pid`` of every actor that delivered a unit (a restarted actor is a new pid)."""

    on_unit: Callable[[int, str], None] | None = None
    """Called after each unit is stored, with the unit's number and its worker's ``host:pid`` (tests
    kill a worker from it)."""

    # ---- the cluster ---------------------------------------------------------------
    def start(self) -> None:
        """Connect to (or start) the cluster and check that it can ever hold the worker pool."""
        preflight(self.cfg)
        ray = import_ray()
        cfg = self.cfg
        if not ray.is_initialized():
            kw: dict = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
                "configure_logging": False,
            }
            if cfg.ray_address == "local":
                # Room for the pool, and one CPU more for Ray Data's own small tasks.
                kw.update(
                    address="local",
                    num_cpus=math.ceil(cfg.ray_workers * cfg.ray_cpus_per_worker) + 1,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                )
            else:
                kw["address"] = cfg.ray_address
            try:
                ray.init(**kw)
            except Exception as e:
                raise _error(
                    f"ray_address={cfg.ray_address}: cannot start or join a Ray cluster "
                    f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
                ) from None
            self.owns_cluster = True
        else:
            log.info("sampler=ray: using the Ray cluster this process is already connected to")
        self.ray = ray
        have = ray.cluster_resources()
        need = {"CPU": cfg.ray_workers * cfg.ray_cpus_per_worker, "GPU": cfg.ray_workers * cfg.ray_gpus_per_worker}
        short = [
            f"{n:g} {k}s (the cluster has {have.get(k, 0):g})" for k, n in need.items() if n > 0 and have.get(k, 0) < n
        ]
        if short:
            msg = (
                f"ray_workers={cfg.ray_workers} with ray_cpus_per_worker={cfg.ray_cpus_per_worker:g} and "
                f"ray_gpus_per_worker={cfg.ray_gpus_per_worker:g} need " + " and ".join(short)
            )
            if cfg.ray_address == "local":  # a cluster of this machine never grows
                self.close()
                raise _error(msg + ": lower ray_workers or the resources per worker")
            log.warning("%s; waiting for the cluster's autoscaler to add nodes", msg)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # not "progress bars disabled" every phase
        log.info(
            "sampler=ray: %s, %d worker(s) of %g CPU and %g GPU; cluster: %s",
            cfg.ray_address,
            cfg.ray_workers,
            cfg.ray_cpus_per_worker,
            cfg.ray_gpus_per_worker,
            ", ".join(f"{have.get(k, 0):g} {k}" for k in ("CPU", "GPU")),
        )

    def close(self) -> None:
        if self.ray is not None and self.owns_cluster and self.ray.is_initialized():
            self.ray.shutdown()
        self.ray, self._adapter_ref, self.owns_cluster = None, None, False

    # ---- one phase ---------------------------------------------------------------
    def _adapter(self, adapter: str | None):
        """The object-store reference of the adapter's files (put once per adapter), or None."""
        if adapter is None:
            return None
        if self._adapter_ref is None or self._adapter_ref[0] != adapter:
            self._adapter_ref = (adapter, self.ray.put(adapter_files(self.run_dir / adapter)))
        return self._adapter_ref[1]

    def generate(
        self, prompts: Sequence[str], *, adapter: str | None, temperature: float, seed: int, on_batch: OnBatch
    ) -> None:
        from .sampling import Generation

        if self.ray is None:
            self.start()
        ray, cfg = self.ray, self.cfg
        size = unit_size(cfg, len(prompts))
        units = [list(range(i, min(i + size, len(prompts)))) for i in range(0, len(prompts), size)]
        if not units:
            return
        rows = [
            {"unit": u, "seed": unit_seed(seed, u), "prompts": json.dumps([prompts[i] for i in idx])}
            for u, idx in enumerate(units)
        ]
        device = "cuda" if cfg.ray_gpus_per_worker > 0 else "cpu"
        threads = cfg.threads or max(1, int(cfg.ray_cpus_per_worker))
        ref = self._adapter(adapter)
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        with warnings.catch_warnings():
            # Bounded restarts and retries go through ray_remote_args, deprecated from Ray 2.60 with no
            # named replacement yet (pyproject pins ray below 2.64, which removes it).
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            ds = ds.map_batches(
                DecodeWorker,
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(cfg.ray_workers, len(rows))),
                fn_constructor_kwargs={
                    "cfg": cfg.to_dict(),
                    "adapter": None if ref is None else [ref],
                    "temperature": temperature,
                    "device": device,
                    "threads": threads,
                },
                num_cpus=cfg.ray_cpus_per_worker,
                num_gpus=cfg.ray_gpus_per_worker or None,
                max_restarts=RAY_RETRIES,
                max_task_retries=RAY_RETRIES,
            )
        done: set[int] = set()
        try:
            for row in ds.iter_rows():
                u = int(row["unit"])
                if u in done:  # never expected from Ray Data; the store would refuse it anyway
                    log.warning("sampler=ray: unit %d delivered twice; the second copy is dropped", u)
                    continue
                gens = [Generation(**g) for g in json.loads(row["gens"])]
                if len(gens) != len(units[u]):
                    raise _error(
                        f"sampler=ray: unit {u} came back with {len(gens)} outputs for {len(units[u])} prompts"
                    )
                on_batch(units[u], gens)
                done.add(u)
                self.workers_seen.add(str(row["worker"]))
                if self.on_unit is not None:
                    self.on_unit(u, str(row["worker"]))
        except Exception as e:
            if isinstance(e, ray.exceptions.RayError) or type(e).__module__.startswith("ray."):
                raise _error(
                    f"sampler=ray: the workers failed ({type(e).__name__}: "
                    f"{str(e).strip()[-1500:]}); what was stored is kept: resume with "
                    f"star run --resume {self.run_dir}"
                ) from e
            raise
        missing = [u for u in range(len(units)) if u not in done]
        if missing:
            raise _error(
                f"sampler=ray: {len(missing)} of {len(units)} units never came back; resume with "
                f"star run --resume {self.run_dir}"
            )
