"""The tiny random Llama of the tests lives in the package (the benchmarks use it too)."""

from star_core.tiny import CORPUS, build_tiny_model  # noqa: F401
