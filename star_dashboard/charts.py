"""The accuracy page's chart helpers (plotly dicts, no Streamlit): error bars from the 95 % Wilson interval, the
x axis (the warm start's evaluation sits at ``queries.WARM_POINT``, between iterations 0 and 1), the hover text and
markers, and a sentence on how wide an interval is for a run's question counts (so a small change is not
over-read)."""

from __future__ import annotations

from star_core import queries, stats


def error_bars(g) -> dict:
    """The 95 % Wilson interval of each point, as plotly error bars around ``pct``."""
    return dict(
        type="data",
        symmetric=False,
        array=(100 * g["high"] - g["pct"]).tolist(),
        arrayminus=(g["pct"] - 100 * g["low"]).tolist(),
        thickness=1.2,
        width=4,
    )


HOVER = (
    "%{customdata[4]}: %{y:.1f}% (%{customdata[0]}/%{customdata[1]}), "
    "95% interval %{customdata[2]:.1f}–%{customdata[3]:.1f}%"
)
CUSTOM = ["k", "n", "low_pct", "high_pct", "where"]


def tick(point: float) -> str:
    return "warm start" if point == queries.WARM_POINT else str(int(point))


def x_axis(points, title: str = "iteration (0 = few-shot)") -> dict:
    """Integer iterations, and the warm start's point between 0 and 1 when there is one."""
    pts = sorted(set(points))
    if queries.WARM_POINT in pts:
        return dict(title=title + "; warm start = supervised", tickvals=pts, ticktext=[tick(x) for x in pts])
    return dict(title=title, dtick=1)


def in_percent(df):
    """Percentages for the plots, and where each evaluation sits in words (for the hover text)."""
    return df.assign(
        pct=100 * df["value"],
        low_pct=100 * df["low"],
        high_pct=100 * df["high"],
        where=[queries.eval_label(i, ph) for i, ph in zip(df["iteration"], df["phase"])],
    )


def markers(g) -> dict:
    warm = (g["phase"] == "warm_eval").tolist()
    return dict(symbol=["diamond" if w else "circle" for w in warm], size=[12 if w else 7 for w in warm])


def interval_words(pairs) -> str:
    """How wide a 95 % interval is on this run's own number of evaluation questions (at 50 %, the widest)."""
    ns = sorted({int(n) for n in pairs if int(n) > 0})
    if not ns:
        return ""
    half = [100 * (stats.wilson(n // 2, n)[1] - stats.wilson(n // 2, n)[0]) / 2 for n in (ns[0], ns[-1])]
    if ns[0] == ns[-1]:
        return (
            f"On these {ns[0]} evaluation questions a 95 % interval is about ±{half[0]:.0f} points, so a change "
            "of a few questions is rarely significant."
        )
    return (
        f"On {ns[0]} to {ns[-1]} evaluation questions a 95 % interval is about ±{half[0]:.0f} to "
        f"±{half[1]:.0f} points, so a change of a few questions is rarely significant."
    )
