"""The live view (`/live`) and the JSON it refreshes itself from every 10 s (`/live.json`)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app

from .. import charts, stats
from ..auth import dashboard_access
from ..filters import Filters
from ..models import utcnow
from .assets import PLOTLY_VERSION
from .common import current_filters, render_page

bp = Blueprint("live", __name__)

SERIES = {"pageviews": "Page views", "visitors": "Visitors"}


def _state(filters: Filters) -> dict[str, Any]:
    now = utcnow()
    return {
        "numbers": stats.live_numbers(filters, now),
        "pages": stats.live_pages(filters, now),
        "figure": charts.figure_json(
            charts.time_series(stats.live_minutes(filters, now), SERIES, "")
        ),
        "at": now.strftime("%H:%M:%S"),
    }


@bp.get("/live")
@dashboard_access
def live() -> str:
    filters = current_filters()
    every_ms = int(1000 * float(current_app.config["LIVE_REFRESH_SECONDS"]))
    state = _state(filters)
    return render_page(
        "dashboard/live.html", filters, PLOTLY_VERSION=PLOTLY_VERSION, every_ms=every_ms, **state
    )


@bp.get("/live.json")
@dashboard_access
def live_json() -> Response:
    """What the page shows, for static/live.js; never cached (it is now)."""
    state = _state(current_filters())
    pages = state["pages"].to_dict("records")
    body = (
        f'{{"numbers": {json.dumps(state["numbers"])}, "pages": {json.dumps(pages)}, '
        f'"at": {json.dumps(state["at"])}, "figure": {state["figure"]}}}'
    )
    response = Response(body, mimetype="application/json")
    response.cache_control.no_store = True
    return response
