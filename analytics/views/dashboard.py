"""The analytic pages (overview, actions, one event, benefits, funnels) and the CSV behind each
chart.

Every chart and table is a named entry of TABLES; a page and its `/csv/<name>.csv` link call the
same entry with the same filters, so a download holds exactly the numbers on screen (the page may
show only the first TOP rows of a long ranking; the CSV then holds every row).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from .. import charts, stats
from ..auth import dashboard_access
from ..export import csv_response
from ..extensions import db
from ..filters import Filters, first_event_time
from ..goals import funnels_of, goals_of, resolve_steps, step_text
from ..models import Funnel
from ..sites import script_tag
from .assets import PLOTLY_VERSION
from .common import current_filters, render_page

bp = Blueprint("dashboard", __name__)

TOP = 10  # rows of a ranking shown on a page
MAX_CHOICE = 200  # longest item id / event name a URL may choose


@dataclass(frozen=True)
class Choice:
    """What a page chooses beyond the filters: one event name, one item, the table's order,
    one funnel (by id)."""

    event: str | None = None
    item: str | None = None
    sort: str = "shows"
    descending: bool = True
    funnel: int | None = None

    def args(self) -> dict[str, str | None]:
        """Query arguments that carry this choice to a CSV link."""
        return {
            "event": self.event,
            "item": self.item,
            "sort": None if self.sort == "shows" else self.sort,
            "dir": None if self.descending else "asc",
            "funnel": None if self.funnel is None else str(self.funnel),
        }


def _choice(event: str | None = None, funnel: int | None = None) -> Choice:
    args = request.args
    text = {k: (args.get(k) or "").strip()[:MAX_CHOICE] or None for k in ("event", "item", "sort")}
    wanted = (args.get("funnel") or "").strip()
    return Choice(
        event=event or text["event"],
        item=text["item"],
        sort=text["sort"] or "shows",
        descending=args.get("dir") != "asc",
        funnel=funnel if funnel is not None else (int(wanted) if wanted.isdigit() else None),
    )


def _funnel(filters: Filters, funnel_id: int | None) -> Funnel:
    """The site's funnel with this id; 404 for another site's or none."""
    found = None
    if funnel_id is not None and funnel_id < 2**31:  # a hand-typed id beyond an INTEGER
        found = db.session.get(Funnel, funnel_id)
    if found is None or found.site_id != filters.site.id:
        abort(404, "No such funnel on this site.")
    return found


def _funnel_table(filters: Filters, choice: Choice) -> pd.DataFrame:
    found = _funnel(filters, choice.funnel)
    return stats.funnel(filters, resolve_steps(found.steps, filters.site.id))


Table = Callable[[Filters, Choice], pd.DataFrame]

TABLES: dict[str, Table] = {
    # Overview
    "summary": lambda f, c: stats.overview_summary(f),
    "timeseries": lambda f, c: stats.pageviews_over_time(f),
    "pages": lambda f, c: stats.top_pages(f),
    "entry_pages": lambda f, c: stats.entry_pages(f),
    "referrers": lambda f, c: stats.referrers(f),
    "utm_campaigns": lambda f, c: stats.utm_campaigns(f),
    "goals": lambda f, c: stats.goal_conversions(f),
    "browsers": lambda f, c: stats.browsers(f),
    "os": lambda f, c: stats.operating_systems(f),
    "devices": lambda f, c: stats.devices(f),
    "countries": lambda f, c: stats.countries(f),
    # Actions
    "events_over_time": lambda f, c: stats.events_over_time(f),
    "categories_over_time": lambda f, c: stats.categories_over_time(f),
    "event_names": lambda f, c: stats.event_names(f),
    "track_actions": lambda f, c: stats.action_counts(f, "track"),
    # One event (needs `event`)
    "event_timeseries": lambda f, c: stats.event_over_time(f, c.event or ""),
    "event_properties": lambda f, c: stats.event_properties(f, c.event or ""),
    "event_pages": lambda f, c: stats.event_pages(f, c.event or ""),
    # Benefits / list positions
    "behaviour": lambda f, c: stats.item_behaviour(f, c.sort, c.descending),
    "heatmap": lambda f, c: stats.position_heatmap(f, c.item),
    "ctr": lambda f, c: stats.ctr_by_position(f, c.item),
    # One funnel (needs `funnel`, an id of the site's)
    "funnel": _funnel_table,
}
NEEDS_EVENT = {"event_timeseries", "event_properties", "event_pages"}
NEEDS_FUNNEL = {"funnel"}


def _tables(filters: Filters, choice: Choice, *names: str) -> dict[str, pd.DataFrame]:
    return {name: TABLES[name](filters, choice) for name in names}


def _empty_state(filters: Filters) -> dict[str, Any] | None:
    """Why there is nothing to show, when there is nothing: no events ever, or none in range."""
    if stats.event_count(filters):
        return None
    if first_event_time(filters.site) is None:
        return {"never": True, "script_tag": script_tag(filters.site, request.host_url)}
    return {"never": False}


def _page(template: str, filters: Filters, **context: Any) -> str:
    return render_page(template, filters, top=TOP, PLOTLY_VERSION=PLOTLY_VERSION, **context)


@bp.app_template_filter("figure")
def format_figure(value: Any, kind: str = "") -> str:
    """A table cell: 12,345 / 42.9% / 87.5 s; empty (–) for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if kind == "pct":
        return f"{value:,.1f}%"
    if kind == "seconds":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


@bp.get("/overview")
@dashboard_access
def overview() -> str:
    filters = current_filters()
    if (empty := _empty_state(filters)) is not None:
        return _page("dashboard/overview.html", filters, empty=empty)
    t = _tables(
        filters,
        Choice(),
        "summary",
        "timeseries",
        "pages",
        "entry_pages",
        "referrers",
        "utm_campaigns",
        "browsers",
        "os",
        "devices",
        "countries",
    )
    series = {"pageviews": "Page views", "visitors": "Visitors"}
    figures = {
        "timeseries": charts.time_series(t["timeseries"], series, ""),
        "browsers": charts.bar_chart(t["browsers"].head(TOP), "browser", "visitors", ""),
        "os": charts.bar_chart(t["os"].head(TOP), "os", "visitors", ""),
        "devices": charts.bar_chart(t["devices"].head(TOP), "device", "visitors", ""),
    }
    countries = {
        row["country"]: {"name": row["name"], "visitors": int(row["visitors"])}
        for row in t["countries"].to_dict("records")
    }
    return _page(
        "dashboard/overview.html",
        filters,
        t=t,
        figures=_embed(figures),
        countries_map=charts.script_json(countries),
        has_goals=bool(goals_of(filters.site.id)),
    )


@bp.get("/overview/goals")
@dashboard_access
def overview_goals() -> str:
    """The Overview's Goals card alone, which the page fetches after it is drawn: goals are
    counted from the period's raw events (their cost grows with the period's events), and the
    rest of the Overview, read from rollups, need not wait for them."""
    filters = current_filters()
    return render_template(
        "dashboard/_goals_card.html", filters=filters, goals=stats.goal_conversions(filters)
    )


@bp.get("/actions")
@dashboard_access
def actions() -> str:
    filters = current_filters()
    if (empty := _empty_state(filters)) is not None:
        return _page("dashboard/actions.html", filters, empty=empty)
    t = _tables(
        filters,
        Choice(),
        "events_over_time",
        "categories_over_time",
        "event_names",
        "track_actions",
    )
    figures = {
        "events_over_time": charts.stacked_over_time(t["events_over_time"], "name", "events", ""),
        "categories_over_time": charts.stacked_over_time(
            t["categories_over_time"], "category", "events", ""
        ),
        "track_actions": charts.bar_chart(t["track_actions"], "action", "count", ""),
    }
    return _page("dashboard/actions.html", filters, t=t, figures=_embed(figures))


@bp.get("/actions/<path:name>")
@dashboard_access
def event(name: str) -> str:
    filters = current_filters()
    choice = _choice(event=name[:MAX_CHOICE])
    t = _tables(filters, choice, "event_timeseries", "event_properties", "event_pages")
    total = int(t["event_pages"]["events"].sum())
    figures = {
        "event_timeseries": charts.time_series(
            t["event_timeseries"], {"events": "Events", "visitors": "Visitors"}, ""
        )
    }
    return _page(
        "dashboard/event.html",
        filters,
        name=choice.event,
        choice=choice,
        total=total,
        t=t,
        figures=_embed(figures) if total else {},
    )


@bp.get("/lists")
@dashboard_access
def benefits() -> str:
    filters = current_filters()
    choice = _choice()
    t = _tables(filters, choice, "behaviour", "heatmap", "ctr")
    items = stats.list_items(filters)
    figures = {}
    if not t["heatmap"].empty:
        figures = {
            "heatmap": charts.position_heatmap(t["heatmap"], ""),
            "ctr": charts.ctr_curve(t["ctr"], ""),
        }
    return _page(
        "dashboard/benefits.html",
        filters,
        choice=choice,
        items=items,
        t=t,
        figures=_embed(figures),
        sortable=[c for c in t["behaviour"].columns if c != "item_id"],
    )


@bp.get("/funnels")
@dashboard_access
def funnels() -> str:
    """The site's funnels, each a link to its page."""
    filters = current_filters()
    rows = [
        {"funnel": f, "steps": " → ".join(step_text(s) for s in f.steps)}
        for f in funnels_of(filters.site.id)
    ]
    return _page("dashboard/funnels.html", filters, rows=rows)


@bp.get("/funnels/<int:funnel_id>")
@dashboard_access
def funnel(funnel_id: int) -> str:
    filters = current_filters()
    found = _funnel(filters, funnel_id)
    choice = _choice(funnel=found.id)
    t = _tables(filters, choice, "funnel")
    figures = {"funnel": charts.funnel_chart(t["funnel"], "")}
    return _page(
        "dashboard/funnel.html", filters, funnel=found, choice=choice, t=t, figures=_embed(figures)
    )


@bp.get("/csv/<table>.csv")
@dashboard_access
def csv(table: str) -> Response:
    """One chart's or table's numbers for the current filters, e.g. /csv/timeseries.csv?site=..."""
    make = TABLES.get(table)
    choice = _choice()
    if make is None or (table in NEEDS_EVENT and not choice.event):
        abort(404, f"No table named {table!r} (or it needs ?event=NAME).")
    if table in NEEDS_FUNNEL and choice.funnel is None:
        abort(404, f"The table {table!r} needs ?funnel=ID.")
    filters = current_filters()
    subject = "-".join(v for v in (choice.event, choice.item) if v)
    if table in NEEDS_FUNNEL:
        subject = f"funnel{choice.funnel}"
    name = "-".join(
        v for v in (filters.site.public_id, table, subject, filters.start.date().isoformat()) if v
    )
    return csv_response(make(filters, choice), f"{name}--{filters.last_day.isoformat()}.csv")


def _embed(figures: dict[str, Any]) -> dict[str, Markup]:
    return {key: charts.figure_json(fig) for key, fig in figures.items()}
