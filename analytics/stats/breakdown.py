"""One table per filter dimension, for the stats API's `breakdown`: the same functions, and so
the same numbers, as the dashboards' cards and CSVs, with the dimension's column named `value`.

| dimension | from | columns after `value` |
|---|---|---|
| path | Top pages | pageviews, visitors, share_pct |
| entry | Entry pages | visits, visitors, share_pct |
| referrer | Referrers | visits, visitors, share_pct |
| utm_source, utm_medium, utm_campaign | UTM campaigns, added up by one key | visits, share_pct |
| browser, os, device | Browsers, OS, Devices | visitors, share_pct |
| country | Countries | name, visitors, share_pct |
| name | Event names (Actions) | events, visitors, share_pct |
| item | Benefits behaviour | shows, details, details_pct, actions, actions_pct |
| source | Events by source | events, share_pct |
| category | Categories (Actions) | events, share_pct |
| prop.KEY | events carrying the property, by its value | events, visitors, share_pct |
| goal | Goals card | visits, conversion_rate, events |

Distinct visitors do not add up across rows, so the UTM breakdowns (rows of the UTM table added
by one of its three keys) give visits only. `prop.KEY` has no card of its own (the One-event page
shows a sample per event name): it is counted from raw events, over every event of the period.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from sqlalchemy import func, select

from ..segments import EVENT_DIMENSIONS, GOAL, MAX_KEY_LENGTH, PROP_PREFIX, VISIT_DIMENSIONS
from .actions import categories_over_time, event_names
from .base import EVENTS, Scope, counts, frame, percent, scoped
from .goals import goal_conversions
from .lists import item_behaviour
from .overview import (
    browsers,
    countries,
    devices,
    entry_pages,
    operating_systems,
    referrers,
    top_pages,
    utm_campaigns,
)
from .segment import prop_value

ITEM_COLUMNS = ["value", "shows", "details", "details_pct", "actions", "actions_pct"]


Table = Callable[[Scope], pd.DataFrame]


def _renamed(table: Table, column: str) -> Table:
    return lambda filters: table(filters).rename(columns={column: "value"})


def _summed(df: pd.DataFrame, key: str, measure: str) -> pd.DataFrame:
    """Rows added up by `key`, most first, with each one's share of the total."""
    df = df.groupby(key, as_index=False)[measure].sum().rename(columns={key: "value"})
    df[measure] = df[measure].astype("int64")
    df = df.sort_values([measure, "value"], ascending=[False, True], ignore_index=True)
    df["share_pct"] = percent(df[measure], int(df[measure].sum()))
    return df


def _utm(key: str) -> Table:
    return lambda filters: _summed(utm_campaigns(filters), key, "visits")


def _items(filters: Scope) -> pd.DataFrame:
    df = item_behaviour(filters).rename(columns={"item_id": "value"})
    return df[ITEM_COLUMNS]


def _sources(filters: Scope) -> pd.DataFrame:
    return _summed(counts("source_names", filters), "source", "count").rename(
        columns={"count": "events"}
    )


def _categories(filters: Scope) -> pd.DataFrame:
    # Every category apart (no "(other)"), added up over the time buckets.
    return _summed(categories_over_time(filters, top=10**6), "category", "events")


def _goals(filters: Scope) -> pd.DataFrame:
    return goal_conversions(filters).rename(columns={"goal": "value"})


def property_values(filters: Scope, key: str) -> pd.DataFrame:
    """Events carrying property `key`, and their distinct visitors, by the property's value."""
    carried = scoped(
        select(prop_value(EVENTS, key).label("value"), EVENTS.c.visitor_id), filters
    ).subquery("carried")
    stmt = (
        select(
            carried.c.value,
            func.count().label("events"),
            func.count(carried.c.visitor_id.distinct()).label("visitors"),
        )
        .where(carried.c.value.isnot(None))
        .group_by(carried.c.value)
    )
    df = frame(stmt, ["value", "events", "visitors"])
    df[["events", "visitors"]] = df[["events", "visitors"]].astype("int64")
    df = df.sort_values(["events", "value"], ascending=[False, True], ignore_index=True)
    df["share_pct"] = percent(df["events"], int(df["events"].sum()))
    return df


TABLES: dict[str, Table] = {
    "path": _renamed(top_pages, "path"),
    "entry": _renamed(entry_pages, "path"),
    "referrer": _renamed(referrers, "referrer"),
    "utm_source": _utm("utm_source"),
    "utm_medium": _utm("utm_medium"),
    "utm_campaign": _utm("utm_campaign"),
    "browser": _renamed(browsers, "browser"),
    "os": _renamed(operating_systems, "os"),
    "device": _renamed(devices, "device"),
    "country": _renamed(countries, "country"),
    "name": _renamed(event_names, "name"),
    "item": _items,
    "source": _sources,
    "category": _categories,
    GOAL: _goals,
}
assert set(TABLES) == {*VISIT_DIMENSIONS, *EVENT_DIMENSIONS, GOAL}, "a filter without a table"
DIMENSIONS = (*TABLES, PROP_PREFIX + "KEY")


def is_dimension(by: str) -> bool:
    """Whether `by` names a breakdown: a filter dimension, or `prop.KEY` with a sane key."""
    if by.startswith(PROP_PREFIX):
        return 0 < len(by) - len(PROP_PREFIX) <= MAX_KEY_LENGTH
    return by in TABLES


def breakdown(filters: Scope, by: str) -> pd.DataFrame:
    """The table of dimension `by` (see the module's docstring), every row, most first."""
    if by.startswith(PROP_PREFIX):
        return property_values(filters, by[len(PROP_PREFIX) :])
    return TABLES[by](filters)
