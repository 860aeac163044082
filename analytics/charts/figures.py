"""DataFrame -> Plotly figure. No database, no request: each function draws what it is given."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

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


def _layout(fig: go.Figure, title: str, height: int = 320, **extra) -> go.Figure:
    """A light, compact layout without Plotly's bulky default template."""
    fig.update_layout(
        template="none",
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=height,
        margin={"l": 56, "r": 16, "t": 40 if title else 12, "b": 40},
        font={"family": FONT, "size": 12, "color": "#1d2330"},
        paper_bgcolor="#fff",
        plot_bgcolor="#fff",
        colorway=COLOURS,
        legend={"orientation": "h", "y": -0.18, "x": 0},
        **{"hovermode": "closest", **extra},
    )
    fig.update_xaxes(gridcolor="#eef0f4", linecolor="#d0d5dd", automargin=True)
    fig.update_yaxes(gridcolor="#eef0f4", linecolor="#d0d5dd", automargin=True, rangemode="tozero")
    return fig


def _times(series: pd.Series) -> list[str]:
    return [t.isoformat() for t in pd.to_datetime(series)]


def time_series(df: pd.DataFrame, columns: dict[str, str], title: str) -> go.Figure:
    """One line per column of a `bucket` frame; `columns` maps column -> legend label."""
    fig = go.Figure()
    x = _times(df["bucket"])
    for column, label in columns.items():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=df[column].tolist(),
                name=label,
                mode="lines+markers" if len(df) <= 60 else "lines",
                hovertemplate=f"%{{x}}<br>{label}: %{{y:,}}<extra></extra>",
            )
        )
    return _layout(fig, title, hovermode="x unified")


def stacked_over_time(df: pd.DataFrame, key: str, value: str, title: str) -> go.Figure:
    """Stacked bars per bucket, one colour per value of `key` (e.g. event name)."""
    fig = go.Figure()
    totals = df.groupby(key, sort=False)[value].sum().sort_values(ascending=False, kind="stable")
    for label in totals.index:
        part = df[df[key] == label]
        fig.add_trace(
            go.Bar(
                x=_times(part["bucket"]),
                y=part[value].tolist(),
                name=str(label),
                hovertemplate="%{x}<br>%{fullData.name}: %{y:,}<extra></extra>",
            )
        )
    return _layout(fig, title, height=360, barmode="stack", hovermode="x unified")


def bar_chart(df: pd.DataFrame, label: str, value: str, title: str) -> go.Figure:
    """Horizontal bars, largest on top (the frame is already sorted largest first)."""
    labels = [str(v) for v in df[label]][::-1]
    fig = go.Figure(
        go.Bar(
            x=df[value].tolist()[::-1],
            y=labels,
            orientation="h",
            marker={"color": COLOURS[0]},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    height = max(200, 60 + 26 * len(df))
    fig = _layout(fig, title, height=height)
    fig.update_yaxes(type="category", gridcolor="rgba(0,0,0,0)")
    return fig


def position_heatmap(df: pd.DataFrame, title: str) -> go.Figure:
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
    fig = go.Figure(
        go.Heatmap(
            x=positions,
            y=sizes,
            z=z,
            customdata=custom,
            zmin=0,
            colorscale="Blues",
            colorbar={"title": {"text": "details / shows"}, "tickformat": ".0%"},
            texttemplate="%{z:.0%}",
            hovertemplate=(
                "position %{x} of a list of %{y}<br>detail rate %{z:.1%}"
                "<br>%{customdata[0]:,} shows, %{customdata[1]:,} details<extra></extra>"
            ),
            xgap=2,
            ygap=2,
        )
    )
    fig = _layout(fig, title, height=max(260, 90 + 34 * len(sizes)))
    fig.update_xaxes(title={"text": "position in the list"}, dtick=1, gridcolor="rgba(0,0,0,0)")
    fig.update_yaxes(
        title={"text": "list size"}, dtick=1, rangemode="normal", gridcolor="rgba(0,0,0,0)"
    )
    return fig


def ctr_curve(df: pd.DataFrame, title: str) -> go.Figure:
    """Click-through rate by position, with the number of shows behind each point on hover."""
    fig = go.Figure(
        go.Scatter(
            x=df["position"].tolist(),
            y=df["ctr_pct"].tolist(),
            customdata=df[["shows", "details"]].values.tolist(),
            mode="lines+markers",
            line={"color": COLOURS[1]},
            hovertemplate=(
                "position %{x}: %{y:.1f}%<br>%{customdata[1]:,} details of "
                "%{customdata[0]:,} shows<extra></extra>"
            ),
        )
    )
    fig = _layout(fig, title)
    fig.update_xaxes(title={"text": "position in the list"}, dtick=1)
    fig.update_yaxes(title={"text": "details / shows (%)"}, ticksuffix="%")
    return fig


def funnel_chart(df: pd.DataFrame, title: str) -> go.Figure:
    """A funnel's steps top to bottom, each bar its visits, labelled with the share of step 1."""
    # Plotly reads a subset of HTML in labels; a step named `<b>` is shown as typed.
    labels = [
        html.escape(f"{int(step)}. {label}", quote=False)
        for step, label in zip(df["step"], df["label"], strict=True)
    ]
    fig = go.Figure(
        go.Funnel(
            y=labels,
            x=[int(v) for v in df["visits"]],
            textinfo="value+percent initial",
            marker={"color": COLOURS[0]},
            connector={"line": {"color": "#d0d5dd"}},
            hovertemplate="%{y}: %{x:,} visits<br>%{percentInitial:.1%} of step 1"
            "<br>%{percentPrevious:.1%} of the previous step<extra></extra>",
        )
    )
    fig = _layout(fig, title, height=max(240, 70 + 56 * len(df)))
    fig.update_yaxes(type="category", gridcolor="rgba(0,0,0,0)")
    return fig
