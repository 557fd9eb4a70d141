"""Model and dataset text, and every stored or URL-borne string, shown safely: one escape for markdown
(:func:`md_escape`), literal text (:func:`show_text`), and escaped highlights (:func:`highlight`, which HTML-escapes
every character it did not add itself and renders via ``st.html``, which is not markdown and is sanitised by
Streamlit). ``star_dashboard.ui`` re-exports them (``ui.md_escape``, ...)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import streamlit as st

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:=^&])")
#: Where a bare URL, ``www.`` name or e-mail address would become a link (GFM autolink literals, which
#: backslashes do not stop): an invisible zero-width space goes there.
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=[wW]{3})(?=\.)|(?<=@)")
_ZWSP = "\u200b"


def md_escape(text: Any) -> str:
    """THE escape for every stored or URL-borne string (run name, status, task, model, a ``?run=`` value, an
    error message quoting one) shown through markdown: one line; markdown, HTML, entities, Streamlit's
    ``:color[...]`` / ``:icon:`` and ``$math$`` backslash-escaped, so no link, image or emphasis forms; and a
    zero-width space breaks every bare URL (``://``), ``www.`` and e-mail address (``@``) so that none is
    autolinked. Model text is not a label: show it with :func:`show_text`, ``st.text`` or ``st.code``."""
    one_line = " ".join(str(text).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(_ZWSP, one_line))


def show_text(text: Any, label: str | None = None, height: int | None = None) -> None:
    """Untrusted multi-line text, literally (a code block without syntax colouring, lines wrapped)."""
    if label:
        st.caption(label)
    body = "" if text is None else str(text)
    if not body:
        st.caption("(empty)")
        return
    st.code(body, language="text", wrap_lines=True, height=height if height else "content")


def highlight(text: str, spans: Sequence[tuple[int, int]], color: str = "#ffe066", title: str | None = None) -> str:
    """Escaped ``text`` in a <pre> block with ``spans`` wrapped in <mark>: every character of the
    text goes through html.escape; the only tags are the ones added here."""
    out, pos = [], 0
    for a, b in sorted(spans):
        if a < pos:
            continue
        out.append(html.escape(text[pos:a], quote=True))
        out.append(
            f'<mark style="background:{color};padding:0 2px;border-radius:3px">'
            f"{html.escape(text[a:b], quote=True)}</mark>"
        )
        pos = b
    out.append(html.escape(text[pos:], quote=True))
    head = f'<div style="font-size:0.8rem;opacity:0.7">{html.escape(title)}</div>' if title else ""
    return (
        head + '<pre class="star-hl" style="white-space:pre-wrap;word-break:break-word;'
        "font-size:0.85rem;background:rgba(128,128,128,0.08);padding:0.6rem;border-radius:0.4rem;"
        'max-height:28rem;overflow:auto">' + "".join(out) + "</pre>"
    )


def show_highlighted(text: str | None, spans: Sequence[tuple[int, int]], color: str = "#ffe066") -> None:
    if not text:
        st.caption("(empty)")
        return
    if not spans:
        show_text(text)
        return
    st.html(highlight(text, spans, color))
