"""The carry scratchpad of the arithmetic task (``arith_format=carry``), and its line-by-line audit.

Right to left, one line per digit; the digits still to add are shown as shrinking numbers, so every
step copies the last digits left and adds one digit and the carry. Operands are zero-padded to one
length::

    47 + 38, carry 0, result none.
    7 + 8 + 0 = 15, digit 5, carry 1. Left 4 + 3, result 5.
    4 + 3 + 1 = 8, digit 8, carry 0. Left none, result 85.
    Carry 0, result 85.
    The answer is 85.

The wording lives in the templates below (``HEADER``, ``STEP``, ``CLOSE``, ``LEFT``, ``NONE``): the
reference trace is written from them and the audit reads a line with a pattern built from them, so a
change of wording changes both. The audit checks every line against the one before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .audit import Step, first_bad
from .base import Audit

#: The opening line: the operands, zero-padded to one length.
HEADER = "{a} + {b}, carry 0, result none."
#: One line per digit, from the right: the last digits left, the carry in, their sum, the digit written,
#: the carry out, the digits still left and the result so far.
STEP = "{x} + {y} + {c} = {s}, digit {d}, carry {co}. Left {left}, result {r}."
#: The closing line: the last carry written in front of the result.
CLOSE = "Carry {c}, result {r}."
#: ``Left`` when digits remain, and when none do.
LEFT = "{a} + {b}"
NONE = "none"
#: The answer line that follows the trace (``ArithmeticTask.format_target``); the task's parser reads
#: ``The answer is N`` in every format, so this one keeps that wording.
ANSWER = "The answer is {n}."


def _pattern(template: str) -> re.Pattern[str]:
    """A template as a regular expression: each ``{field}`` a named group of non-blank text."""
    parts = re.split(r"\{(\w+)\}", template)
    body = "".join(f"(?P<{p}>\\S(?:.*?\\S)?)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(r"\s*" + body + r"\s*", re.I)


_HEADER_RE, _STEP_RE, _CLOSE_RE, _LEFT_RE = (_pattern(t) for t in (HEADER, STEP, CLOSE, LEFT))


def padded(a: int, b: int, width: int = 0) -> tuple[str, str]:
    """Both operands as digit strings of one length (``95, 7`` -> ``"95", "07"``), at least ``width`` digits
    (``47, 38, 4`` -> ``"0047", "0038"``: the warm start's ``warm_start_pad``)."""
    n = max(len(str(a)), len(str(b)), width)
    return str(a).zfill(n), str(b).zfill(n)


def _left(a: str, b: str) -> str:
    return LEFT.format(a=a, b=b) if a else NONE


def carry_lines(a: int, b: int, width: int = 0) -> list[str]:
    """The reference trace of ``a + b``, one string per line, without the answer line (operands written with
    at least ``width`` digits)."""
    sa, sb = padded(a, b, width)
    lines = [HEADER.format(a=sa, b=sb)]
    carry, result = 0, ""
    for i in range(len(sa) - 1, -1, -1):
        x, y = int(sa[i]), int(sb[i])
        s = x + y + carry
        d, cin, carry = s % 10, carry, s // 10
        result = str(d) + result
        left = _left(sa[:i], sb[:i])
        lines.append(STEP.format(x=x, y=y, c=cin, s=s, d=d, co=carry, left=left, r=result))
    lines.append(CLOSE.format(c=carry, r=(str(carry) if carry else "") + result))
    return lines


def carry_rationale(a: int, b: int, width: int = 0) -> str:
    """The reference trace as text (the rationale; the answer line follows it)."""
    return "\n".join(carry_lines(a, b, width))


def answer_line(answer: str) -> str:
    return ANSWER.format(n=answer)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and re.fullmatch(r"\d+", text) else None


@dataclass
class _State:
    """What the line before says: the digits left, the carry, the result so far."""

    a: str
    b: str
    carry: int = 0
    result: str = ""


def _check_step(m: re.Match[str], st: _State, no: int) -> tuple[Step, _State]:
    """One step line checked against the state the line before left (the digits taken, the carry in, the sum,
    the digit, the carry out, what is left, the result so far), and the state it leaves: what it says, where
    readable, else what it should have said."""
    f = {k: v.strip() for k, v in m.groupdict().items()}
    x, y, c, s, d, co = (_int(f[k]) for k in ("x", "y", "c", "s", "d", "co"))
    wx, wy = int(st.a[-1]), int(st.b[-1])
    ws = wx + wy + st.carry
    checks = [
        ((x, y) == (wx, wy), f"took {f['x']} + {f['y']}, but the last digits left are {wx} + {wy}"),
        (c == st.carry, f"added carry {f['c']}, but the carry was {st.carry}"),
    ]
    if None not in (x, y, c):
        checks.append((s == x + y + c, f"{f['x']} + {f['y']} + {f['c']} = {f['s']} is wrong: it is {x + y + c}"))
    if s is not None:
        checks += [
            (d == s % 10, f"the digit of {s} is {s % 10}, not {f['d']}"),
            (co == s // 10, f"the carry of {s} is {s // 10}, not {f['co']}"),
        ]
    else:
        checks.append((False, f"cannot read the sum {f['s']!r}"))
    want_left = _left(st.a[:-1], st.b[:-1])
    checks.append((" ".join(f["left"].split()) == want_left, f"Left {f['left']}, but what is left is {want_left}"))
    digit = str(d) if d is not None else str(ws % 10)
    want_r = digit + st.result
    checks.append((f["r"] == want_r, f"result {f['r']}, but the digits so far give {want_r}"))
    wrong = [msg for ok, msg in checks if not ok]
    step = Step(not wrong, f"line {no}: " + "; ".join(wrong) if wrong else "", no)
    lm = _LEFT_RE.fullmatch(f["left"])
    la, lb = (lm["a"].strip(), lm["b"].strip()) if lm else ("", "")
    if re.fullmatch(r"[0-9]+", la) and re.fullmatch(r"[0-9]+", lb) and len(la) == len(lb):  # one length
        na, nb = la, lb
    elif f["left"].lower() == NONE:
        na = nb = ""
    else:
        na, nb = st.a[:-1], st.b[:-1]
    carry = co if co is not None and co in (0, 1) else ws // 10
    result = f["r"] if re.fullmatch(r"\d+", f["r"]) else want_r
    return step, _State(na, nb, carry, result)


def _check_close(m: re.Match[str], st: _State, no: int) -> tuple[list[Step], str]:
    """The closing line against the last state: the last carry and the result it gives. Returns the checks and
    the result the line says."""
    c, r = m["c"].strip(), m["r"].strip()
    want = (str(st.carry) if st.carry else "") + st.result
    out = [Step(True, "", no)]
    if st.a:
        out = [Step(False, f"line {no}: closes with digits still left ({_left(st.a, st.b)})", no)]
    elif _int(c) != st.carry:
        out = [Step(False, f"line {no}: the last carry is {st.carry}, not {c}", no)]
    elif r != want:
        out = [Step(False, f"line {no}: result {r}, but the carry and the digits give {want}", no)]
    return out, r


def _same_operands(ha: str, hb: str, sa: str, sb: str) -> bool:
    """The header's operands are the problem's, written with one length: the shortest padding (``sa``, ``sb``)
    or more zeros in front of both (``0047 + 0038``)."""
    return (
        re.fullmatch(r"[0-9]+", ha) is not None
        and re.fullmatch(r"[0-9]+", hb) is not None
        and len(ha) == len(hb) >= len(sa)
        and ha.lstrip("0") == sa.lstrip("0")
        and hb.lstrip("0") == sb.lstrip("0")
    )


def audit_carry(a: int, b: int, rationale: str, answer: str | None) -> Audit:
    """Check a carry trace line by line, each line one step (``checked`` counts the lines: the header, each
    digit's line, the closing carry, the answer), each against the one before; the verdict names the first
    bad line. A trace without a digit step is ``no_rationale``."""
    raw = rationale.splitlines()
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(raw) if ln.strip()]
    answer_no = len(raw) + 1
    if not any(rx.fullmatch(t) for _, t in lines for rx in (_HEADER_RE, _STEP_RE, _CLOSE_RE)):
        return Audit(no_rationale="no line of the carry trace (header, digit steps, closing carry)")
    steps: list[Step] = []
    sa, sb = padded(a, b)
    st: _State | None = None
    closed: str | None = None
    n_digit_steps = 0
    for no, text in lines:
        if st is None:
            m = _HEADER_RE.fullmatch(text)
            ha, hb = (m["a"].strip(), m["b"].strip()) if m is not None else ("", "")
            ok = _same_operands(ha, hb, sa, sb)
            want = HEADER.format(a=sa, b=sb)
            steps.append(Step(ok, "" if ok else f"line {no}: {text!r} should open the trace as {want!r}", no))
            st = _State(ha, hb) if ok else _State(sa, sb)
            if m is not None or not (_STEP_RE.fullmatch(text) or _CLOSE_RE.fullmatch(text)):
                continue
        if closed is not None:
            steps.append(Step(False, f"line {no}: extra line after the closing carry: {text!r}", no))
        elif m := _STEP_RE.fullmatch(text):
            if not st.a:
                steps.append(Step(False, f"line {no}: extra step, no digits are left: {text!r}", no))
                continue
            step, st = _check_step(m, st, no)
            steps.append(step)
            n_digit_steps += 1
        elif m := _CLOSE_RE.fullmatch(text):
            more, closed = _check_close(m, st, no)
            steps += more
        elif _HEADER_RE.fullmatch(text):
            steps.append(Step(False, f"line {no}: the header again, not a step: {text!r}", no))
        else:
            steps.append(Step(False, f"line {no}: cannot read {text!r} as a step of the carry trace", no))
    if closed is None:
        if st is not None and st.result:
            want = repr(CLOSE.format(c=st.carry, r=(str(st.carry) if st.carry else "") + st.result))
        else:
            want = "no digit step came before it"
        steps.append(Step(False, f"line {answer_no}: the closing line is missing ({want})", answer_no))
    if answer is not None:
        said = closed if closed is not None else (st.result if st else None)
        ok = bool(said) and _int(said) is not None and int(said) == int(answer)
        why = f"the answer {answer} is not the result {said}" if said else f"no result to give the answer {answer}"
        steps.append(Step(ok, "" if ok else f"line {answer_no}: {why}", answer_no))
    bad = tuple(s.message for s in steps if not s.ok)
    missing = None if n_digit_steps else "no digit step in the carry trace"
    return Audit(checked=len(steps), errors=bad, no_rationale=missing, first_bad_line=first_bad(steps))
