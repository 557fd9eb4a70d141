"""Arithmetic expressions in free text, for the equation checker (``star_core.tasks.audit``).

``tokenize`` reads numbers (thousands commas or spaces, a leading currency sign, a trailing ``%``), operators
(``x`` multiplies when a number follows), parentheses and ``=``; ``parse`` is a small recursive-descent parser
over exact fractions (no ``eval()``) that returns a ``Node`` tree, or None when the tokens are not one
expression. ``top_terms`` splits a sum into its signed terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Node", "ParseError", "Parser", "Tok", "parse", "tokenize", "top_terms"]

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
class Tok:
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


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        s = m.group()
        if kind == "ws":
            if "\n" in s:  # a chain never runs across lines
                toks.append(Tok("other", "\n", m.start(), m.end()))
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
                toks.append(Tok("other", s, m.start(), m.end()))
                continue
            value, pct = _number(s)
            toks.append(Tok("num", s, m.start(), m.end(), value, pct))
        elif kind == "op":
            toks.append(Tok("op", s, m.start(), m.end(), op=_OP_MAP[s]))
        elif kind == "word" and s in ("x", "X") and re.match(r"\s*[\d($.]", text[m.end() :]):
            # "x" multiplies when a number (or "(") follows: "0.2 x 50", "60 students x 2/3"
            toks.append(Tok("op", s, m.start(), m.end(), op="*"))
        elif kind == "word":
            if toks and toks[-1].kind in ("num", "rp") and toks[-1].end == m.start():
                # "5A", "0.20Y", "(3/2)x", "3rd": glued to letters, a term of algebra or a label
                prev = toks.pop()
                toks.append(Tok("other", prev.text, prev.start, prev.end))
            toks.append(Tok("other", s, m.start(), m.end()))
        elif kind in ("lp", "rp", "eq"):
            toks.append(Tok(kind, s, m.start(), m.end()))
        else:
            toks.append(Tok("other", s, m.start(), m.end()))
    return toks


# ---- expressions ---------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    kind: str  # num neg bin group
    start: int
    end: int
    value: Fraction | None = None
    pct: bool = False
    op: str = ""
    left: Node | None = None
    right: Node | None = None

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


class ParseError(Exception):
    pass


class Parser:
    """expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := NUM | '(' expr ')' | '-' factor (only when glued to a number or a parenthesis)."""

    def __init__(self, toks: list[Tok], tight: bool = True):
        self.toks, self.i, self.tight = toks, 0, tight

    def _spaced_before(self, k: int) -> bool:
        """True when token ``k`` follows an operator after a space (``25 / 1/3``, ``3/ 1/4``)."""
        if k == 0:
            return False
        prev = self.toks[k - 1]
        return prev.kind == "op" and prev.end < self.toks[k].start

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Node:
        node = self.expr()
        if self.i != len(self.toks):
            raise ParseError("trailing tokens")
        return node

    def expr(self) -> Node:
        node = self.term()
        while (t := self.peek()) is not None and t.kind == "op" and t.op in "+-":
            self.i += 1
            right = self.term()
            node = Node("bin", node.start, right.end, op=t.op, left=node, right=right)
        return node

    def term(self) -> Node:
        node = self.factor()
        while (t := self.peek()) is not None and t.kind == "op" and t.op in "*/":
            self.i += 1
            right = self.factor()
            node = Node("bin", node.start, right.end, op=t.op, left=node, right=right)
        return node

    def factor(self) -> Node:
        t = self.peek()
        if t is None:
            raise ParseError("missing operand")
        if t.kind == "num":
            self.i += 1
            node = Node("num", t.start, t.end, value=t.value, pct=t.pct)
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
                    node = Node(
                        "group",
                        t.start,
                        den.end,
                        left=Node(
                            "bin",
                            t.start,
                            den.end,
                            op="/",
                            left=node,
                            right=Node("num", den.start, den.end, value=den.value, pct=den.pct),
                        ),
                    )
            return node
        if t.kind == "lp":
            self.i += 1
            inner = self.expr()
            close = self.peek()
            if close is None or close.kind != "rp":
                raise ParseError("unclosed parenthesis")
            self.i += 1
            return Node("group", t.start, close.end, left=inner)
        if t.kind == "op" and t.op == "-":
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
            if nxt is not None and nxt.start == t.end and nxt.kind in ("num", "lp"):
                self.i += 1
                inner = self.factor()
                return Node("neg", t.start, inner.end, left=inner)
        raise ParseError(f"unexpected {t.text!r}")


def parse(toks: list[Tok], tight: bool = True) -> Node | None:
    if not toks:
        return None
    try:
        return Parser(toks, tight).parse()
    except ParseError:
        return None


def top_terms(node: Node) -> list[tuple[int, Node]]:
    """Top-level additive terms with their signs: ``a + (b) - c`` -> [(+1,a), (+1,(b)), (-1,c)]."""
    if node.kind == "bin" and node.op in "+-":
        assert node.left is not None and node.right is not None
        sign = 1 if node.op == "+" else -1
        return top_terms(node.left) + [(sign, node.right)]
    return [(1, node)]
