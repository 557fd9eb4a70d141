"""The tiny random Llama of the tests lives in star_fixtures (the benchmarks use it too)."""

from star_fixtures.tiny import CORPUS, build_tiny_model  # noqa: F401
