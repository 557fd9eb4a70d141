"""Shared equation checker for rationale audits.

``find_chains(text)`` finds arithmetic chains such as ``47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85``
or ``2 x 3 x 4 = $24`` in free text; ``check_chain`` verifies every ``=`` link. Expressions are
read by a small tokenizer and recursive-descent parser over exact fractions (``star_core.tasks.expr``): no
``eval()``.

Numbers may carry thousands commas (``1,080``), a leading ``$`` and a trailing ``%``. A part with a
percent sign holds if it matches either reading of ``%`` (ignored, or divided by 100), because
worked solutions write both ``50 * 20% = 10`` and ``100 * 0.2 = 20%``. Results rounded to two
decimals are accepted (one decimal when the written number has one decimal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from .base import Audit
from .expr import Node, Tok, parse, tokenize, top_terms

__all__ = [
    "Chain",
    "Part",
    "Step",
    "find_chains",
    "check_chain",
    "check_link",
    "audit_equations",
    "first_bad",
    "evaluate",
    "fmt_num",
    "hint_phrase_leak",
]

# ---- chains ---------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One side of an ``=``: the parsed expression and its text."""

    text: str
    node: Node
    source: str

    @property
    def is_number(self) -> bool:
        return self.node.is_number

    @property
    def has_op(self) -> bool:
        return not self.is_number

    def addends(self) -> list[Fraction] | None:
        """The numbers summed, parentheses dropped: ``(40 + 30) + 7`` -> [40, 30, 7]; None when
        anything but ``+`` joins them."""

        def walk(n: Node | None) -> list[Fraction] | None:
            if n is None:
                return None
            if n.kind == "group":
                return walk(n.left)
            if n.kind == "num":
                return None if n.pct or n.value is None else [n.value]
            if n.kind == "bin" and n.op == "+":
                left, right = walk(n.left), walk(n.right)
                return None if left is None or right is None else left + right
            return None

        return walk(self.node)

    def values(self) -> list[Fraction]:
        """Candidate values: ``%`` ignored or read as /100, and ``a / b/c`` read as a / (b/c) or
        (a/b)/c. Raises ZeroDivisionError."""
        nodes = [self.node]
        if "/" in self.text:
            plain = parse(tokenize(self.text), tight=False)
            if plain is not None:
                nodes.append(plain)
        vals = []
        for n in nodes:
            vals.append(n.eval(False))
            if n.has_pct():
                vals.append(n.eval(True))
        return vals

    def value(self) -> Fraction:
        return self.node.eval(False)

    def decimals(self) -> int:
        """Decimal places of a bare written number (0 for expressions)."""
        if not self.is_number:
            return 0
        m = re.search(r"\.(\d+)", self.text)
        return len(m.group(1)) if m else 0

    def terms(self) -> list[tuple[int, Part]]:
        return [(s, Part(self.source[n.start : n.end], n, self.source)) for s, n in top_terms(self.node)]

    @property
    def inner_text(self) -> str:
        """The text without one pair of enclosing parentheses: ``(7 + 8)`` -> ``7 + 8``."""
        if self.node.kind == "group" and self.node.left is not None:
            n = self.node.left
            return self.source[n.start : n.end]
        return self.text


@dataclass(frozen=True)
class Chain:
    """``parts[0] = parts[1] = ...`` as found in the text (``start``/``end`` index into it)."""

    parts: tuple[Part, ...]
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Step:
    """One verified step: ``ok`` and, when not ok, the reason in words."""

    ok: bool
    message: str = ""
    line: int | None = None
    """The 1-based line of the completion the step is on, when known."""


def _split_runs(toks: list[Tok]) -> list[tuple[Tok | None, list[Tok]]]:
    """Maximal runs of arithmetic tokens, each with the token just before it."""
    runs: list[tuple[Tok | None, list[Tok]]] = []
    cur: list[Tok] = []
    before: Tok | None = None
    for t in toks:
        if t.kind == "other":
            if cur:
                runs.append((before, cur))
            cur = []
            before = t
        else:
            cur.append(t)
    if cur:
        runs.append((before, cur))
    return runs


def _label_start(before: Tok | None, first: Tok, node: Node) -> bool:
    """True when a chain's first part is not a quantity: ``Week 2 = 35 + 35`` (a bare number
    right after a word), ``sqrt(144) = 12`` / ``√(144)`` (glued to a word or symbol)."""
    if before is None or before.text == "\n":
        return False
    if before.end == first.start and before.text not in ",;:!?\"'":
        return True
    return node.is_number and before.text[:1].isalpha()


def _parse_tail(toks: list[Tok]) -> Node | None:
    """The group without leading parentheses (``( 5 + 3`` -> ``5 + 3``); other junk is not dropped,
    since ``S + 143`` or ``86(2)`` are not the expression they end with."""
    k = 0
    while k < len(toks) - 1 and toks[k].kind in ("lp", "rp"):
        k += 1
        node = parse(toks[k:])
        if node is not None:
            return node
    return None


def _parse_head(toks: list[Tok]) -> Node | None:
    """The longest prefix followed by a parenthesis (``24 (48/2)`` -> ``24``, ``8 )`` -> ``8``),
    or by a lone "/" before a unit (``$15/hr``). A prefix followed by another operator
    (``10 - S``) is not dropped to."""
    if len(toks) >= 2 and toks[-1].kind == "op" and toks[-1].op == "/" and toks[-1].text == "/":
        node = parse(toks[:-1])
        if node is not None:
            return node
    for k in range(len(toks) - 1, 0, -1):
        if toks[k].kind in ("lp", "rp"):
            node = parse(toks[:k])
            if node is not None:
                return node
    return None


def find_chains(text: str) -> list[Chain]:
    """Every equation chain in ``text`` that has at least one operator somewhere.

    Words end a chain, so ``5 apples + 3 = 8`` yields nothing checkable while
    ``Natalia sold 48/2 = 24 clips`` yields ``48/2 = 24``.
    """
    chains: list[Chain] = []
    for before, run in _split_runs(tokenize(text)):
        if not any(t.kind == "eq" for t in run):
            continue
        groups: list[list[Tok]] = [[]]
        for t in run:
            if t.kind == "eq":
                groups.append([])
            else:
                groups[-1].append(t)
        current: list[Part] = []

        def flush(current: list[Part] = current) -> None:  # bound to this run's parts
            if len(current) >= 2 and any(p.has_op for p in current):
                chains.append(
                    Chain(
                        tuple(current),
                        current[0].node.start,
                        current[-1].node.end,
                        text[current[0].node.start : current[-1].node.end],
                    )
                )
            current.clear()

        def add(node: Node, current: list[Part] = current) -> None:
            current.append(Part(text[node.start : node.end], node, text))

        for gi, g in enumerate(groups):
            node = parse(g)
            if node is not None:
                if not (gi == 0 and _label_start(before, g[0], node)):
                    add(node)
                continue
            # junk: a clean head may close the current chain, a clean tail may open the next
            head = _parse_head(g) if g and current else None
            if head is not None:
                add(head)
            flush()
            tail = _parse_tail(g) if g else None
            if tail is not None:
                add(tail)
        flush()
    return chains


# ---- checking -------------------------------------------------------------------

_TOL = Fraction(1, 100)


def _close(a: Fraction, b: Fraction, decimals: int = 0) -> bool:
    tol = _TOL
    if decimals == 1:
        tol = Fraction(5, 100)
    scale = max(abs(a), abs(b), Fraction(1))
    return abs(a - b) <= tol + scale * Fraction(1, 10**9)


def _holds(lhs: Part, rhs: Part) -> bool:
    dec = max(lhs.decimals(), rhs.decimals())
    if any(_close(x, y, dec) for x in lhs.values() for y in rhs.values()):
        return True
    # a division written as a whole count ("17/3 = 5 boxes") may round down or up
    top = lhs.node.left if lhs.node.kind == "group" else lhs.node
    if top is not None and top.kind == "bin" and top.op == "/" and rhs.is_number and dec == 0:
        v, w = lhs.value(), rhs.value()
        return w.denominator == 1 and (w == v.numerator // v.denominator or w == -((-v.numerator) // v.denominator))
    return False


def fmt_num(x: Fraction) -> str:
    """A value in words: ``85``, ``0.2``, ``3.3333`` (at most 4 decimals)."""
    if x.denominator == 1:
        return str(x.numerator)
    s = f"{float(x):.4f}".rstrip("0").rstrip(".")
    return s


def _wrong(lhs: Part, rhs: Part) -> str:
    head = f"{lhs.text} = {rhs.text} is wrong: "
    if rhs.is_number:
        return head + f"{lhs.inner_text} = {fmt_num(lhs.value())}"
    return head + f"{lhs.inner_text} = {fmt_num(lhs.value())}, {rhs.inner_text} = {fmt_num(rhs.value())}"


def check_link(lhs: Part, rhs: Part) -> list[Step]:
    """Verify ``lhs = rhs``.

    A reduction step such as ``(40 + 30) + (7 + 8) = 70 + 14`` is checked term by term
    (one step per computed term, error ``(7 + 8) = 14 is wrong: 7 + 8 = 15``); any other link
    is one step on the whole values.
    """
    try:
        lhs.values(), rhs.values()
    except ZeroDivisionError:
        return [Step(False, f"{lhs.text} = {rhs.text} cannot hold: division by zero")]
    lt, rt = lhs.terms(), rhs.terms()
    termwise = (
        len(lt) >= 2
        and len(lt) == len(rt)
        and all(ls == rs for (ls, _), (rs, _) in zip(lt, rt))
        and all(r.is_number for _, r in rt)
        and any(not part.is_number for _, part in lt)
    )
    if termwise:
        steps = [
            Step(True) if _holds(lp, rp) else Step(False, _wrong(lp, rp))
            for (_, lp), (_, rp) in zip(lt, rt)
            if not lp.is_number
        ]
        if all(s.ok for s in steps):
            return steps
        if sorted(s * p.value() for s, p in lt) == sorted(s * p.value() for s, p in rt):
            return [Step(True) for _ in steps]  # the same terms, written in another order
        return steps
    if _holds(lhs, rhs):
        return [Step(True)]
    return [Step(False, _wrong(lhs, rhs))]


def check_chain(chain: Chain) -> list[Step]:
    steps: list[Step] = []
    for lhs, rhs in zip(chain.parts, chain.parts[1:]):
        steps.extend(check_link(lhs, rhs))
    return steps


def audit_equations(text: str) -> Audit:
    """Check every equation chain in ``text``; ``checked`` counts the verified links."""
    steps = [Step(s.ok, s.message, text.count("\n", 0, c.start) + 1) for c in find_chains(text) for s in check_chain(c)]
    return Audit(
        checked=len(steps), errors=tuple(s.message for s in steps if not s.ok), first_bad_line=first_bad(steps)
    )


def first_bad(steps: list[Step], default: int = 1) -> int | None:
    """The line of the first wrong step (the smallest line named; ``default`` for a wrong step without one),
    or None when every step holds."""
    bad = [s.line if s.line is not None else default for s in steps if not s.ok]
    return min(bad) if bad else None


def evaluate(expression: str) -> Fraction:
    """Safely evaluate one arithmetic expression (``+ - * / x``, parentheses, ``$``, ``,``, ``%``).

    Raises ValueError when the text is not a single expression; ZeroDivisionError on ``/ 0``.
    """
    toks = tokenize(expression)
    node = parse(toks) if all(t.kind != "other" and t.kind != "eq" for t in toks) else None
    if node is None:
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    return node.eval(False)


# ---- hint wording ---------------------------------------------------------------

_LEAK_PATTERNS = (
    (re.compile(r"\bhint(?:s|ed)?\b", re.I), "mentions the hint"),
    (
        re.compile(
            r"\b(?:answer|result|sum|total)\b[^.\n]{0,30}?\b(?:is|was|has been|were)\s+(?:already\s+)?"
            r"(?:given|provided|stated|shown|told|hinted)\b(?!\s+by\b)",
            re.I,
        ),
        "says the answer was given",
    ),
    (
        re.compile(
            r"\b(?:given|provided|told|stated|shown)\s+(?:that\s+|us\s+|in\s+the\s+question\s+)?(?:that\s+)?"
            r"(?:the\s+)?(?:answer|result)\b",
            re.I,
        ),
        "says the answer was given",
    ),
    (
        re.compile(r"\bwe\s+(?:already\s+)?know\s+(?:that\s+)?the\s+(?:answer|result)\b", re.I),
        "says the answer was known",
    ),
)


def hint_phrase_leak(text: str) -> str | None:
    """A reason when ``text`` mentions a hint or says the answer was given, else None."""
    for pattern, reason in _LEAK_PATTERNS:
        m = pattern.search(text)
        if m:
            return f"{reason}: {m.group(0)!r}"
    return None
