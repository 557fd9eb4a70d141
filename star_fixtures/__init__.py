"""Fixture builders for the tests and the benchmarks, outside the engine package (``star_core`` never imports
them): ``synthetic`` writes synthetic run stores through the engine's ``RunStore`` (each task's questions come
from ``Task.synthetic_question``), ``stores`` damaged, half-written and running ones, ``tiny`` a tiny random
Llama with its tokenizer. ``bench/`` imports them instead of a module of ``tests/``."""
