"""Warnings every page shows the same way: a run audited under older rules, a change with its paired test.

The numbers come from :mod:`star_core.queries` and :mod:`star_core.stats`; nothing here computes a statistic of
its own. A change is coloured only when its paired test calls it significant (``stats.significant``).
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from star_core import queries, stats
from star_dashboard import data

#: The run picker's and the runs table's mark of a run audited under older rules.
OLD_AUDIT_MARK = "⚠ old audit"


def audit_words(version: int | None) -> str:
    """A run's audit version in words, for a table cell."""
    if version is None:
        return "–"
    return (f"⚠ v{version}, old (now v{queries.AUDIT_VERSION})") if queries.audit_outdated(version) else f"v{version}"


def _brief(run_dir: str | os.PathLike) -> dict[str, Any]:
    for r in st.session_state.get("_runs") or []:
        if r.get("path") == str(run_dir):
            return r
    return data.run_brief(run_dir)


def audit_banner(run_dir: str | os.PathLike, where: str = "") -> bool:
    """A warning when the run's outputs were audited under rules older than the engine's
    (``queries.AUDIT_VERSION``, read at run time); returns whether it was shown."""
    v = _brief(run_dir).get("audit_version")
    if not queries.audit_outdated(v):
        return False
    st.warning(
        f"**Audited under older rules.** This run's rationales were audited under audit rules version {v}; the "
        f"engine's rules are now version {queries.AUDIT_VERSION}. Its stored verdicts may call a bare answer "
        '(no intermediate step) faithful, so "right and faithful" and any story built on them are not checked '
        "by today's rules" + (f" {where}" if where else "") + ". Re-record the run to audit it again.",
        icon=":material/history:",
    )
    return True


def change_words(lost: int, gained: int, pairs: int | None = None) -> str:
    """A paired change in words with its n and exact McNemar p: ``+9 −6 of 150 paired questions, p = 0.61``."""
    p = stats.mcnemar(int(lost), int(gained))
    of = f" of {int(pairs)} paired questions" if pairs is not None else ""
    return f"+{int(gained)} −{int(lost)}{of}, p = {p:.2g}" + (" (significant)" if stats.significant(p) else "")


def delta_color(lost: int, gained: int) -> str:
    """``st.metric``'s delta_color: "normal" (green up, red down) only when the paired test is significant."""
    return "normal" if stats.significant(stats.mcnemar(int(lost), int(gained))) else "off"


__all__ = ["OLD_AUDIT_MARK", "audit_banner", "audit_words", "change_words", "delta_color"]
