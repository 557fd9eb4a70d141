"""The Launch form's settings, built from the run configuration itself (``star_core.config.StarConfig``): every
field gets a widget from its type, its docstring as help and its range, so a field added to the config appears
here without a page edit. "Reproduce this run" fills the form from a run's stored config.

Only the settings that differ from the config's defaults become ``--set key=value`` arguments; the engine's own
``config.build`` checks them before anything starts, and its message is shown as is.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, get_type_hints

import streamlit as st

from star_core import config

#: The form's own first rows (the page draws them; keys ``launch_f_<field>``), with the page's defaults: a small
#: run, not the config's defaults.
BASIC: dict[str, Any] = {
    "task": "arithmetic",
    "model": config.DEFAULT_MODEL,
    "iterations": 2,
    "n_train": 64,
    "n_eval": 50,
    "max_new_tokens": 96,
    "rationalize": True,
    "temperature": 0.0,
    "samples_per_question": 1,
    "seed": 0,
}
#: Fields the form does not offer: the run name has its own box; eval_adapter belongs to `star eval`.
HIDDEN = ("name", "eval_adapter")
#: Closed vocabularies of some text fields (read from the config module, so new values show up).
CHOICES: dict[str, tuple[str, ...]] = {
    "arith_format": tuple(getattr(config, "FORMATS", ())),
    "sampler": tuple(getattr(config, "SAMPLERS", ())),
    "device": ("auto", "cpu", "cuda"),
    "quantization": ("auto", "4bit", "none"),
    "sample_from": ("auto", "full", "quantized"),
}
PREFIX = "launch_f_"


def _fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config.StarConfig) if f.name not in HIDDEN]


def advanced_fields() -> list[str]:
    """The config fields offered under "All settings" (every field but the form's first rows and ``HIDDEN``)."""
    return [f.name for f in _fields() if f.name not in BASIC]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def to_text(v: Any) -> str:
    """A config value as the text a ``--set`` (and a text box) takes: ``1-3``, ``q_proj,v_proj``, ``true``."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        sep = "-" if isinstance(v, tuple) or (len(v) == 2 and all(isinstance(x, int) for x in v)) else ","
        return sep.join(str(x) for x in v)
    return str(v)


def _kind(name: str) -> str:
    hint = get_type_hints(config.StarConfig)[name]
    if hint is bool:
        return "bool"
    if hint is int:
        return "int"
    if hint is float:
        return "float"
    if hint is str and CHOICES.get(name):
        return "choice"
    return "text"  # str, str | None, int | str, tuple[int, int], list[str]: as --set takes them


def _widget_value(name: str, v: Any) -> Any:
    """A config value as its widget holds it."""
    kind = _kind(name)
    if kind == "bool":
        return bool(v)
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "choice":
        return str(v)
    return to_text(v)


def init_state(prefill: dict[str, Any] | None = None) -> None:
    """Give every widget its starting value: the page's defaults (``BASIC``), the config's (the rest), or a run's
    stored config when ``prefill`` is given (then it replaces what the form held)."""
    ss = st.session_state
    for f in _fields():
        key = PREFIX + f.name
        base = _default(f) if prefill is not None else BASIC.get(f.name, _default(f))
        if prefill is not None and f.name in prefill:
            try:
                ss[key] = _widget_value(f.name, prefill[f.name])
                continue
            except (TypeError, ValueError):
                pass
        if prefill is not None or key not in ss:
            ss[key] = _widget_value(f.name, base)


def _draw(name: str, doc: str, where: Any) -> None:
    key = PREFIX + name
    help_ = doc + (f" Range: {config.range_text(name)}." if config.range_text(name) else "")
    kind = _kind(name)
    if kind == "bool":
        where.checkbox(name, key=key, help=help_)
    elif kind == "int":
        where.number_input(name, key=key, step=1, help=help_)
    elif kind == "float":
        where.number_input(name, key=key, format="%g", help=help_)
    elif kind == "choice":
        opts = list(CHOICES[name])
        if st.session_state.get(key) not in opts:
            opts.append(st.session_state.get(key))
        where.selectbox(name, opts, key=key, help=help_)
    else:
        where.text_input(name, key=key, help=help_)


def draw_advanced() -> None:
    """Every other config field in an expander, three to a row, with its docstring as help."""
    docs = config.field_docs()
    names = advanced_fields()
    with st.expander(f"All settings ({len(names)} more, as in `star run --help-config`)"):
        cols = st.columns(3)
        for n, name in enumerate(names):
            _draw(name, docs.get(name, ""), cols[n % 3])


def advanced_sets() -> list[str]:
    """``key=value`` for every advanced setting that differs from the config's default."""
    ss = st.session_state
    out = []
    defaults = {f.name: _default(f) for f in _fields()}
    for name in advanced_fields():
        v = ss.get(PREFIX + name)
        if v is None:
            continue
        text = to_text(v) if not isinstance(v, str) else v.strip()
        if text == to_text(defaults[name]) or (text == "" and defaults[name] is None):
            continue
        out.append(f"{name}={text}")
    return out


def check(flags: dict[str, Any], sets: list[str]) -> str | None:
    """The engine's own check of the settings (``config.build``); its message, or None when they are valid."""
    try:
        config.build(flags=flags, sets=sets)
    except config.ConfigError as e:
        return str(e)
    return None


def reproduce_button(run_key: str, cfg: dict[str, Any], key: str) -> None:
    """ "Reproduce this run": fill the Launch form from the run's stored config and open it."""
    if not cfg:
        return
    if st.button(
        "Reproduce this run",
        icon=":material/replay:",
        key=key,
        help="open the Launch form filled with this run's settings (a new run folder; nothing starts yet)",
    ):
        st.session_state["_launch_prefill"] = {"config": dict(cfg), "from": run_key}
        st.switch_page("app_pages/launch.py")


def take_prefill() -> str | None:
    """Apply a pending "reproduce this run" to the form; returns the run it came from."""
    ss = st.session_state
    pre = ss.pop("_launch_prefill", None)
    if not pre:
        init_state()
        return None
    init_state(pre["config"])
    ss["launch_name"] = f"{pre['from'][:40]}-again-{time.strftime('%Y%m%d-%H%M%S')}"
    return pre["from"]


__all__ = [
    "BASIC",
    "advanced_fields",
    "advanced_sets",
    "check",
    "draw_advanced",
    "init_state",
    "reproduce_button",
    "take_prefill",
    "to_text",
]
