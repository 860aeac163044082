"""The live view: who is on the site now, from the last 30 minutes of raw events.

Read from `events` directly, not from rollups (which lag by up to a refresh round): the primary
key starts with (site_id, occurred_at), so the last 30 minutes are one short index range at any
table size. The view's filters apply as on every page (`scoped`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from ..vocabulary import PAGEVIEW
from .base import EVENTS, frame, scoped
from .dialect import time_bucket
from .timeline import complete

WINDOW = dt.timedelta(minutes=30)
NOW_WINDOW = dt.timedelta(minutes=5)  # "on the site now": seen in the last 5 minutes


def _window(filters: Any, now: dt.datetime, length: dt.timedelta) -> Any:
    """The filters' site and segment over the `length` before now (and the clock skew after)."""
    return dataclasses.replace(filters, start=now - length, end=now + dt.timedelta(minutes=5))


def live_numbers(filters: Any, now: dt.datetime) -> dict[str, int]:
    """Visitors and page views in the last 5 and in the last 30 minutes."""
    out: dict[str, int] = {}
    ev = EVENTS
    for label, length in (("5m", NOW_WINDOW), ("30m", WINDOW)):
        visitors, pageviews = frame(
            scoped(
                select(
                    func.count(ev.c.visitor_id.distinct()),
                    func.count().filter(ev.c.name == PAGEVIEW),
                ),
                _window(filters, now, length),
            )
        ).iloc[0]
        out[f"visitors_{label}"] = int(visitors or 0)
        out[f"pageviews_{label}"] = int(pageviews or 0)
    return out


def live_pages(filters: Any, now: dt.datetime, limit: int = 20) -> pd.DataFrame:
    """The pages visitors are on now: each recent visitor's latest page view, counted by path."""
    ev = EVENTS
    latest = (
        scoped(
            select(
                ev.c.visitor_id,
                ev.c.path,
                func.row_number()
                .over(partition_by=ev.c.visitor_id, order_by=(ev.c.occurred_at.desc(), ev.c.id))
                .label("nth"),
            ).where(ev.c.name == PAGEVIEW, ev.c.visitor_id.isnot(None)),
            _window(filters, now, NOW_WINDOW),
        )
    ).subquery()
    stmt = (
        select(func.coalesce(latest.c.path, "(unknown)").label("path"),
               func.count().label("visitors"))
        .where(latest.c.nth == 1)
        .group_by(latest.c.path)
        .order_by(func.count().desc(), latest.c.path)
        .limit(limit)
    )  # fmt: skip
    df = frame(stmt, ["path", "visitors"])
    df["visitors"] = df["visitors"].astype("int64")
    return df


def live_minutes(filters: Any, now: dt.datetime) -> pd.DataFrame:
    """Page views and visitors per minute over the last 30 minutes, empty minutes included."""
    ev = EVENTS
    scope = _window(filters, now, WINDOW)
    scope = dataclasses.replace(scope, end=now)
    bucket = time_bucket(ev.c.occurred_at, "minute").label("bucket")
    stmt = scoped(
        select(
            bucket,
            func.count().filter(ev.c.name == PAGEVIEW).label("pageviews"),
            func.count(ev.c.visitor_id.distinct()).label("visitors"),
        ),
        scope,
    ).group_by(bucket)
    return complete(frame(stmt), "minute", scope.start, now)
