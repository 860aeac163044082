"""What every dashboard view needs: the request's filters, the visible sites, the layout.

Usage in a view behind `@dashboard_access` or `@login_required`:

    filters = current_filters()
    return render_page("overview.html", filters, table=...)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Flask, abort, g, make_response, render_template, request
from flask_login import current_user

from ..auth import visible_sites
from ..filters import PRESETS, Filters, parse_filters


def current_filters() -> Filters:
    """The filters of this request; with no site yet, answer an empty state that says what to do."""
    if "filters" in g:
        return g.filters
    sites = visible_sites()
    if not sites:
        if request.path.endswith(".csv"):
            abort(404, "There is no site yet, so nothing to download.")
        abort(make_response(render_template("no_sites.html", filters=None, sites=[])))
    filters = parse_filters(request.args, sites)
    if current_user.is_authenticated and filters.share:
        # Logged-in users' links must not spread a share token around.
        filters = dataclasses.replace(filters, share=None)
    g.filters = filters
    return filters


def render_page(template: str, filters: Filters, **context: Any) -> str:
    """Render a page inside layout.html with the variables the layout needs."""
    return render_template(template, filters=filters, sites=visible_sites(), **context)


def init_app(app: Flask) -> None:
    """Template globals the layout uses."""
    app.jinja_env.globals["PRESETS"] = PRESETS
