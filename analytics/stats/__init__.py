"""The read side: plain functions `(filters) -> DataFrame`, named after the metric they compute.

Every query starts from `base.scoped` (site and period) and groups in SQL; dialect differences
live in `dialect`. Every chart and table of the dashboards, and its CSV, comes from one of these.
"""

from __future__ import annotations

from . import recorder
from .actions import (
    action_counts,
    categories_over_time,
    event_names,
    event_over_time,
    event_pages,
    event_properties,
    events_over_time,
)
from .funnels import funnel
from .goals import goal_conversions
from .lists import ctr_by_position, item_behaviour, list_items, position_heatmap
from .live import live_minutes, live_numbers, live_pages
from .overview import (
    browsers,
    countries,
    devices,
    entry_pages,
    event_count,
    operating_systems,
    overview_summary,
    pageviews_over_time,
    referrers,
    top_pages,
    utm_campaigns,
)

__all__ = [
    "recorder",
    "action_counts",
    "browsers",
    "categories_over_time",
    "countries",
    "ctr_by_position",
    "devices",
    "entry_pages",
    "event_count",
    "event_names",
    "event_over_time",
    "event_pages",
    "event_properties",
    "events_over_time",
    "funnel",
    "goal_conversions",
    "item_behaviour",
    "list_items",
    "live_minutes",
    "live_numbers",
    "live_pages",
    "operating_systems",
    "overview_summary",
    "pageviews_over_time",
    "position_heatmap",
    "referrers",
    "top_pages",
    "utm_campaigns",
]
