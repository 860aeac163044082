"""Charts: DataFrame -> Plotly figure (`figures`), and figure -> page-safe JSON (`embed`)."""

from __future__ import annotations

from .embed import figure_json, script_json
from .figures import (
    bar_chart,
    ctr_curve,
    funnel_chart,
    position_heatmap,
    stacked_over_time,
    time_series,
)

__all__ = [
    "bar_chart",
    "ctr_curve",
    "figure_json",
    "funnel_chart",
    "position_heatmap",
    "script_json",
    "stacked_over_time",
    "time_series",
]
