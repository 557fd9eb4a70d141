"""The arithmetic task's audits of the decomposition, columns and scratchpad formats, and the column
arithmetic they share with the task (the carry format's audit is in ``arith_carry``)."""

from __future__ import annotations

import re

from . import audit as eq
from .base import Parsed

PLACES = (
    "ones",
    "tens",
    "hundreds",
    "thousands",
    "ten-thousands",
    "hundred-thousands",
    "millions",
    "ten-millions",
    "hundred-millions",
    "billions",
)

_COLUMN_RE = re.compile(
    r"add the ([\w-]+)\s*:\s*([^=:]*?)\s*=\s*(-?\d+)\s*,?\s*write\s+(\d+)"
    r"(?:\s*(?:,|and)?\s*carry\s+(\d+))?",
    re.I,
)
_FINAL_CARRY_RE = re.compile(r"(?:write|add) the (?:last |final )?carry\s+(\d+)", re.I)


def digits(n: int) -> int:
    return len(str(abs(n)))


def spaced(s: str) -> str:
    return " ".join(s)


def place(i: int) -> str:
    return PLACES[i] if i < len(PLACES) else f"10^{i}"


def norm_int(s: str) -> str | None:
    s = s.replace(",", "").replace(" ", "").replace("\t", "").rstrip(".")
    if not re.fullmatch(r"-?\d+", s):
        return None
    return str(int(s))


def columns(a: int, b: int) -> list[tuple[int, int, int, int, int]]:
    """Per column from the ones: (digit of a, digit of b, carry in, digit written, carry out)."""
    n = max(digits(a), digits(b))
    out, c = [], 0
    for i in range(n):
        da, db = (a // 10**i) % 10, (b // 10**i) % 10
        s = da + db + c
        out.append((da, db, c, s % 10, s // 10))
        c = s // 10
    return out


def scratch_lines(a: int, b: int) -> list[str]:
    n = max(digits(a), digits(b))
    sa, sb = str(a).zfill(n), str(b).zfill(n)
    lines = [f"{spaced(sa)} + {spaced(sb)} , C: 0"]
    res = ""
    for i, (_, _, _, d, cout) in enumerate(columns(a, b)):
        res = str(d) + res
        ra, rb = sa[: n - 1 - i], sb[: n - 1 - i]
        head = f"{spaced(ra)} + {spaced(rb)} " if ra else ""
        lines.append(f"{head}, {spaced(res)} C: {cout}")
    return lines


def audit_decomposition(a: int, b: int, parsed: Parsed) -> tuple[list[eq.Step], str | None]:
    chains = eq.find_chains(parsed.rationale)
    if not chains:
        return [], "no arithmetic steps in the rationale"
    steps: list[eq.Step] = []
    first = chains[0].parts[0]
    operands = (
        sorted(p.value() for _, p in first.terms()) if all(s == 1 and p.is_number for s, p in first.terms()) else None
    )
    if operands == sorted([a, b]):
        steps.append(eq.Step(True))
    else:
        steps.append(eq.Step(False, f"the steps start from {first.text}, not the problem's {a} + {b}"))
    for c in chains:
        steps.extend(eq.check_chain(c))
    last = chains[-1].parts[-1]
    if parsed.answer is not None:
        try:
            end = last.value()
        except ZeroDivisionError:
            end = None
        said = norm_int(parsed.answer)
        if end is not None and said is not None and end == int(said):
            steps.append(eq.Step(True))
        else:
            steps.append(eq.Step(False, f"the steps end at {last.text} but the answer says {parsed.answer}"))
    rest = parsed.rationale
    for c in reversed(chains):
        rest = rest[: c.start] + " " + rest[c.end :]
    if re.search(r"\d", rest):  # digits outside every equation: ``= 4o.``, ``85 apples``
        steps.append(eq.Step(False, f"text the audit cannot read as a step: {' '.join(rest.split())!r}"))
    shown = any(p.has_op and not _restates(p, a, b) for c in chains for p in c.parts)
    return steps, None if shown else (
        f"no intermediate step: {'; '.join(c.text for c in chains)} writes only the question and the answer"
    )


def audit_columns(a: int, b: int, parsed: Parsed) -> tuple[list[eq.Step], str | None]:
    found = list(_COLUMN_RE.finditer(parsed.rationale))
    if not found:
        return [], "no column steps in the rationale"
    cols = columns(a, b)
    steps: list[eq.Step] = []
    written: list[int] = []
    for i, (da, db, cin, d, cout) in enumerate(cols):
        label = f"column {i + 1} ({place(i)})"
        if i >= len(found):
            steps.append(eq.Step(False, f"{label} is missing"))
            continue
        m = found[i]
        expr, s_txt, w_txt, c_txt = m.group(2).strip(), m.group(3), m.group(4), m.group(5)
        nums = [int(x) for x in re.findall(r"\d+", expr)]
        want = [da, db] + ([cin] if cin else [])
        if sorted(x for x in nums if x) == sorted(x for x in want if x):
            steps.append(eq.Step(True))
        else:
            steps.append(eq.Step(False, f"{label}: added {expr}, expected " + " + ".join(map(str, want))))
        try:
            val = eq.evaluate(expr)
        except (ValueError, ZeroDivisionError):
            val = None
        if val is not None and val == int(s_txt):
            steps.append(eq.Step(True))
        elif val is None:
            steps.append(eq.Step(False, f"{label}: cannot read the sum {expr!r}"))
        else:
            steps.append(eq.Step(False, f"{expr} = {s_txt} is wrong: {expr} = {eq.fmt_num(val)}"))
        w, c = int(w_txt), int(c_txt) if c_txt is not None else 0
        written.append(w)
        if (w, c) == (d, cout):
            steps.append(eq.Step(True))
        else:
            steps.append(eq.Step(False, f"{label}: wrote {w} carry {c}, expected {d} carry {cout}"))
    for m in found[len(cols) :]:
        steps.append(eq.Step(False, f"extra column step: {m.group(0)!r}"))
    fc = _FINAL_CARRY_RE.search(parsed.rationale)
    final_carry = int(fc.group(1)) if fc else 0
    if cols[-1][4]:
        steps.append(eq.Step(True) if final_carry == 1 else eq.Step(False, "the final carry 1 is not written"))
    elif fc is not None:
        steps.append(eq.Step(final_carry == 0, f"wrote a final carry {final_carry} but there is none"))
    if parsed.answer is not None and len(written) == len(cols):
        shown = "".join(str(w) for w in reversed(written))
        total = int((str(final_carry) if final_carry else "") + shown)
        steps.append(
            eq.Step(True)
            if str(total) == parsed.answer
            else eq.Step(False, f"the written digits give {total} but the answer says {parsed.answer}")
        )
    return steps, None


def audit_scratch(a: int, b: int, parsed: Parsed) -> tuple[list[eq.Step], str | None]:
    text = parsed.rationale
    start = text.find("<scratch>")
    if start == -1:
        return [], "no <scratch> block in the rationale"
    end = text.find("</scratch>", start)
    block = text[start + len("<scratch>") : end if end != -1 else len(text)]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    expected = scratch_lines(a, b)
    cols = columns(a, b)
    steps: list[eq.Step] = []
    if not lines:
        return [], "empty <scratch> block"
    first = _read_scratch_line(lines[0])
    if first and first[0] and first[1] and (int("".join(first[0])), int("".join(first[1]))) == (a, b):
        steps.append(eq.Step(True))
    else:
        steps.append(eq.Step(False, f"first line {lines[0]!r} should read {expected[0]!r}"))
    last_res: list[str] | None = None
    last_carry = 0
    for i, (_, _, _, d, cout) in enumerate(cols):
        label = f"column {i + 1}"
        if i + 1 >= len(lines):
            steps.append(eq.Step(False, f"{label} is missing"))
            last_res = None
            continue
        got = _read_scratch_line(lines[i + 1])
        if got is None or not got[2]:
            steps.append(eq.Step(False, f"{label}: cannot read line {lines[i + 1]!r}"))
            last_res = None
            continue
        _, _, res, carry = got
        last_res, last_carry = res, carry
        if (int(res[0]), carry) != (d, cout):
            steps.append(eq.Step(False, f"{label}: wrote {res[0]} carry {carry}, expected {d} carry {cout}"))
        elif " ".join(lines[i + 1].split()) != expected[i + 1]:
            steps.append(eq.Step(False, f"{label}: line {lines[i + 1]!r} should read {expected[i + 1]!r}"))
        else:
            steps.append(eq.Step(True))
    for extra in lines[len(cols) + 1 :]:
        steps.append(eq.Step(False, f"extra line {extra!r}"))
    if parsed.answer is not None and last_res is not None:
        total = int(("1" if last_carry else "") + "".join(last_res))
        steps.append(
            eq.Step(True)
            if str(total) == parsed.answer
            else eq.Step(
                False, f"the scratchpad gives {spaced(str(total))} but the answer says {spaced(parsed.answer)}"
            )
        )
    return steps, None


def _restates(part: eq.Part, a: int, b: int) -> bool:
    """``part`` adds the question's operands again and nothing else (``(47 + 38)``, ``38 + 47``)."""
    terms = part.addends()
    return terms is not None and sorted(x for x in terms if x) == sorted(x for x in (a, b) if x)


def _read_scratch_line(line: str) -> tuple[list[str], list[str], list[str], int] | None:
    """``4 + 3 , 5 C: 1`` -> (['4'], ['3'], ['5'], 1); None when the line has no ``C:``."""
    m = re.fullmatch(r"(.*?),(.*?)C\s*:\s*(\d)", line.strip())
    if not m:
        return None
    ops, res, carry = m.group(1), m.group(2), int(m.group(3))
    a_part, _, b_part = ops.partition("+")
    return re.findall(r"\d", a_part), re.findall(r"\d", b_part), re.findall(r"\d", res), carry
