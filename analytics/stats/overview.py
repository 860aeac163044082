"""Overview metrics: the headline numbers, the traffic over time, and where visits come from."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import and_, case, func, select

from ..extensions import db
from ..models import Event
from ..vocabulary import PAGEVIEW
from .base import VISIT, Scope, frame, percent, scoped
from .dialect import seconds_between, time_bucket, url_host
from .timeline import complete

IS_PAGEVIEW = case((Event.name == PAGEVIEW, 1), else_=0)
DIRECT = "(direct)"
UNKNOWN = "(unknown)"

SUMMARY_METRICS = {
    "visitors": "Visitors",
    "visits": "Visits",
    "pageviews": "Page views",
    "bounce_rate": "Bounce rate",
    "avg_visit_seconds": "Average visit",
}


def _totals(filters: Scope) -> dict[str, float | None]:
    """The headline numbers for one period: two queries, all counting done by the database."""
    visitors, pageviews = db.session.execute(
        scoped(select(func.count(Event.visitor_id.distinct()), func.sum(IS_PAGEVIEW)), filters)
    ).one()
    per_visit = (
        scoped(
            select(
                func.count().label("events"),
                func.sum(IS_PAGEVIEW).label("pageviews"),
                seconds_between(func.min(Event.occurred_at), func.max(Event.occurred_at)).label(
                    "seconds"
                ),
            ).where(VISIT.isnot(None)),
            filters,
        )
        .group_by(VISIT)
        .subquery()
    )
    bounced = case((and_(per_visit.c.events == 1, per_visit.c.pageviews == 1), 1), else_=0)
    visits, bounces, seconds = db.session.execute(
        select(func.count(), func.sum(bounced), func.avg(per_visit.c.seconds))
    ).one()
    return {
        "visitors": int(visitors or 0),
        "visits": int(visits or 0),
        "pageviews": int(pageviews or 0),
        "bounce_rate": percent(int(bounces or 0), visits),
        "avg_visit_seconds": round(float(seconds), 1) if seconds is not None else None,
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


def pageviews_over_time(filters: Scope) -> pd.DataFrame:
    """Page views and visitors per time bucket (empty buckets included, as zeros)."""
    bucket = time_bucket(Event.occurred_at, filters.bucket).label("bucket")
    stmt = scoped(
        select(
            bucket,
            func.sum(IS_PAGEVIEW).label("pageviews"),
            func.count(Event.visitor_id.distinct()).label("visitors"),
        ),
        filters,
    ).group_by(bucket)
    return complete(frame(stmt), filters.bucket, filters.start, filters.end)


def _ranked(df: pd.DataFrame, value: str, limit: int | None) -> pd.DataFrame:
    """Sort by `value` descending then label, add each row's share of the total, cut to `limit`."""
    df = df.sort_values([value, df.columns[0]], ascending=[False, True], ignore_index=True)
    df[value] = df[value].astype("int64")
    df["share_pct"] = percent(df[value], int(df[value].sum()))
    return df.head(limit) if limit else df


def top_pages(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Paths by page views, with their distinct visitors."""
    stmt = scoped(
        select(
            Event.path.label("path"),
            func.count().label("pageviews"),
            func.count(Event.visitor_id.distinct()).label("visitors"),
        ).where(Event.name == PAGEVIEW, Event.path.isnot(None)),
        filters,
    ).group_by(Event.path)
    return _ranked(frame(stmt), "pageviews", limit)


def _entries(filters: Scope):
    """The first page view of each visit in the period, with where it came from."""
    first = (
        func.row_number()
        .over(partition_by=VISIT, order_by=(Event.occurred_at, Event.id))
        .label("nth")
    )
    return scoped(
        select(
            Event.path,
            Event.referrer,
            Event.utm_source,
            Event.utm_medium,
            Event.utm_campaign,
            Event.visitor_id,
            first,
        ).where(Event.name == PAGEVIEW, VISIT.isnot(None)),
        filters,
    ).subquery()


def _by_entry(filters: Scope, label: str, key, limit: int | None, *where) -> pd.DataFrame:
    entries = _entries(filters)
    column = key(entries.c).label(label)
    stmt = (
        select(
            column,
            func.count().label("visits"),
            func.count(entries.c.visitor_id.distinct()).label("visitors"),
        )
        .where(entries.c.nth == 1, *(w(entries.c) for w in where))
        .group_by(column)
    )
    return _ranked(frame(stmt), "visits", limit)


def entry_pages(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Landing pages: the path of each visit's first page view, by visits."""
    return _by_entry(filters, "path", lambda c: func.coalesce(c.path, UNKNOWN), limit)


def referrers(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Referring hosts of each visit's first page view, by visits; no referrer is '(direct)'."""
    return _by_entry(
        filters,
        "referrer",
        lambda c: func.coalesce(url_host(c.referrer), DIRECT),
        limit,
    )


def utm_campaigns(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Visits that landed with UTM parameters, by source / medium / campaign."""
    entries = _entries(filters)
    c = entries.c
    keys = [
        func.coalesce(c.utm_source, "").label("utm_source"),
        func.coalesce(c.utm_medium, "").label("utm_medium"),
        func.coalesce(c.utm_campaign, "").label("utm_campaign"),
    ]
    stmt = (
        select(
            *keys,
            func.count().label("visits"),
            func.count(c.visitor_id.distinct()).label("visitors"),
        )
        .where(
            c.nth == 1,
            (c.utm_source.isnot(None)) | (c.utm_medium.isnot(None)) | (c.utm_campaign.isnot(None)),
        )
        .group_by(*keys)
    )
    df = frame(stmt)
    df = df.sort_values(
        ["visits", "utm_source", "utm_medium", "utm_campaign"],
        ascending=[False, True, True, True],
        ignore_index=True,
    )
    df["visits"] = df["visits"].astype("int64")
    df["share_pct"] = percent(df["visits"], int(df["visits"].sum()))
    return df.head(limit) if limit else df


def _visitors_by(filters: Scope, column, label: str, limit: int | None) -> pd.DataFrame:
    """Distinct visitors by a user-agent column; events sent without a user agent (recorder
    records, server-side calls) say nothing about it and are left out."""
    key = column.label(label)
    stmt = scoped(
        select(key, func.count(Event.visitor_id.distinct()).label("visitors")).where(
            Event.visitor_id.isnot(None), column.isnot(None)
        ),
        filters,
    ).group_by(column)
    return _ranked(frame(stmt), "visitors", limit)


def browsers(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by browser family."""
    return _visitors_by(filters, Event.browser, "browser", limit)


def operating_systems(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by operating system."""
    return _visitors_by(filters, Event.os, "os", limit)


def devices(filters: Scope, limit: int | None = None) -> pd.DataFrame:
    """Distinct visitors by device type (desktop, mobile, tablet, ...)."""
    return _visitors_by(filters, Event.device, "device", limit)


def event_count(filters: Scope) -> int:
    """How many events the period holds (0 means the page shows its empty state)."""
    return int(db.session.execute(scoped(select(func.count()), filters)).scalar_one())
