"""The prompts and comparisons of the decoder tests (test_sampling, test_prefix_attention): a shared few-shot
prefix, questions of many suffix lengths, a stop rule that never stops, and equality of two decoders' outputs."""

import random

PREFIX = "Q: What is 1 + 2?\nA: 1 + 2 = 3. The answer is 3.\n\nQ: What is 4 + 4?\nA: 4 + 4 = 8. The answer is 8.\n\n"
QUESTIONS = [
    "Q: What is 47 + 38?\nA:",
    "Q: What is 3 + 5?\nA:",
    "Q: What is 123 + 456?\nA:",
    "Q: Where would you put a plate?\nA:",
    "Q: What is 9 + 9?\nA:",
]


def many_prompts(n=24, seed=0):
    """Suffixes of many different lengths, so continuous batching admits prompts mid-way."""
    rng = random.Random(seed)
    return [
        PREFIX + f"Q: What is {rng.randint(1, 999)} + {rng.randint(1, 99999)}?{' x' * rng.randint(0, 6)}\nA:"
        for _ in range(n)
    ]


def never(_text):
    """A completion rule that never stops a row early (each runs to max_new_tokens)."""
    return False


def same(a, b):
    """Whether two lists of generations hold the same texts, token counts and truncations."""
    return [(g.text, g.output_tokens, g.truncated) for g in a] == [(g.text, g.output_tokens, g.truncated) for g in b]
