"""Doubles of ``star_core.sampling.generate`` for the arithmetic task, whose outputs the tests know: the loop runs
for real around them (storing, judging, training), only the decoding is replaced."""

from __future__ import annotations

from collections.abc import Callable


def fake_generate(task, solve):
    """A sampler double: writes the reference rationale for questions ``solve`` picks, garbage otherwise."""
    from star_core.sampling import Generation

    def generate(model, tokenizer, prompts, *, max_new_tokens, is_complete, on_batch=None, **kw):
        gens = []
        for p in prompts:
            q = p.rsplit("Q: What is ", 1)[1].split("?")[0]
            a, b = (int(x) for x in q.split(" + "))
            problem = task.make_problem(a, b, "x")
            hinted = "Hint" in p.rsplit("Q:", 1)[1] or "hint" in p.rsplit("Q:", 1)[1]
            if solve(a, b) or hinted:
                text = task.format_target(task.reference_rationale(problem), problem.gold) + "\n"
            else:
                text = " I do not know.\n"
            gens.append(Generation(text, 10, 5, False, 0.01))
        if on_batch:
            on_batch(list(range(len(prompts))), gens)
        return gens

    return generate


def k_generate(task, texts):
    """A sampler double for k samples per question: the j-th sample of a question reads texts[j]."""
    from star_core.sampling import Generation

    def generate(model, tokenizer, prompts, *, on_batch=None, **kw):
        gens, count = [], {}
        for p in prompts:
            j = count[p] = count.get(p, -1) + 1
            a, b = (int(x) for x in p.rsplit("Q: What is ", 1)[1].split("?")[0].split(" + "))
            problem = task.make_problem(a, b, "x")
            hinted = "Hint" in p.rsplit("Q:", 1)[1]
            text = texts[j](task, problem) if not hinted else " I do not know."
            gens.append(Generation(text + "\n", 10, 5, False, 0.01))
        if on_batch:
            on_batch(list(range(len(prompts))), gens)
        return gens

    return generate


def use_generate(monkeypatch, generate, on_call: Callable[[list[str], dict], object] | None = None) -> None:
    """Replace ``star_core.sampling.generate`` by the double ``generate`` for this test; ``on_call(prompts, kw)``
    sees every call first (to record its prompts or settings)."""
    import star_core.sampling as sampling

    if on_call is not None:
        double = generate

        def generate(model, tokenizer, prompts, **kw):
            on_call(prompts, kw)
            return double(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(sampling, "generate", generate)
