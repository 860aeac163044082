"""Overview metrics: the headline numbers, the traffic over time, and where visits come from.

Each public function reads its counts through `base.counts` (rollups, or raw events) and then
ranks or derives; the `@metric` functions below are the raw SQL, written once.
"""

from __future__ import annotations

import pandas as pd
import pycountry
from sqlalchemy import FromClause, and_, case, func, select

from ..extensions import db
from ..segments import DIRECT
from ..vocabulary import PAGEVIEW
from .base import (
    SLICE,
    SLICE_DIMENSION,
    Scope,
    counts,
    frame,
    metric,
    percent,
    scoped,
    slice_keys,
    visit,
)
from .dialect import seconds_between, time_bucket, url_host
from .timeline import complete

UNKNOWN = "(unknown)"
SPLIT_BY = (SLICE_DIMENSION, SLICE)

SUMMARY_METRICS = {
    "visitors": "Visitors",
    "visits": "Visits",
    "pageviews": "Page views",
    "bounce_rate": "Bounce rate",
    "avg_visit_seconds": "Average visit",
}


def _is_pageview(ev: FromClause):
    return case((ev.c.name == PAGEVIEW, 1), else_=0)


@metric("summary", keys=(), measures=("visitors", "visits", "pageviews", "bounces", "seconds"))
def _summary_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    """Visitors, visits, page views, bounced visits and the visits' summed length in seconds."""
    by = slice_keys(ev)
    events = scoped(
        select(
            *by,
            func.count(ev.c.visitor_id.distinct()).label("visitors"),
            func.sum(_is_pageview(ev)).label("pageviews"),
        ),
        filters,
        ev,
    ).group_by(*by)
    per_visit = (
        scoped(
            select(
                *by,
                func.count().label("events"),
                func.sum(_is_pageview(ev)).label("pageviews"),
                seconds_between(func.min(ev.c.occurred_at), func.max(ev.c.occurred_at)).label(
                    "seconds"
                ),
            ).where(visit(ev).isnot(None)),
            filters,
            ev,
        )
        .group_by(*by, visit(ev))
        .subquery()
    )
    bounced = case((and_(per_visit.c.events == 1, per_visit.c.pageviews == 1), 1), else_=0)
    outer = slice_keys(per_visit)
    visits = select(
        *outer,
        func.count().label("visits"),
        func.sum(bounced).label("bounces"),
        func.sum(per_visit.c.seconds).label("seconds"),
    ).group_by(*outer)
    columns = ["visitors", "visits", "pageviews", "bounces", "seconds"]
    if by:  # one row per value: every value with events has visits too, unless none has one
        both = frame(events).merge(frame(visits), on=list(SPLIT_BY), how="left")
        both[["visits", "bounces"]] = both[["visits", "bounces"]].fillna(0)
        both["seconds"] = both["seconds"].astype(float).fillna(0.0)
        return both[[*SPLIT_BY, *columns]]
    visitors, pageviews = db.session.execute(events).one()
    n, bounces, seconds = db.session.execute(visits).one()
    row = (visitors or 0, n or 0, pageviews or 0, bounces or 0, float(seconds or 0.0))
    return pd.DataFrame([row], columns=columns)


def _totals(filters: Scope) -> dict[str, float | None]:
    """The headline numbers for one period, from the summed counts."""
    visitors, visits, pageviews, bounces, seconds = (
        counts("summary", filters).sum().reindex(
            ["visitors", "visits", "pageviews", "bounces", "seconds"], fill_value=0
        )
    )
    visits = int(visits)
    return {
        "visitors": int(visitors),
        "visits": visits,
        "pageviews": int(pageviews),
        "bounce_rate": percent(int(bounces), visits),
        "avg_visit_seconds": round(float(seconds) / visits, 1) if visits else None,
    }


def overview_summary(filters: Scope) -> pd.DataFrame:
    """Visitors, visits, page views, bounce rate and average visit, against the previous period.

    A bounce is a visit made of one page view and nothing else; a visit lasts from its first event
    to its last. `change_pct` is the relative change, empty when the previous value is 0 or unknown.
    """
    now, before = _totals(filters), _totals(filters.previous())
    rows = []
    for key, label in SUMMARY_METRICS.items():
        value, previous = now[key], before[key]
        change = None
        if value is not None and previous:
            change = round((value - previous) * 100.0 / previous, 1)
        rows.append((key, label, value, previous, change))
    # object dtype keeps counts as ints and unknowns as None (an empty cell), not 4.0 and NaN
    columns = ["metric", "label", "value", "previous", "change_pct"]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _traffic_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    by = slice_keys(ev)
    bucket = time_bucket(ev.c.occurred_at, filters.bucket).label("bucket")
    stmt = scoped(
        select(
            *by,
            bucket,
            func.sum(_is_pageview(ev)).label("pageviews"),
            func.count(ev.c.visitor_id.distinct()).label("visitors"),
        ),
        filters,
        ev,
    ).group_by(*by, bucket)
    return frame(stmt)


metric("traffic_hour", ("bucket",), ("pageviews", "visitors"), grain="hour")(_traffic_counts)
metric("traffic_day", ("bucket",), ("pageviews", "visitors"), grain="day")(_traffic_counts)


def pageviews_over_time(filters: Scope) -> pd.DataFrame:
    """Page views and visitors per time bucket (empty buckets included, as zeros)."""
    name = "traffic_hour" if filters.bucket == "hour" else "traffic_day"
    return complete(counts(name, filters), filters.bucket, filters.start, filters.end)


def _ranked(df: pd.DataFrame, value: str, limit: int | None) -> pd.DataFrame:
    """Sort by `value` descending then label, add each row's share of the total, cut to `limit`."""
    df = df.sort_values([value, df.columns[0]], ascending=[False, True], ignore_index=True)
    df[value] = df[value].astype("int64")
    df["share_pct"] = percent(df[value], int(df[value].sum()))
    return df.head(limit) if limit else df


@metric("pages", keys=("path",), measures=("pageviews", "visitors"))
def _page_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    by = slice_keys(ev)
    stmt = scoped(
        select(
            *by,
            ev.c.path.label("path"),
            func.count().label("pageviews"),
            func.count(ev.c.visitor_id.distinct()).label("visitors"),
        ).where(ev.c.name == PAGEVIEW, ev.c.path.isnot(None)),
        filters,
        ev,
    ).group_by(*by, ev.c.path)
    return frame(stmt)


def top_pages(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Paths by page views, with their distinct visitors."""
    return _ranked(counts("pages", filters), "pageviews", limit)


def _entries(filters: Scope, ev: FromClause):
    """The first page view of each visit in the period, with where it came from."""
    by = slice_keys(ev)
    first = (
        func.row_number()
        .over(partition_by=(*by, visit(ev)), order_by=(ev.c.occurred_at, ev.c.id))
        .label("nth")
    )
    return scoped(
        select(
            *by,
            ev.c.path,
            ev.c.referrer,
            ev.c.utm_source,
            ev.c.utm_medium,
            ev.c.utm_campaign,
            ev.c.visitor_id,
            first,
        ).where(ev.c.name == PAGEVIEW, visit(ev).isnot(None)),
        filters,
        ev,
    ).subquery()


def _entry_counts(filters: Scope, ev: FromClause, keys, *where) -> pd.DataFrame:
    """Visits and their distinct visitors by `keys(entry columns)` of each visit's entry."""
    entries = _entries(filters, ev)
    columns = [*slice_keys(entries), *keys(entries.c)]
    stmt = (
        select(
            *columns,
            func.count().label("visits"),
            func.count(entries.c.visitor_id.distinct()).label("visitors"),
        )
        .where(entries.c.nth == 1, *(w(entries.c) for w in where))
        .group_by(*columns)
    )
    return frame(stmt)


@metric("entry_pages", keys=("path",), measures=("visits", "visitors"))
def _entry_page_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    return _entry_counts(filters, ev, lambda c: [func.coalesce(c.path, UNKNOWN).label("path")])


@metric("referrers", keys=("referrer",), measures=("visits", "visitors"))
def _referrer_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    return _entry_counts(
        filters, ev, lambda c: [func.coalesce(url_host(c.referrer), DIRECT).label("referrer")]
    )


UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")


@metric("utm", keys=UTM_KEYS, measures=("visits", "visitors"))
def _utm_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    return _entry_counts(
        filters,
        ev,
        lambda c: [func.coalesce(getattr(c, k), "").label(k) for k in UTM_KEYS],
        lambda c: (c.utm_source.isnot(None)) | (c.utm_medium.isnot(None))
        | (c.utm_campaign.isnot(None)),
    )


def entry_pages(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Landing pages: the path of each visit's first page view, by visits."""
    return _ranked(counts("entry_pages", filters), "visits", limit)


def referrers(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Referring hosts of each visit's first page view, by visits; no referrer is '(direct)'."""
    return _ranked(counts("referrers", filters), "visits", limit)


def utm_campaigns(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Visits that landed with UTM parameters, by source / medium / campaign."""
    df = counts("utm", filters).sort_values(
        ["visits", *UTM_KEYS], ascending=[False, True, True, True], ignore_index=True
    )
    df["visits"] = df["visits"].astype("int64")
    df["share_pct"] = percent(df["visits"], int(df["visits"].sum()))
    return df.head(limit) if limit else df


def _visitors_by(column: str):
    """Distinct visitors by a user-agent column or the country; events that say nothing about it
    (sent without a user agent, imported without an address) are left out."""

    def count(filters: Scope, ev: FromClause) -> pd.DataFrame:
        by, key = slice_keys(ev), ev.c[column]
        stmt = scoped(
            select(
                *by, key.label(column), func.count(ev.c.visitor_id.distinct()).label("visitors")
            ).where(ev.c.visitor_id.isnot(None), key.isnot(None)),
            filters,
            ev,
        ).group_by(*by, key)
        return frame(stmt)

    return metric(column, keys=(column,), measures=("visitors",))(count)


_visitors_by("browser")
_visitors_by("os")
_visitors_by("device")
_visitors_by("country")


def browsers(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by browser family."""
    return _ranked(counts("browser", filters), "visitors", limit)


def operating_systems(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by operating system."""
    return _ranked(counts("os", filters), "visitors", limit)


def devices(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by device type (desktop, mobile, tablet, ...)."""
    return _ranked(counts("device", filters), "visitors", limit)


def countries(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by country (ISO 3166-1 alpha-2), with the country's English name."""
    df = _ranked(counts("country", filters), "visitors", limit)
    df.insert(1, "name", [country_name(code) for code in df["country"]])
    return df


def country_name(code: str) -> str:
    """The English short name of an ISO 3166-1 alpha-2 code; the code itself if unknown."""
    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    return getattr(found, "common_name", None) or getattr(found, "name", None) or code


@metric("events", keys=(), measures=("events",))
def _event_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    by = slice_keys(ev)
    if by:
        return frame(scoped(select(*by, func.count().label("events")), filters, ev).group_by(*by))
    total = db.session.execute(scoped(select(func.count()), filters, ev)).scalar_one()
    return pd.DataFrame([(int(total),)], columns=["events"])


def event_count(filters: Scope) -> int:
    """How many events the period holds (0 means the page shows its empty state)."""
    return int(counts("events", filters)["events"].sum())
