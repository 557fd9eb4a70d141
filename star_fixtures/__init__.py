"""Fixture builders for the tests and the benchmarks, outside the engine package (``star_core`` never imports
them): ``synthetic`` writes synthetic run stores through the engine's ``RunStore``, ``tiny`` builds a tiny
random Llama with its tokenizer. ``bench/`` imports them instead of a module of ``tests/``."""
