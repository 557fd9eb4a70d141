import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random tiny Llama saved as a local model folder (offline, ~1 s)."""
    import torch

    torch.set_num_threads(1)
    from star_fixtures.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny model loaded on the CPU in full precision, once per test module."""
    from star_core.models import load_base

    return load_base(str(tiny_model_dir), quantization="none", device="cpu")
