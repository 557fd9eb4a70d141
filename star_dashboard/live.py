"""A launched run followed live: the stage in flight (samples x of N, training step x of K, time left) and its
log with the libraries' noise filtered out.

Samples come from the store (``data.stage_progress``); a training step is not stored until training ends, so its
count comes from the engine's own progress bar in the run's log (``bar_progress``). Log text is model-free but
still shown literally (``ui.show_text``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import streamlit as st

from star_core import procs, queries
from star_dashboard import data, ui

#: A line of star's own logging (``cli.py``: "%(levelname)s %(message)s").
_LEVEL = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S")
#: One update of a tqdm bar: "iter 1 train:  45%|####  | 18/40 [00:10<00:12, 1.8step/s, loss=0.4]".
_BAR = re.compile(
    r"(?P<desc>[^\r\n|:\]]{1,80}):\s*\d{1,3}%\|[^|\n]*\|\s*(?P<done>\d+)/(?P<total>\d+)\s*\[[\d:]+<(?P<left>[\d:]+|\?)"
)


def _seconds(hms: str) -> float | None:
    if not hms or hms == "?":
        return None
    total = 0
    for part in hms.split(":"):
        if not part.isdigit():
            return None
        total = total * 60 + int(part)
    return float(total)


def star_lines(text: str | None, keep: int = 40) -> str:
    """The last ``keep`` lines of star's own logging and of any traceback, without progress bars, library
    warnings and other output."""
    out: list[str] = []
    in_trace = False
    for line in (text or "").replace("\r", "\n").splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_trace = True
        if in_trace or _LEVEL.match(line):
            out.append(line)
        if in_trace and line and not line.startswith((" ", "Traceback")):
            in_trace = False  # the exception line ends the traceback
    return "\n".join(out[-keep:])


def bar_progress(text: str | None, words: tuple[str, ...] = ("train", "warm start")) -> dict[str, Any] | None:
    """The last update of the engine's progress bar whose description holds one of ``words``: {desc, done, total,
    seconds_left}; None when the log holds none."""
    last = None
    for m in _BAR.finditer(text or ""):
        if any(w in m["desc"] for w in words):
            last = m
    if last is None:
        return None
    return {
        "desc": last["desc"].strip(),
        "done": int(last["done"]),
        "total": int(last["total"]),
        "seconds_left": _seconds(last["left"]),
    }


def left_words(seconds: float | None) -> str:
    if seconds is None:
        return "time left not known yet"
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


def stage_line(run_dir: Path, log_text: str | None) -> dict[str, Any] | None:
    """The stage in flight, with the training step from the log when the store has none yet."""
    try:
        p = data.stage_progress(run_dir)
    except queries.RunUnavailable:
        return None
    if p is None:
        return None
    if p["stage"] == "train":
        bar = bar_progress(log_text)
        if bar is not None:
            p.update(done=bar["done"], total=bar["total"], seconds_left=bar["seconds_left"])
    return p


def show_stage(run_dir: Path, log_text: str | None) -> None:
    """ "iteration 2 · training: step 18 of 40 · about 12 s left", with a bar when the total is known."""
    p = stage_line(run_dir, log_text)
    if p is None:
        return
    unit = "step" if p["unit"] == "steps" else "samples"
    count = f"{unit} {p['done']:,}" + (f" of {p['total']:,}" if p["total"] else " so far")
    text = f"iteration {p['iteration']} · {p['words']}: {count} · {left_words(p['seconds_left'])}"
    if p["total"]:
        st.progress(min(1.0, p["done"] / p["total"]), text=text)
    else:
        st.caption(text)


def log_text(run_dir: Path) -> str | None:
    """The end of the run's log, long enough to hold star's last lines between progress bar updates."""
    return procs.log_tail(run_dir, lines=2000, max_bytes=256_000)


def show_log(raw: str | None, key: str) -> None:
    """The run's log (``log_text``): star's own lines, or everything when the user asks."""
    if raw is None:
        return
    everything = st.toggle("Show library output too", key=f"{key}_full_log", help="progress bars, warnings")
    st.caption(f"Last lines of {procs.LOG_NAME}" + ("" if everything else " (star's own lines)"))
    body = "\n".join(raw.splitlines()[-40:]) if everything else star_lines(raw)
    ui.show_text(body or "(no line of star's own yet)", height=320)


__all__ = ["bar_progress", "left_words", "log_text", "show_log", "show_stage", "stage_line", "star_lines"]
