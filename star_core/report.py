"""``star report``: one self-contained HTML file of a run, for reading without a server or a network.

The file holds the accuracy curves (inline SVG drawn here: each measure with its 95 % Wilson interval),
the filter funnel of every iteration, and a list of the samples that a small inline script filters.
There is no external resource (no CDN, font or image), so it opens offline and can be mailed.

Model output is untrusted: every piece of text from the store goes through ``html.escape`` (the only tags
are the ones written here), and a Content-Security-Policy lets only this file's own script run (by its
hash), so even a mistake in escaping could not run a planted ``<script>`` or ``onerror=``.
Nothing here imports streamlit or torch.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from . import queries
from .stats import describe

#: The measures' line styles on the curves (colour, dash pattern).
_STYLE = {"accuracy": ("#1c7ed6", ""), "faithful_accuracy": ("#2f9e44", "6 4"), "rationale_share": ("#e8590c", "2 4")}
_SAMPLE_COLS = (
    "id, iteration, task, split, phase, grp, question_id, k, question, rationale, raw_output, answer,"
    " gold, correct, decision, kept, reason, audit_json"
)


def e(x: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if x is None else str(x), quote=True)


# --------------------------------------------------------------------------
# reads (read-only, through queries.open_store)
# --------------------------------------------------------------------------
def report_samples(run_dir: str | os.PathLike, limit: int = 5000) -> tuple[pd.DataFrame, int]:
    """The samples of a run for the report: at most ``limit`` (the latest iterations first, then in id order),
    sorted by iteration and id; and how many the run holds."""
    with queries.open_store(run_dir) as con:
        row = con.execute("SELECT id FROM runs ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise queries.RunUnavailable("empty", "The run store holds no run yet.")
        rid = row[0]
        total = int(con.execute("SELECT count(*) FROM samples WHERE run_id=?", (rid,)).fetchone()[0])
        df = pd.read_sql_query(
            f"SELECT {_SAMPLE_COLS} FROM samples WHERE run_id=? ORDER BY iteration DESC, id LIMIT ?",
            con,
            params=(rid, max(int(limit), 0)),
        )
    return df.sort_values(["iteration", "id"], kind="stable").reset_index(drop=True), total


# --------------------------------------------------------------------------
# the accuracy curves: inline SVG
# --------------------------------------------------------------------------
def svg_curves(df: pd.DataFrame, title: str, width: int = 620, height: int = 300) -> str:
    """Lines of ``value`` (0..1) against ``point`` per measure, with 95 % interval bars (``low``, ``high``)
    and a tooltip (<title>) on each point. ``df``: rows of ``measures_frame`` for one task, split and group."""
    ml, mr, mt, mb = 48, 16, 30, 58
    pw, ph = width - ml - mr, height - mt - mb
    pts = sorted(df["point"].unique().tolist()) or [0.0]
    x0, x1 = min(pts), max(pts)
    span = (x1 - x0) or 1.0

    def X(p: float) -> float:
        return ml + (0.5 if x1 == x0 else (p - x0) / span) * pw

    def Y(v: float) -> float:
        return mt + (1 - v) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{e(title)}">',
        f'<text x="{ml}" y="18" class="ct">{e(title)}</text>',
    ]
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(
            f'<line x1="{ml}" x2="{ml + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" class="grid"/>'
            f'<text x="{ml - 6}" y="{Y(v) + 4:.1f}" class="ax" text-anchor="end">{int(v * 100)}%</text>'
        )
    for p in pts:
        lab = "warm" if p == queries.WARM_POINT else f"{p:g}"
        out.append(f'<text x="{X(p):.1f}" y="{mt + ph + 16}" class="ax" text-anchor="middle">{e(lab)}</text>')
    out.append(
        f'<text x="{ml + pw / 2:.1f}" y="{mt + ph + 32}" class="ax" text-anchor="middle">iteration '
        "(0 = few-shot)</text>"
    )
    legend_x = ml
    for m, words in queries.MEASURES.items():
        g = df[df["measure"] == m].sort_values("point")
        if g.empty:
            continue
        color, dash = _STYLE[m]
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{X(p):.1f},{Y(v):.1f}" for i, (p, v) in enumerate(zip(g["point"], g["value"]))
        )
        out.append(
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2.5"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + f' class="line" data-measure="{e(m)}"/>'
        )
        for r in g.itertuples(index=False):
            x, lo, hi = X(r.point), Y(r.low), Y(r.high)
            label = queries.eval_label(int(r.iteration), r.phase)
            tip = f"{words}, {label}: {describe(int(r.k), int(r.n))}, 95 % interval"
            out.append(
                f'<g class="pt"><title>{e(tip)}</title>'
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" stroke="{color}" class="ci"/>'
                f'<line x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{lo:.1f}" y2="{lo:.1f}" stroke="{color}"/>'
                f'<line x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{hi:.1f}" y2="{hi:.1f}" stroke="{color}"/>'
                f'<circle cx="{x:.1f}" cy="{Y(r.value):.1f}" r="4" fill="{color}"/></g>'
            )
        ly = height - 10
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" '
            f'stroke-width="2.5"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
            f'<text x="{legend_x + 27}" y="{ly}" class="ax">{e(words)}</text>'
        )
        legend_x += 40 + 7 * len(words)
    out.append("</svg>")
    return "".join(out)


def _curves_section(run_dir: Path) -> str:
    m = queries.measures_frame(run_dir)
    if m.empty:
        return "<p class='muted'>No evaluation yet.</p>"
    parts = []
    chained = m[m["phase"].isin(queries.CHAINED_PHASES)]
    for (task, split), g in chained[chained["grp"] == "all"].groupby(["task", "split"], sort=True):
        parts.append('<div class="card">' + svg_curves(g, f"{task} · {split} split"))
        rows = m[(m["task"] == task) & (m["split"] == split)]
        parts.append(_measure_table(rows) + "</div>")
    return "".join(parts)


def _measure_table(rows: pd.DataFrame) -> str:
    """Every evaluation of one task and split: each group and measure with n and its 95 % interval."""
    rows = rows.assign(
        ev=[queries.eval_label(int(i), ph) for i, ph in zip(rows["iteration"], rows["phase"])],
        order=[(ph == "direct_eval", p) for ph, p in zip(rows["phase"], rows["point"])],
    )
    evs = list(dict.fromkeys(rows.sort_values("order", kind="stable")["ev"]))
    head = "".join(f"<th>{e(x)}</th>" for x in evs)
    body = []
    grps = sorted(rows["grp"].unique(), key=lambda g: (g != "all", int(g) if str(g).isdigit() else 0, str(g)))
    for grp in grps:
        for m, words in queries.MEASURES.items():
            sub = rows[(rows["grp"] == grp) & (rows["measure"] == m)]
            if sub.empty:
                continue
            cells = {r.ev: describe(int(r.k), int(r.n)) for r in sub.itertuples(index=False)}
            label = "all" if grp == "all" else f"{grp}-digit sums" if str(grp).isdigit() else grp
            body.append(
                f"<tr><td>{e(label)}</td><td>{e(words)}</td>"
                + "".join(f"<td>{e(cells.get(x, '–'))}</td>" for x in evs)
                + "</tr>"
            )
    return (
        f'<table class="num"><thead><tr><th>group</th><th>measure</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


# --------------------------------------------------------------------------
# the funnel of each iteration
# --------------------------------------------------------------------------
_FUNNEL = (
    ("sampled", "sampled (training questions, the previous model)"),
    ("correct", "right at the first attempt, kept"),
    ("retried", "wrong, retried with the answer as a hint"),
    ("rationalized", "rationalized, kept (stored without the hint)"),
    ("kept", "kept for training"),
    ("trained", "trained on (with the warm start's examples, if any)"),
)


def _funnel_section(run_dir: Path) -> str:
    its = queries.iterations_frame(run_dir)
    parts = []
    for it in [int(i) for i in its["iteration"] if int(i) >= 1]:
        f = queries.funnel(run_dir, it)
        top = max(f["sampled"], f["trained"] or 0, 1)
        rows = []
        for key, words in _FUNNEL:
            v = f.get(key)
            if v is None:
                continue
            rows.append(
                f'<tr><td>{e(words)}</td><td class="n">{int(v):,}</td><td class="barc">'
                f'<div class="bar b-{e(key)}" style="width:{100 * int(v) / top:.1f}%"></div></td></tr>'
            )
        dec = ", ".join(f"{e(k)} {int(v)}" for k, v in sorted(f["sample_decisions"].items()))
        rdec = ", ".join(f"{e(k)} {int(v)}" for k, v in sorted(f["retry_decisions"].items()))
        parts.append(
            f'<div class="card"><h3>Iteration {it}</h3><table class="funnel">{"".join(rows)}</table>'
            f'<p class="muted">First attempts: {dec or "none"}. Hinted retries: {rdec or "none"}.</p></div>'
        )
    return "".join(parts) or "<p class='muted'>No STaR iteration yet (iteration 0 is the few-shot baseline).</p>"


# --------------------------------------------------------------------------
# the samples
# --------------------------------------------------------------------------
def _options(name: str, label: str, values: Iterable[Any], fmt=str) -> str:
    opts = "".join(f'<option value="{e(v)}">{e(fmt(v))}</option>' for v in values)
    return f'<label>{e(label)} <select data-f="{e(name)}"><option value="">(all)</option>{opts}</select></label>'


def _sample_html(r: Any, ann: dict[int, dict[str, Any]]) -> str:
    audit = queries.parse_audit(r.audit_json)
    verdict = (audit or {}).get("verdict") or ""
    a = ann.get(int(r.id), {})
    label = a.get("label") or ""
    right = "yes" if r.correct else "no"
    rationale = r.rationale if isinstance(r.rationale, str) else r.raw_output
    audit_lines = []
    if audit:
        audit_lines.append(f"{audit.get('checked') or 0} step(s) checked, verdict: {verdict or 'nothing checkable'}")
        audit_lines += [f"• {x}" for x in audit["errors"]]
        if verdict == "no_rationale" and audit.get("no_rationale"):
            audit_lines.append(f"• {audit['no_rationale']}")
    human = ""
    if a:
        human = (
            f'<div class="k">annotation</div><pre>{e(label or "(no label)")}'
            f"{' · tags: ' + e(', '.join(a.get('tags') or [])) if a.get('tags') else ''}"
            f"{chr(10) + e(a['note']) if a.get('note') else ''}</pre>"
        )
    return (
        f'<details class="s" data-task="{e(r.task)}" data-it="{int(r.iteration)}" data-phase="{e(r.phase)}" '
        f'data-decision="{e(r.decision)}" data-right="{right}" data-verdict="{e(verdict)}" '
        f'data-label="{e(label)}"><summary><span class="id">#{int(r.id)}</span> it {int(r.iteration)} · '
        f'{e(r.task)} · {e(r.phase)} · <span class="d d-{e(r.decision)}">{e(r.decision)}</span> · '
        f'<span class="q">{e(str(r.question)[:160])}</span></summary>'
        f'<div class="body"><div class="k">question id</div><pre>{e(r.question_id)}'
        f"{' · k=' + str(int(r.k)) if r.k else ''}"
        f"{' · ' + e(r.grp) + '-digit' if str(r.grp).isdigit() else ''}</pre>"
        f'<div class="k">question</div><pre>{e(r.question)}</pre>'
        f'<div class="k">rationale</div><pre>{e(rationale)}</pre>'
        f'<div class="k">answer · gold · right</div><pre>{e(r.answer if r.answer is not None else "(none)")} · '
        f"{e(r.gold)} · {right}{' · kept for training' if r.kept else ''}</pre>"
        f'<div class="k">decision</div><pre>{e(r.decision)}: {e(r.reason)}</pre>'
        + (f'<div class="k">rationale audit</div><pre>{e(chr(10).join(audit_lines))}</pre>' if audit_lines else "")
        + human
        + "</div></details>"
    )


def _samples_section(df: pd.DataFrame, total: int, ann: dict[int, dict[str, Any]]) -> str:
    filters = "".join(
        [
            _options("task", "task", sorted(df["task"].unique())),
            _options("it", "iteration", sorted(df["iteration"].unique())),
            _options("phase", "phase", [p for p in queries.PHASES if p in set(df["phase"])]),
            _options("decision", "decision", sorted(df["decision"].unique())),
            _options("right", "answer", ["yes", "no"], lambda v: "right" if v == "yes" else "wrong"),
            _options("verdict", "audit", list(queries.VERDICTS)),
            (
                _options("label", "annotation", sorted({a["label"] for a in ann.values() if a.get("label")}))
                if ann
                else ""
            ),
        ]
    )
    left_out = (
        f" The run holds {total:,} samples; this file lists {len(df):,} (the latest iterations); "
        "`star report --max-samples` sets how many."
        if total > len(df)
        else ""
    )
    return (
        f'<div class="filters">{filters}<label>search <input type="search" id="q" '
        f'placeholder="question, rationale, id"></label> <span id="count">{len(df):,} shown</span></div>'
        f'<p class="muted">Click a sample to open it.{e(left_out)}</p>'
        f'<div id="samples">{"".join(_sample_html(r, ann) for r in df.itertuples(index=False))}</div>'
    )


_SCRIPT = """
(function () {
  var sel = Array.prototype.slice.call(document.querySelectorAll('select[data-f]'));
  var q = document.getElementById('q');
  var items = Array.prototype.slice.call(document.querySelectorAll('#samples details.s'));
  var count = document.getElementById('count');
  function apply() {
    var want = sel.map(function (s) { return [s.getAttribute('data-f'), s.value]; });
    var text = q.value.trim().toLowerCase();
    var n = 0;
    items.forEach(function (el) {
      var ok = want.every(function (w) { return !w[1] || el.getAttribute('data-' + w[0]) === w[1]; });
      if (ok && text) { ok = el.textContent.toLowerCase().indexOf(text) >= 0; }
      el.hidden = !ok;
      if (ok) { n += 1; }
    });
    count.textContent = n.toLocaleString('en') + ' shown';
  }
  sel.forEach(function (s) { s.addEventListener('change', apply); });
  q.addEventListener('input', apply);
  apply();
})();
"""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;
color:#212529}
h1{font-size:1.6rem;margin:.2rem 0}h2{margin-top:2rem;border-bottom:1px solid #dee2e6}h3{margin:.2rem 0 .5rem}
.muted{color:#6c757d}.card{border:1px solid #dee2e6;border-radius:8px;padding:.8rem;margin:.8rem 0;overflow-x:auto}
.chart .ct{font-size:14px;font-weight:600}.chart .ax{font-size:11px;fill:#495057}.chart .grid{stroke:#e9ecef}
.chart .ci{stroke-width:1.5}
table{border-collapse:collapse;margin:.5rem 0}td,th{border-bottom:1px solid #e9ecef;padding:3px 8px;text-align:left;
vertical-align:top}table.num td{font-variant-numeric:tabular-nums;white-space:nowrap}
.funnel td.n{text-align:right;font-variant-numeric:tabular-nums}.barc{width:360px}
.bar{height:12px;background:#74c0fc;border-radius:3px}.b-correct,.b-rationalized,.b-kept{background:#69db7c}
.b-trained{background:#9775fa}
.filters{position:sticky;top:0;background:#fff;padding:.5rem 0;border-bottom:1px solid #dee2e6;display:flex;
flex-wrap:wrap;gap:.6rem;align-items:center;z-index:1}
details.s{border-bottom:1px solid #f1f3f5;padding:.25rem 0}details.s summary{cursor:pointer}
details.s .id{color:#868e96;font-variant-numeric:tabular-nums}.q{color:#343a40}
.d{padding:0 4px;border-radius:3px;background:#f1f3f5}.d-correct,.d-rationalized,.d-reference{background:#d3f9d8}
.d-wrong,.d-unfaithful,.d-hint_leak{background:#ffe3e3}
.body{padding:.4rem 1rem}.k{font-size:12px;color:#868e96;margin-top:.4rem}
pre{white-space:pre-wrap;word-break:break-word;background:#f8f9fa;padding:.4rem .6rem;border-radius:4px;margin:.1rem 0}
"""


def render_report(run_dir: str | os.PathLike, max_samples: int = 5000) -> tuple[str, dict[str, Any]]:
    """The report's HTML, and {samples: listed, total: in the run}."""
    from .annotations import AnnotationError, Annotations

    run_dir = Path(run_dir)
    info = queries.run_info(run_dir)
    samples, total = report_samples(run_dir, max_samples)
    try:
        af = Annotations(run_dir).frame()
        ann = {
            int(r.sample_id): {
                "label": r.label if isinstance(r.label, str) else None,
                "tags": list(r.tags),
                "note": r.note if isinstance(r.note, str) else None,
            }
            for r in af.itertuples(index=False)
        }
        ann_note = ""
    except AnnotationError as ex:
        ann, ann_note = {}, f"<p class='muted'>Annotations left out: {e(ex)}</p>"
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode()
    csp = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'; "
        "base-uri 'none'; form-action 'none'"
    )
    warm = ""
    if (samples["phase"] == "warm_start").any() or (queries.measures_frame(run_dir)["phase"] == "warm_eval").any():
        warm = f"<p class='muted'>warm: the model after the warm start ({e(queries.WARM_NOTE)}).</p>"
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(info["name"])} · star report</title><style>{_CSS}</style></head><body>
<h1>{e(info["name"])}</h1>
<p class="muted">{e(info["task"])} · model {e(info["model"])} · {e(info["status"])} ·
report written {e(time.strftime("%Y-%m-%d %H:%M"))} by star report, from the run store (read only)</p>
<h2>Accuracy</h2>
<p class="muted">Each point with its 95 % Wilson interval (the bars); hover a point for n. Right and faithful: the
right answer with the audit verdict "faithful". Shows a rationale: the audit's verdict is not "no rationale".</p>
{warm}{_curves_section(run_dir)}
<h2>Filter funnel</h2>{_funnel_section(run_dir)}
<h2>Samples</h2>{ann_note}{_samples_section(samples, total, ann)}
<script>{_SCRIPT}</script>
</body></html>
"""
    return doc, {"samples": len(samples), "total": total}


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike, max_samples: int = 5000) -> dict[str, Any]:
    """Write the report (via a temporary file, renamed when complete); returns {samples, total, bytes, path}."""
    doc, info = render_report(run_dir, max_samples)
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    info.update(bytes=out.stat().st_size, path=str(out))
    return info


__all__ = ["render_report", "report_samples", "svg_curves", "write_report"]
