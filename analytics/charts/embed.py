"""A figure as JSON that is safe inside `<script type="application/json">`.

The pages run under `script-src 'self'`, so figures are data, drawn by static/dashboard.js. Every
`<`, `>` and `&` is written as a JSON escape, so no value (an event named `</script>...`) can end
the script element early.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from plotly.io.json import to_json_plotly

PLOT_CONFIG = {"responsive": True, "displaylogo": False, "displayModeBar": False}


def figure_json(fig: dict[str, Any]) -> Markup:
    """The figure (data, layout, config) as escaped JSON, ready to put in a script element."""
    return script_json({**fig, "config": PLOT_CONFIG})


def script_json(value: Any) -> Markup:
    """Any JSON-able value (numpy and pandas values too) as JSON safe in a script element."""
    text = to_json_plotly(value)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)
