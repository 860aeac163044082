"""Plotly's JavaScript, served from the installed plotly package: no CDN, cached for a year.

The URL carries the package version, so an upgrade changes the URL and no browser keeps an old
copy past it.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from flask import Blueprint, Response, send_file

bp = Blueprint("assets", __name__)

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_VERSION = plotly.__version__
ONE_YEAR = 365 * 24 * 3600


@bp.get("/assets/plotly.min.js")
def plotly_js() -> Response:
    response = send_file(
        PLOTLY_JS, mimetype="text/javascript", max_age=ONE_YEAR, conditional=True, etag=True
    )
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response
