"""Streamlit pieces of the inspector: annotating a sample, keyboard moves, downloads.

Annotations are written to ``RUN_DIR/annotations.sqlite`` (``star_core.annotations``), one field of one
sample per write, from widget callbacks: the verdict, the note, or one tag added or removed. The widgets
are set from the file on every run, so a tab shows what another tab wrote once it reruns.

Keyboard: J or → moves to the next sample, K or ← to the previous one. Streamlit's own ``shortcut``
binds one key to one button; four keys on two moves take a small ``st.components.v2`` component (a
keydown listener on the page that ignores keys typed into inputs and tables) whose trigger runs the
same move as the Prev and Next buttons.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from star_core.annotations import LABELS, SUGGESTED_TAGS, AnnotationError, Annotations
from star_core.queries import exports

from . import data, ui

# --------------------------------------------------------------------------
# annotations
# --------------------------------------------------------------------------
_LABEL_WORDS = {"faithful": "faithful", "unfaithful": "unfaithful", "no_rationale": "no rationale"}


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def _ann_frame(run_dir: str, stamp: tuple) -> pd.DataFrame:
    return Annotations(run_dir).frame()


def _stamp(run_dir: str | os.PathLike) -> tuple:
    p = Annotations(run_dir).path
    out = []
    for suffix in ("", "-wal"):
        try:
            s = os.stat(str(p) + suffix)
            out += [s.st_mtime_ns, s.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


def annotations_frame(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """Every annotation of the run (cached until the file changes), or None with an error shown."""
    try:
        return _ann_frame(str(run_dir), _stamp(run_dir))
    except AnnotationError as e:
        st.error(f"Annotations unavailable: {ui.md_escape(e)}", icon=":material/error:")
        return None


def _write(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except AnnotationError as e:
        st.session_state["_ann_error"] = str(e)


def annotate(run_dir: Path, sample_id: int, key: str) -> None:
    """The annotation widgets of one sample: the person's verdict, tags (suggested, used in this run, or new)
    and a note."""
    ss = st.session_state
    ann = Annotations(run_dir)
    try:
        cur = ann.get(sample_id)
        run_tags = ann.all_tags()
    except AnnotationError as e:
        st.error(f"Annotations unavailable: {ui.md_escape(e)}", icon=":material/error:")
        return
    k = f"{key}_{sample_id}"
    ss[f"{k}_label"] = cur["label"]
    ss[f"{k}_tags"] = list(cur["tags"])
    ss[f"{k}_shown_tags"] = list(cur["tags"])
    if f"{k}_note" not in ss or ss.get(f"{k}_note_db") != cur["note"]:
        ss[f"{k}_note"] = cur["note"] or ""
    ss[f"{k}_note_db"] = cur["note"]

    def on_label() -> None:
        _write(ann.set_label, sample_id, ss[f"{k}_label"])

    def on_tags() -> None:
        new, old = set(ss[f"{k}_tags"]), set(ss[f"{k}_shown_tags"])
        for t in sorted(new - old):  # one tag per write: another tab's tags are never touched
            _write(ann.add_tag, sample_id, t)
        for t in sorted(old - new):
            _write(ann.remove_tag, sample_id, t)

    def on_note() -> None:
        _write(ann.set_note, sample_id, ss[f"{k}_note"])

    st.segmented_control(
        "Your verdict on the rationale",
        list(LABELS),
        key=f"{k}_label",
        on_change=on_label,
        format_func=lambda v: _LABEL_WORDS.get(v, v),
        help="\n\n".join(LABELS.values()),
    )
    opts = list(dict.fromkeys([*SUGGESTED_TAGS, *run_tags, *cur["tags"]]))
    st.multiselect(
        "Tags",
        opts,
        key=f"{k}_tags",
        on_change=on_tags,
        accept_new_options=True,
        placeholder="interesting, or type a new tag",
        help="letters, digits, - and _; a new tag is offered on every sample of this run",
    )
    st.text_area(
        "Note",
        key=f"{k}_note",
        on_change=on_note,
        height=80,
        max_chars=10_000,
        placeholder="what you saw (saved when you leave the box, or Ctrl+Enter)",
    )
    err = ss.pop("_ann_error", None)
    if err:
        st.error(err, icon=":material/error:")
    st.caption(f"Saved in {Annotations(run_dir).path.name} beside the run store, never in it.")


def agreement_view(run_dir: Path, name: str) -> None:
    """How the people's labels agree with the rationale audit: a confusion table and Cohen's kappa."""
    st.subheader("Your labels and the rationale audit")
    try:
        g = data.agreement(run_dir)
    except AnnotationError as e:
        st.error(f"Annotations unavailable: {ui.md_escape(e)}", icon=":material/error:")
        return
    if not g["labelled"]:
        st.caption(
            f"{ui.md_escape(name)}: no sample has a label of yours yet. Label rationales faithful, "
            "unfaithful or no rationale while reading them (Rationales, Compare), and this shows how "
            "often the audit agrees."
        )
        return
    kappa = "–" if g["kappa"] is None else f"{g['kappa']:.2f}"
    c1, c2, c3 = st.columns(3)
    c1.metric("Samples with both verdicts", f"{g['n']:,}", help="labelled by you and given a verdict by the audit")
    c2.metric("Agree", "–" if not g["n"] else f"{100 * g['agree'] / g['n']:.0f} % ({g['agree']}/{g['n']})")
    c3.metric(
        "Cohen's kappa",
        kappa,
        help="agreement beyond chance: 1 = always agree, 0 = as often as chance, below 0 = less often",
    )
    conf = g["confusion"].rename(index=_LABEL_WORDS, columns=_LABEL_WORDS)
    conf.index.name, conf.columns.name = "your label", "the audit's verdict"
    st.dataframe(conf, width="content")
    st.caption(
        f"{ui.md_escape(name)}: rows are your labels, columns the audit's verdicts. "
        f"{g['no_audit']:,} labelled sample(s) with no audit verdict (nothing checkable) are left out. "
        f"With few labels kappa is uncertain: label more before trusting it."
    )


# --------------------------------------------------------------------------
# keyboard
# --------------------------------------------------------------------------
_KEYS_JS = """
export default function (component) {
  const { setTriggerValue } = component;
  const onKey = (ev) => {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    const t = ev.composedPath ? ev.composedPath()[0] : ev.target;
    const tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) return;
    if (t && t.closest && t.closest('[data-testid="stDataFrame"], [role="grid"], [role="slider"]')) return;
    let move = null;
    if (ev.key === "j" || ev.key === "J" || ev.key === "ArrowRight") move = "next";
    else if (ev.key === "k" || ev.key === "K" || ev.key === "ArrowLeft") move = "prev";
    else if (ev.key === "1" || ev.key === "2" || ev.key === "3") move = "label" + ev.key;
    if (move === null) return;
    ev.preventDefault();
    setTriggerValue("move", move);
  };
  document.addEventListener("keydown", onKey);
  document.body.dataset.starKeys = "on";  // the listener is live (the browser tests wait for it)
  return () => {
    document.removeEventListener("keydown", onKey);
    delete document.body.dataset.starKeys;
  };
}
"""
_keys_component = st.components.v2.component("star_keyboard_moves", js=_KEYS_JS)


def keyboard_moves(
    key: str, prev_id: Any, next_id: Any, go: Callable[[Any], None], label: Callable[[str], None] | None = None
) -> None:
    """J / → call ``go(next_id)``, K / ← call ``go(prev_id)`` (a None target is no move); with ``label``, the keys
    1, 2 and 3 call it with the first, second and third of ``LABELS``."""
    ss = st.session_state
    ss[f"_{key}_targets"] = {"prev": prev_id, "next": next_id}
    ss[f"_{key}_label"] = label

    def on_move() -> None:
        res = ss.get(key)
        move = res.get("move") if isinstance(res, dict) else getattr(res, "move", None)
        if isinstance(move, str) and move.startswith("label") and move[5:].isdigit():
            n, set_label = int(move[5:]), ss.get(f"_{key}_label")
            if set_label is not None and 1 <= n <= len(LABELS):
                set_label(list(LABELS)[n - 1])
            return
        target = ss.get(f"_{key}_targets", {}).get(move)
        if target is not None:
            go(target)

    _keys_component(key=key, on_move_change=on_move, height=0)


def label_setter(run_dir: Path, sample_id: int) -> Callable[[str], None]:
    """What the keys 1, 2 and 3 do on a sample: store that label as the person's verdict (``annotate`` shows it)."""

    def set_label(value: str) -> None:
        _write(Annotations(run_dir).set_label, sample_id, value)

    return set_label


KEYS_HELP = "Keys: J or → next, K or ← previous (outside text boxes)."
LABEL_KEYS_HELP = "1, 2, 3: your verdict " + ", ".join(f"{n} {_LABEL_WORDS[k]}" for n, k in enumerate(LABELS, 1)) + "."


# --------------------------------------------------------------------------
# downloads
# --------------------------------------------------------------------------
def downloads(make: Callable[[], pd.DataFrame], stem: str, key: str, what: str) -> None:
    """CSV and JSONL download buttons; the frame is built only when a button is clicked."""
    formats = [
        ("CSV", exports.to_csv, "csv", "text/csv", "as CSV (a spreadsheet; formula-like cells get a leading ')"),
        ("JSONL", exports.to_jsonl, "jsonl", "application/jsonl", "as JSON lines, the text as stored"),
    ]
    for col, (label, write, ext, mime, says) in zip(st.columns(len(formats)), formats):
        col.download_button(
            label,
            data=lambda write=write: write(make()),
            file_name=f"{stem}.{ext}",
            mime=mime,
            icon=":material/download:",
            key=f"{key}_{ext}",
            on_click="ignore",
            width="stretch",
            help=f"{what} {says}",
        )


def safe_stem(*parts: Any) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(p) for p in parts if p not in (None, "")))[:120] or "star"


__all__ = [
    "KEYS_HELP",
    "agreement_view",
    "annotate",
    "annotations_frame",
    "downloads",
    "keyboard_moves",
    "safe_stem",
]
