"""Rejection reasons grouped by kind, counts first: wrong answer, wrong step, no rationale, truncated, hint leak.

:func:`group` is plain Python on the funnel's decision counts (``queries.funnel``); :func:`show` draws one line per
kind with its count and a button per (phase, decision) that opens those samples on the Rationales page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

#: (kind, the decisions it groups, what it means), in the order shown.
KINDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("wrong answer", ("wrong",), "the parsed answer differs from the gold answer"),
    ("wrong step", ("unfaithful",), "the right answer, but a checked step of the rationale does not hold"),
    ("no rationale", ("no_rationale",), "the right answer with no verified intermediate step"),
    ("truncated", ("truncated", "unparsable"), "cut off at max_new_tokens, or no answer could be read"),
    ("hint leak", ("hint_leak",), "a hinted retry that gives the hint away in its output"),
    ("other", ("duplicate", "over_limit"), "a duplicate of a kept rationale, or beyond the per-question limit"),
)
_KNOWN = {d for _, ds, _ in KINDS for d in ds} | {"correct", "rationalized", "reference"}


def group(sample_decisions: Mapping[str, int], retry_decisions: Mapping[str, int]) -> list[dict[str, Any]]:
    """The rejected samples of an iteration by kind: [{kind, about, n, parts: [(phase, decision, n)]}], kinds
    with no sample left out, biggest first; a decision no kind names goes to "other"."""
    by_phase = {"sample": dict(sample_decisions), "rationalize": dict(retry_decisions)}
    out = []
    for kind, decisions, about in KINDS:
        ds = list(decisions)
        if kind == "other":
            ds += sorted({d for dec in by_phase.values() for d in dec} - _KNOWN)
        parts = [(ph, d, int(dec[d])) for ph, dec in by_phase.items() for d in ds if dec.get(d)]
        if parts:
            out.append({"kind": kind, "about": about, "n": sum(n for _, _, n in parts), "parts": parts})
    return sorted(out, key=lambda g: -g["n"])


def show(groups: list[dict[str, Any]], open_samples: Callable[[str, str], None], key: str) -> None:
    """One line per kind: its count in bold, what it means, and a button per (phase, decision) with its count."""
    if not groups:
        st.caption("Nothing was rejected.")
        return
    for g in groups:
        st.markdown(f"**{g['n']:,}** · **{g['kind']}**: {g['about']}")
        with st.container(horizontal=True):
            for phase, d, n in g["parts"]:
                where = "first attempts" if phase == "sample" else "hinted retries"
                label = f"{n:,} {where}" + (f" ({d})" if len(g["parts"]) > 1 and d not in g["kind"] else "")
                if st.button(label, key=f"{key}_{phase}_{d}", help=f"open them: phase {phase}, decision {d}"):
                    open_samples(phase, d)


__all__ = ["KINDS", "group", "show"]
