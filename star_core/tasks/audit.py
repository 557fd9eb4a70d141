"""Shared equation checker for rationale audits.

``find_chains(text)`` finds arithmetic chains such as ``47 + 38 = (40 + 30) + (7 + 8) = 70 + 15 = 85``
or ``2 x 3 x 4 = $24`` in free text; ``check_chain`` verifies every ``=`` link. Expressions are
read by a small tokenizer and recursive-descent parser over exact fractions: no ``eval()``.

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

# ---- tokens ------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>[$€£]?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:\ \d{3})+(?!\d)(?![,.]\d{3})|\d+)(?:\.\d+)?|\.\d+)%?)
  | (?P<op>[+\-*/×÷−–])
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<eq>=)
  | (?P<word>[A-Za-z_]+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_OP_MAP = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "x": "*", "X": "*", "/": "/", "÷": "/"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num op lp rp eq other
    text: str
    start: int
    end: int
    value: Fraction | None = None
    pct: bool = False
    op: str = ""


def _number(text: str) -> tuple[Fraction, bool]:
    pct = text.endswith("%")
    core = text.strip("$€£%").replace(",", "").replace(" ", "")
    return Fraction(core), pct


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        s = m.group()
        if kind == "ws":
            if "\n" in s:  # a chain never runs across lines
                toks.append(_Tok("other", "\n", m.start(), m.end()))
            continue
        glued_to_word = (
            bool(toks) and toks[-1].end == m.start() and toks[-1].kind == "other" and toks[-1].text[:1].isalpha()
        )
        if kind == "num":
            bare = s.lstrip("$€£")
            broken = m.start() >= 2 and text[m.start() - 1] in ",." and text[m.start() - 2].isdigit()
            leading_zero = len(bare) > 1 and bare[0] == "0" and bare[1].isdigit()
            if glued_to_word or broken or leading_zero:
                # "B2" (a label), "160,0000" (a typo), "0900" / "6:00" (a time): not numbers
                toks.append(_Tok("other", s, m.start(), m.end()))
                continue
            value, pct = _number(s)
            toks.append(_Tok("num", s, m.start(), m.end(), value, pct))
        elif kind == "op":
            toks.append(_Tok("op", s, m.start(), m.end(), op=_OP_MAP[s]))
        elif kind == "word" and s in ("x", "X") and re.match(r"\s*[\d($.]", text[m.end() :]):
            # "x" multiplies when a number (or "(") follows: "0.2 x 50", "60 students x 2/3"
            toks.append(_Tok("op", s, m.start(), m.end(), op="*"))
        elif kind == "word":
            if toks and toks[-1].kind in ("num", "rp") and toks[-1].end == m.start():
                # "5A", "0.20Y", "(3/2)x", "3rd": glued to letters, a term of algebra or a label
                prev = toks.pop()
                toks.append(_Tok("other", prev.text, prev.start, prev.end))
            toks.append(_Tok("other", s, m.start(), m.end()))
        elif kind in ("lp", "rp", "eq"):
            toks.append(_Tok(kind, s, m.start(), m.end()))
        else:
            toks.append(_Tok("other", s, m.start(), m.end()))
    return toks


# ---- expressions ---------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    kind: str  # num neg bin group
    start: int
    end: int
    value: Fraction | None = None
    pct: bool = False
    op: str = ""
    left: _Node | None = None
    right: _Node | None = None

    def eval(self, pct_mode: bool) -> Fraction:
        if self.kind == "num":
            assert self.value is not None
            return self.value / 100 if (self.pct and pct_mode) else self.value
        if self.kind == "group":
            assert self.left is not None
            return self.left.eval(pct_mode)
        if self.kind == "neg":
            assert self.left is not None
            return -self.left.eval(pct_mode)
        assert self.left is not None and self.right is not None
        a, b = self.left.eval(pct_mode), self.right.eval(pct_mode)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        return a / b  # ZeroDivisionError is handled by the caller

    def has_pct(self) -> bool:
        if self.kind == "num":
            return self.pct
        return any(n.has_pct() for n in (self.left, self.right) if n is not None)

    @property
    def is_number(self) -> bool:
        return self.kind == "num" or (self.kind == "neg" and self.left is not None and self.left.kind == "num")


class _ParseError(Exception):
    pass


class _Parser:
    """expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := NUM | '(' expr ')' | '-' factor (only when glued to a number or a parenthesis)."""

    def __init__(self, toks: list[_Tok], tight: bool = True):
        self.toks, self.i, self.tight = toks, 0, tight

    def _spaced_before(self, k: int) -> bool:
        """True when token ``k`` follows an operator after a space (``25 / 1/3``, ``3/ 1/4``)."""
        if k == 0:
            return False
        prev = self.toks[k - 1]
        return prev.kind == "op" and prev.end < self.toks[k].start

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> _Node:
        node = self.expr()
        if self.i != len(self.toks):
            raise _ParseError("trailing tokens")
        return node

    def expr(self) -> _Node:
        node = self.term()
        while (t := self.peek()) is not None and t.kind == "op" and t.op in "+-":
            self.i += 1
            right = self.term()
            node = _Node("bin", node.start, right.end, op=t.op, left=node, right=right)
        return node

    def term(self) -> _Node:
        node = self.factor()
        while (t := self.peek()) is not None and t.kind == "op" and t.op in "*/":
            self.i += 1
            right = self.factor()
            node = _Node("bin", node.start, right.end, op=t.op, left=node, right=right)
        return node

    def factor(self) -> _Node:
        t = self.peek()
        if t is None:
            raise _ParseError("missing operand")
        if t.kind == "num":
            self.i += 1
            node = _Node("num", t.start, t.end, value=t.value, pct=t.pct)
            # a tight fraction binds first: "25 / 1/3" is 25 / (1/3), as the writer means
            if self.tight and self.i + 1 < len(self.toks):
                sl, den = self.toks[self.i], self.toks[self.i + 1]
                if (
                    sl.kind == "op"
                    and sl.op == "/"
                    and sl.text == "/"
                    and den.kind == "num"
                    and sl.start == t.end
                    and den.start == sl.end
                    and self._spaced_before(self.i - 1)
                ):
                    self.i += 2
                    node = _Node(
                        "group",
                        t.start,
                        den.end,
                        left=_Node(
                            "bin",
                            t.start,
                            den.end,
                            op="/",
                            left=node,
                            right=_Node("num", den.start, den.end, value=den.value, pct=den.pct),
                        ),
                    )
            return node
        if t.kind == "lp":
            self.i += 1
            inner = self.expr()
            close = self.peek()
            if close is None or close.kind != "rp":
                raise _ParseError("unclosed parenthesis")
            self.i += 1
            return _Node("group", t.start, close.end, left=inner)
        if t.kind == "op" and t.op == "-":
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
            if nxt is not None and nxt.start == t.end and nxt.kind in ("num", "lp"):
                self.i += 1
                inner = self.factor()
                return _Node("neg", t.start, inner.end, left=inner)
        raise _ParseError(f"unexpected {t.text!r}")


def _parse(toks: list[_Tok], tight: bool = True) -> _Node | None:
    if not toks:
        return None
    try:
        return _Parser(toks, tight).parse()
    except _ParseError:
        return None


def _top_terms(node: _Node) -> list[tuple[int, _Node]]:
    """Top-level additive terms with their signs: ``a + (b) - c`` -> [(+1,a), (+1,(b)), (-1,c)]."""
    if node.kind == "bin" and node.op in "+-":
        assert node.left is not None and node.right is not None
        sign = 1 if node.op == "+" else -1
        return _top_terms(node.left) + [(sign, node.right)]
    return [(1, node)]


# ---- chains ---------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One side of an ``=``: the parsed expression and its text."""

    text: str
    node: _Node
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

        def walk(n: _Node | None) -> list[Fraction] | None:
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
            plain = _parse(_tokenize(self.text), tight=False)
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
        return [(s, Part(self.source[n.start : n.end], n, self.source)) for s, n in _top_terms(self.node)]

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


def _split_runs(toks: list[_Tok]) -> list[tuple[_Tok | None, list[_Tok]]]:
    """Maximal runs of arithmetic tokens, each with the token just before it."""
    runs: list[tuple[_Tok | None, list[_Tok]]] = []
    cur: list[_Tok] = []
    before: _Tok | None = None
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


def _label_start(before: _Tok | None, first: _Tok, node: _Node) -> bool:
    """True when a chain's first part is not a quantity: ``Week 2 = 35 + 35`` (a bare number
    right after a word), ``sqrt(144) = 12`` / ``√(144)`` (glued to a word or symbol)."""
    if before is None or before.text == "\n":
        return False
    if before.end == first.start and before.text not in ",;:!?\"'":
        return True
    return node.is_number and before.text[:1].isalpha()


def _parse_tail(toks: list[_Tok]) -> _Node | None:
    """The group without leading parentheses (``( 5 + 3`` -> ``5 + 3``); other junk is not dropped,
    since ``S + 143`` or ``86(2)`` are not the expression they end with."""
    k = 0
    while k < len(toks) - 1 and toks[k].kind in ("lp", "rp"):
        k += 1
        node = _parse(toks[k:])
        if node is not None:
            return node
    return None


def _parse_head(toks: list[_Tok]) -> _Node | None:
    """The longest prefix followed by a parenthesis (``24 (48/2)`` -> ``24``, ``8 )`` -> ``8``),
    or by a lone "/" before a unit (``$15/hr``). A prefix followed by another operator
    (``10 - S``) is not dropped to."""
    if len(toks) >= 2 and toks[-1].kind == "op" and toks[-1].op == "/" and toks[-1].text == "/":
        node = _parse(toks[:-1])
        if node is not None:
            return node
    for k in range(len(toks) - 1, 0, -1):
        if toks[k].kind in ("lp", "rp"):
            node = _parse(toks[:k])
            if node is not None:
                return node
    return None


def find_chains(text: str) -> list[Chain]:
    """Every equation chain in ``text`` that has at least one operator somewhere.

    Words end a chain, so ``5 apples + 3 = 8`` yields nothing checkable while
    ``Natalia sold 48/2 = 24 clips`` yields ``48/2 = 24``.
    """
    chains: list[Chain] = []
    for before, run in _split_runs(_tokenize(text)):
        if not any(t.kind == "eq" for t in run):
            continue
        groups: list[list[_Tok]] = [[]]
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

        def add(node: _Node, current: list[Part] = current) -> None:
            current.append(Part(text[node.start : node.end], node, text))

        for gi, g in enumerate(groups):
            node = _parse(g)
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
    toks = _tokenize(expression)
    node = _parse(toks) if all(t.kind != "other" and t.kind != "eq" for t in toks) else None
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
