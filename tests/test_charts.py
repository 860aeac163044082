"""Charts draw exactly the frame they are given, and their JSON is safe inside a page."""

from __future__ import annotations

import json

import pandas as pd

from analytics import charts


def test_time_series_has_one_trace_per_column():
    df = pd.DataFrame(
        {
            "bucket": pd.date_range("2026-03-02", periods=3, freq="D"),
            "pageviews": [2, 0, 5],
            "visitors": [1, 0, 3],
        }
    )
    fig = charts.time_series(df, {"pageviews": "Page views", "visitors": "Visitors"}, "Traffic")
    assert [t.name for t in fig.data] == ["Page views", "Visitors"]
    assert list(fig.data[0].y) == [2, 0, 5] and list(fig.data[1].y) == [1, 0, 3]
    assert list(fig.data[0].x)[0] == "2026-03-02T00:00:00"


def test_stacked_over_time_puts_the_biggest_series_first():
    df = pd.DataFrame(
        {
            "bucket": pd.to_datetime(["2026-03-02", "2026-03-02", "2026-03-03", "2026-03-03"]),
            "name": ["click", "pageview", "click", "pageview"],
            "events": [1, 4, 0, 6],
        }
    )
    fig = charts.stacked_over_time(df, "name", "events", "Events")
    assert [t.name for t in fig.data] == ["pageview", "click"]
    assert list(fig.data[0].y) == [4, 6]
    assert fig.layout.barmode == "stack"


def test_bar_chart_lists_the_largest_on_top():
    df = pd.DataFrame({"path": ["/a", "/b", "/c"], "pageviews": [9, 5, 1]})
    fig = charts.bar_chart(df, "path", "pageviews", "Top pages")
    bar = fig.data[0]
    # Plotly draws horizontal categories bottom-up, so the first row is given last.
    assert list(bar.y) == ["/c", "/b", "/a"] and list(bar.x) == [1, 5, 9]


def test_heatmap_cells_carry_rate_and_counts():
    df = pd.DataFrame(
        {
            "position": [1, 2, 1],
            "list_size": [10, 10, 5],
            "shows": [4, 6, 1],
            "details": [2, 2, 0],
            "rate": [0.5, 2 / 6, 0.0],
        }
    )
    fig = charts.position_heatmap(df, "Detail rate")
    heat = fig.data[0]
    assert list(heat.x) == [1, 2] and list(heat.y) == [5, 10]
    row10 = list(heat.y).index(10)
    col2 = list(heat.x).index(2)
    assert heat.z[row10][col2] == 2 / 6
    assert list(heat.customdata[row10][col2]) == [6, 2]
    assert heat.z[list(heat.y).index(5)][col2] is None  # no shows at (2, 5): no colour
    assert "shows" in heat.hovertemplate and "details" in heat.hovertemplate


def test_ctr_curve():
    df = pd.DataFrame(
        {"position": [1, 2], "shows": [4, 6], "details": [2, 2], "ctr_pct": [50.0, 33.3]}
    )
    fig = charts.ctr_curve(df, "CTR")
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [50.0, 33.3]
    assert [list(c) for c in fig.data[0].customdata] == [[4, 2], [6, 2]]


def test_figure_json_cannot_close_its_script_element():
    name = "</script><script>alert(1)</script>&"
    df = pd.DataFrame({"name": [name], "events": [3]})
    text = str(charts.figure_json(charts.bar_chart(df, "name", "events", name)))
    assert "<" not in text and ">" not in text and "&" not in text
    figure = json.loads(text)  # the escapes are plain JSON: the browser gets the name back
    assert figure["data"][0]["y"] == [name]
    assert figure["layout"]["title"]["text"] == name
    assert figure["config"]["displaylogo"] is False
