"""Reading a config file (YAML or JSON) without letting it blow up, and showing a value safely.

A config is a few dozen ``field: value`` lines, so the reader refuses, before it builds anything: more than
``MAX_CONFIG_BYTES``, nesting deeper than ``MAX_DEPTH``, more than ``MAX_ALIASES`` YAML aliases (``*name``), and a
document whose aliases expand to more than ``MAX_NODES`` values (a "billion laughs" file of a few hundred bytes),
duplicate keys, and keys that are not words (``null:``, ``1:``). Errors name the file and the line.
:func:`excerpt` shows any value in an error message: short, escaped (no terminal control codes), never a giant
``repr``.
"""

from __future__ import annotations

import json
import reprlib
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config value; the message names the field (and file when known)."""


#: Largest config file read (a config is a few dozen lines; anything bigger is the wrong file).
MAX_CONFIG_BYTES = 1_000_000
#: Deepest nesting of lists and mappings (a config needs 2: a list of digit counts in the top mapping).
MAX_DEPTH = 32
#: Most YAML aliases (``*name``) in one document.
MAX_ALIASES = 64
#: Most values (scalars, lists, mappings) a document may hold once its aliases are expanded.
MAX_NODES = 100_000

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 4
_REPR.maxstring, _REPR.maxother = 40, 40


def excerpt(value: Any, limit: int = 60) -> str:
    """``value`` for an error message: its repr, cut to ``limit`` characters, control codes escaped."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits>"
    try:
        r = _REPR.repr(value)
    except (ValueError, RecursionError, MemoryError):
        r = f"<a {type(value).__name__}>"
    r = r.encode("ascii", "backslashreplace").decode("ascii")  # no raw escape codes reach a terminal
    r = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in r)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _fail(where: str, line: int | None, why: str) -> ConfigError:
    return ConfigError(f"{where}{f', line {line}' if line else ''}: {why}")


def _bracket_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text`` (brackets inside quotes count too: an over-estimate)."""
    steps = [1 if c in "[{" else -1 for c in text if c in "[]{}"]
    return max(accumulate(steps), default=0)


def _scan_yaml(text: str, where: str) -> None:
    """Refuse deep nesting, many aliases and a large expansion, from YAML's events (nothing is built)."""
    if _bracket_depth(text) > MAX_DEPTH:  # before the parser, whose flow scanner is slow on deep nesting
        raise _fail(where, None, f"nested deeper than {MAX_DEPTH} levels; a config is field: value lines")
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    stack: list[list] = []  # open collections: [anchor, values so far]
    aliases = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        line = ev.start_mark.line + 1 if ev.start_mark else None
        if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([ev.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise _fail(where, line, f"nested deeper than {MAX_DEPTH} levels; a config is field: value lines")
            continue
        if isinstance(ev, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _fail(where, line, f"more than {MAX_ALIASES} aliases (*name); a config needs none")
            n = sizes.get(ev.anchor, 1)
        elif isinstance(ev, yaml.ScalarEvent):
            n = 1
            if ev.anchor:
                sizes[ev.anchor] = 1
        elif isinstance(ev, yaml.CollectionEndEvent):
            anchor, n = stack.pop()
            if anchor:
                sizes[anchor] = n
        else:
            continue
        if stack:
            stack[-1][1] += n
            if stack[-1][1] > MAX_NODES:
                raise _fail(
                    where, line, f"its aliases (*name) expand to more than {MAX_NODES:,} values; a config needs none"
                )


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (instead of keeping the last), and a key
    that is not a word (``null:``, ``1:``, a list)."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a field name must be a word, not {excerpt(key)}", key_node.start_mark
                )
            first = seen.setdefault(key, line)
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {excerpt(key)} (first on line {first})", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {excerpt(k)}")
        out[k] = v
    return out


def parse_yaml(text: str, where: str) -> Any:
    """One YAML document (a config file, or a ``--set`` value), checked by :func:`_scan_yaml` first; ConfigError
    naming ``where`` and the line for what cannot be parsed."""
    try:
        _scan_yaml(text, where)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except (ValueError, yaml.YAMLError, RecursionError) as e:  # ValueError: an integer of over 4,300 digits
        if isinstance(e, ConfigError):
            raise
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        why = "nested too deeply" if isinstance(e, RecursionError) else f"cannot parse config: {_one_line(e)}"
        raise _fail(where, line, why) from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."


def parse_json(text: str, where: str) -> Any:
    if _bracket_depth(text) > MAX_DEPTH:  # json's C scanner recurses: a 200k-deep document is a RecursionError
        raise _fail(where, None, f"nested deeper than {MAX_DEPTH} levels; a config is field: value lines")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError is a ValueError
        raise _fail(where, getattr(e, "lineno", None), f"cannot parse config: {_one_line(e)}") from None


def load_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or .json) config file as a dict; a clear ConfigError naming the file for a missing, binary,
    non-UTF-8, oversized, empty, too deep or unparsable file, an alias bomb, duplicate keys or keys that are not
    words, or a top level that is not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: {len(raw):,} bytes is too large for a config file (at most {MAX_CONFIG_BYTES:,})")
    if b"\0" in raw:
        raise ConfigError(f"{p}: a binary file, not a YAML config (it holds NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save the config as UTF-8"
        ) from None
    data = parse_json(text, str(p)) if p.suffix == ".json" else parse_yaml(text, str(p))
    if data is None:
        raise ConfigError(
            f"{p}: the config file is empty (no field: value lines); add settings, or leave out "
            "--config to run the defaults"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: config must be a mapping of field: value")
    return data


def printable(text: str) -> str:
    """``text`` for a terminal: control and format characters (escape codes, bell, bidi overrides, a newline
    inside a run's name) shown as ``\\x1b``-style escapes instead of acting on the terminal."""
    import unicodedata

    return "".join(
        c if c.isprintable() or unicodedata.category(c) not in ("Cc", "Cf") else c.encode("unicode_escape").decode()
        for c in text
    )
