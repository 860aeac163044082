"""Charts draw exactly the frame they are given, and their JSON is safe inside a page."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import pytest

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
    assert [t["name"] for t in fig["data"]] == ["Page views", "Visitors"]
    assert fig["data"][0]["y"] == [2, 0, 5] and fig["data"][1]["y"] == [1, 0, 3]
    assert fig["data"][0]["x"][0] == "2026-03-02T00:00:00"


def test_stacked_over_time_puts_the_biggest_series_first():
    df = pd.DataFrame(
        {
            "bucket": pd.to_datetime(["2026-03-02", "2026-03-02", "2026-03-03", "2026-03-03"]),
            "name": ["click", "pageview", "click", "pageview"],
            "events": [1, 4, 0, 6],
        }
    )
    fig = charts.stacked_over_time(df, "name", "events", "Events")
    assert [t["name"] for t in fig["data"]] == ["pageview", "click"]
    assert fig["data"][0]["y"] == [4, 6]
    assert fig["layout"]["barmode"] == "stack"


def test_bar_chart_lists_the_largest_on_top():
    df = pd.DataFrame({"path": ["/a", "/b", "/c"], "pageviews": [9, 5, 1]})
    fig = charts.bar_chart(df, "path", "pageviews", "Top pages")
    bar = fig["data"][0]
    # Plotly draws horizontal categories bottom-up, so the first row is given last.
    assert bar["y"] == ["/c", "/b", "/a"] and bar["x"] == [1, 5, 9]


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
    heat = fig["data"][0]
    assert heat["x"] == [1, 2] and heat["y"] == [5, 10]
    row10 = heat["y"].index(10)
    col2 = heat["x"].index(2)
    assert heat["z"][row10][col2] == 2 / 6
    assert heat["customdata"][row10][col2] == [6, 2]
    assert heat["z"][heat["y"].index(5)][col2] is None  # no shows at (2, 5): no colour
    assert "shows" in heat["hovertemplate"] and "details" in heat["hovertemplate"]


def test_ctr_curve():
    df = pd.DataFrame(
        {"position": [1, 2], "shows": [4, 6], "details": [2, 2], "ctr_pct": [50.0, 33.3]}
    )
    fig = charts.ctr_curve(df, "CTR")
    assert fig["data"][0]["x"] == [1, 2] and fig["data"][0]["y"] == [50.0, 33.3]
    assert fig["data"][0]["customdata"] == [[4, 2], [6, 2]]


def test_figure_json_cannot_close_its_script_element():
    name = "</script><script>alert(1)</script>&"
    df = pd.DataFrame({"name": [name], "events": [3]})
    text = str(charts.figure_json(charts.bar_chart(df, "name", "events", name)))
    assert "<" not in text and ">" not in text and "&" not in text
    figure = json.loads(text)  # the escapes are plain JSON: the browser gets the name back
    assert figure["data"][0]["y"] == [name]
    assert figure["layout"]["title"]["text"] == name
    assert figure["config"]["displaylogo"] is False


def _examples() -> dict[str, dict]:
    days = pd.date_range("2026-03-02", periods=2, freq="D")
    heat = pd.DataFrame(
        {"position": [1, 2], "list_size": [5, 5], "shows": [4, 6], "details": [2, 2],
         "rate": [0.5, 1 / 3]}
    )  # fmt: skip
    return {
        "time_series": charts.time_series(
            pd.DataFrame({"bucket": days, "visits": [1, 2]}), {"visits": "Visits"}, "T"
        ),
        "stacked_over_time": charts.stacked_over_time(
            pd.DataFrame({"bucket": days, "name": ["a", "b"], "events": [1, 2]}),
            "name",
            "events",
            "S",
        ),  # fmt: skip
        "bar_chart": charts.bar_chart(pd.DataFrame({"k": ["x"], "n": [3]}), "k", "n", ""),
        "position_heatmap": charts.position_heatmap(heat, ""),
        "ctr_curve": charts.ctr_curve(heat.assign(ctr_pct=[50.0, 33.3]), ""),
        "funnel_chart": charts.funnel_chart(
            pd.DataFrame({"step": [1, 2], "label": ["a", "b"], "visits": [9, 4]}), ""
        ),
    }


@pytest.mark.parametrize("name", sorted(_examples()))
def test_every_figure_is_valid_plotly(name):
    """Figures are plain dicts (fast to build per request); Plotly's own validators check here
    that every property name and value is one plotly.js knows."""
    fig = _examples()[name]
    go.Figure(fig)  # raises ValueError on an unknown property or a bad value
    json.loads(str(charts.figure_json(fig)))
