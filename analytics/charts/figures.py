"""DataFrame -> Plotly figure. No database, no request: each function draws what it is given.

A figure is the plain JSON dict that plotly.js reads (`{"data": [...], "layout": {...}}`), not a
`plotly.graph_objects.Figure`, which validates every property as it is set: with those, a 1 M-event
Overview spent 175 ms of Python CPU per request, with these 111. tests/test_charts.py validates
every figure through `go.Figure` instead, once, where a misspelt property fails.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

Figure = dict[str, Any]

COLOURS = [
    "#2f6fed",
    "#12a594",
    "#e5484d",
    "#f5a524",
    "#8e4ec6",
    "#0091ff",
    "#ad7f58",
    "#e93d82",
    "#7a869a",
]
FONT = "system-ui, -apple-system, Segoe UI, sans-serif"
_GRID = {"gridcolor": "#eef0f4", "linecolor": "#d0d5dd", "automargin": True}
_NO_GRID = "rgba(0,0,0,0)"


def _figure(
    data: list[dict[str, Any]],
    title: str,
    height: int = 320,
    xaxis: dict[str, Any] | None = None,
    yaxis: dict[str, Any] | None = None,
    **extra: Any,
) -> Figure:
    """A light, compact layout without Plotly's bulky default template."""
    layout = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 40 if title else 12, "b": 40},
        "font": {"family": FONT, "size": 12, "color": "#1d2330"},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "colorway": COLOURS,
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
        "hovermode": "closest",
        **extra,
        "xaxis": {**_GRID, **(xaxis or {})},
        "yaxis": {**_GRID, "rangemode": "tozero", **(yaxis or {})},
    }
    return {"data": data, "layout": layout}


def _times(series: pd.Series) -> list[str]:
    return [t.isoformat() for t in pd.to_datetime(series)]


def _ints(values: Any) -> list[Any]:
    """Plain Python numbers for JSON (a frame's int64 values are numpy scalars)."""
    return [v.item() if hasattr(v, "item") else v for v in values]


def time_series(df: pd.DataFrame, columns: dict[str, str], title: str) -> Figure:
    """One line per column of a `bucket` frame; `columns` maps column -> legend label."""
    x = _times(df["bucket"])
    data = [
        {
            "type": "scatter",
            "x": x,
            "y": _ints(df[column].tolist()),
            "name": label,
            "mode": "lines+markers" if len(df) <= 60 else "lines",
            "hovertemplate": f"%{{x}}<br>{label}: %{{y:,}}<extra></extra>",
        }
        for column, label in columns.items()
    ]
    return _figure(data, title, hovermode="x unified")


def stacked_over_time(df: pd.DataFrame, key: str, value: str, title: str) -> Figure:
    """Stacked bars per bucket, one colour per value of `key` (e.g. event name)."""
    totals = df.groupby(key, sort=False)[value].sum().sort_values(ascending=False, kind="stable")
    data = []
    for label in totals.index:
        part = df[df[key] == label]
        data.append(
            {
                "type": "bar",
                "x": _times(part["bucket"]),
                "y": _ints(part[value].tolist()),
                "name": str(label),
                "hovertemplate": "%{x}<br>%{fullData.name}: %{y:,}<extra></extra>",
            }
        )
    return _figure(data, title, height=360, barmode="stack", hovermode="x unified")


def bar_chart(df: pd.DataFrame, label: str, value: str, title: str) -> Figure:
    """Horizontal bars, largest on top (the frame is already sorted largest first)."""
    bar = {
        "type": "bar",
        "x": _ints(df[value].tolist()[::-1]),
        "y": [str(v) for v in df[label]][::-1],
        "orientation": "h",
        "marker": {"color": COLOURS[0]},
        "hovertemplate": "%{y}: %{x:,}<extra></extra>",
    }
    height = max(200, 60 + 26 * len(df))
    return _figure([bar], title, height=height, yaxis={"type": "category", "gridcolor": _NO_GRID})


def position_heatmap(df: pd.DataFrame, title: str) -> Figure:
    """x = position, y = list size, colour = detail-view rate; hover gives shows and details."""
    positions = sorted(int(p) for p in df["position"].unique())
    sizes = sorted(int(s) for s in df["list_size"].unique())
    cells = {(int(r.position), int(r.list_size)): r for r in df.itertuples(index=False)}
    z, custom = [], []
    for size in sizes:
        z_row, c_row = [], []
        for position in positions:
            cell = cells.get((position, size))
            rate = None if cell is None or pd.isna(cell.rate) else float(cell.rate)
            z_row.append(rate)
            c_row.append([int(cell.shows), int(cell.details)] if cell is not None else [0, 0])
        z.append(z_row)
        custom.append(c_row)
    heat = {
        "type": "heatmap",
        "x": positions,
        "y": sizes,
        "z": z,
        "customdata": custom,
        "zmin": 0,
        "colorscale": "Blues",
        "colorbar": {"title": {"text": "details / shows"}, "tickformat": ".0%"},
        "texttemplate": "%{z:.0%}",
        "hovertemplate": (
            "position %{x} of a list of %{y}<br>detail rate %{z:.1%}"
            "<br>%{customdata[0]:,} shows, %{customdata[1]:,} details<extra></extra>"
        ),
        "xgap": 2,
        "ygap": 2,
    }
    return _figure(
        [heat],
        title,
        height=max(260, 90 + 34 * len(sizes)),
        xaxis={"title": {"text": "position in the list"}, "dtick": 1, "gridcolor": _NO_GRID},
        yaxis={
            "title": {"text": "list size"},
            "dtick": 1,
            "rangemode": "normal",
            "gridcolor": _NO_GRID,
        },
    )


def ctr_curve(df: pd.DataFrame, title: str) -> Figure:
    """Click-through rate by position, with the number of shows behind each point on hover."""
    line = {
        "type": "scatter",
        "x": _ints(df["position"].tolist()),
        "y": _ints(df["ctr_pct"].tolist()),
        "customdata": [_ints(row) for row in df[["shows", "details"]].values.tolist()],
        "mode": "lines+markers",
        "line": {"color": COLOURS[1]},
        "hovertemplate": (
            "position %{x}: %{y:.1f}%<br>%{customdata[1]:,} details of "
            "%{customdata[0]:,} shows<extra></extra>"
        ),
    }
    return _figure(
        [line],
        title,
        xaxis={"title": {"text": "position in the list"}, "dtick": 1},
        yaxis={"title": {"text": "details / shows (%)"}, "ticksuffix": "%"},
    )


def funnel_chart(df: pd.DataFrame, title: str) -> Figure:
    """A funnel's steps top to bottom, each bar its visits, labelled with the share of step 1."""
    # Plotly reads a subset of HTML in labels; a step named `<b>` is shown as typed.
    labels = [
        html.escape(f"{int(step)}. {label}", quote=False)
        for step, label in zip(df["step"], df["label"], strict=True)
    ]
    funnel = {
        "type": "funnel",
        "y": labels,
        "x": [int(v) for v in df["visits"]],
        "textinfo": "value+percent initial",
        "marker": {"color": COLOURS[0]},
        "connector": {"line": {"color": "#d0d5dd"}},
        "hovertemplate": "%{y}: %{x:,} visits<br>%{percentInitial:.1%} of step 1"
        "<br>%{percentPrevious:.1%} of the previous step<extra></extra>",
    }
    return _figure(
        [funnel],
        title,
        height=max(240, 70 + 56 * len(df)),
        yaxis={"type": "category", "gridcolor": _NO_GRID},
    )
