"""The hint and the rationale audit, shown the same way on every page.

The logic is in :mod:`star_core.queries.text` (``hint_marks``, ``hint_leak``, ``audit_note``, ``parse_audit``);
this module draws it. Model and dataset text goes through ``ui.show_text`` / ``ui.show_highlighted`` (escaped).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from star_core import queries
from star_dashboard import ui

#: Highlight colours: the hint in a prompt, a leaked hint in an output, the first line an audit fails.
HINT_BG = "#ffe066"
LEAK_BG = "#ffa8a8"
BAD_LINE_BG = "#ffc9c9"


def show_audit(sample: dict[str, Any]) -> str | None:
    """One sample's audit (``ui.show_audit``: verdict, steps checked, wrong or missing steps) and, for a right
    answer with a doubtful rationale, what the filter did with it as stored (``queries.audit_note``): a warning when
    the rationale is trained on, a note when it is not. Returns the verdict."""
    verdict = ui.show_audit(sample.get("audit"))
    show_first_bad_line(sample)
    note = queries.audit_note(sample)
    if note is not None:
        trained, text = note
        if trained:
            st.warning(text, icon=":material/report:")
        else:
            st.info(text, icon=":material/shield:")
    return verdict


def show_first_bad_line(sample: dict[str, Any]) -> None:
    """The rationale with the first line its audit fails highlighted (audit version 3 names it; older records
    do not, and nothing is drawn). The text is escaped by ``ui.show_highlighted``."""
    audit = sample.get("audit") or {}
    line = audit.get("first_bad_line")
    if not line or not audit.get("errors"):
        return
    text = sample.get("rationale") or ""
    span = queries.line_span(text, line)
    first = str(audit["errors"][0])
    if span is not None:
        st.caption(ui.md_escape(f"the first line that fails, line {line} (highlighted): {first}"))
        ui.show_highlighted(text, [span], BAD_LINE_BG)
    else:
        st.caption(ui.md_escape(f"the first line that fails is line {line}, the answer's: {first}"))


def show_hinted_prompt(sample: dict[str, Any], show_hint: bool = True) -> queries.HintMarks:
    """The hint (unless ``show_hint`` is False: the page shows it elsewhere), the hinted prompt's last question
    block with the hint highlighted (``queries.hint_marks``), and the full prompt in an expander."""
    hint = sample.get("hint") or ""
    prompt = sample.get("prompt") or ""
    if show_hint:
        st.caption("the hint (the gold answer, given away)")
        st.code(hint if hint else "(no hint stored)", language="text")
    marks = queries.hint_marks(prompt, hint)
    if marks.in_block:
        st.caption("the hinted prompt's last question block (hint highlighted; the few-shot exemplars come before it)")
        ui.show_highlighted(marks.block, marks.block_spans, HINT_BG)
    elif marks.spans:
        st.caption("the hint's last place in the prompt (not in its last question block)")
        ui.show_highlighted(prompt, marks.spans, HINT_BG)
    else:
        st.caption("the hinted prompt's last question block")
        ui.show_text(marks.block)
        if hint:
            st.caption("Neither the hint text nor a hint marker appears verbatim in this block.")
    with st.expander("Full hinted prompt (few-shot prefix included)"):
        ui.show_highlighted(prompt, queries.find_all(prompt, hint) if hint.strip() else [], HINT_BG)
    return marks


def show_leak(sample: dict[str, Any]) -> dict[str, Any]:
    """Whether the hint shows up in a hinted output (``queries.hint_leak``), in words; returns the leak (its spans mark
    the output with ``LEAK_BG``)."""
    leak = queries.hint_leak(sample)
    if leak["flagged"] or leak["spans"]:
        msg = "Hint leak: "
        if leak["flagged"]:
            msg += "the filter rejected this retry as hint_leak. "
        if leak["spans"]:
            msg += (
                f'The hint (or the word "hint") appears {len(leak["spans"])} time(s) in the output, '
                "marked in red below."
            )
        st.error(msg, icon=":material/warning:")
    elif not leak["checkable"]:
        st.caption(
            "The hint is the bare answer, so finding it in the output proves nothing; only the "
            "filter's decision can flag a leak here."
        )
    return leak
