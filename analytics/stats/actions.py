"""Actions: what visitors did, by event name and category, and what one event carried."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from ..extensions import db
from ..models import Event
from .base import Scope, frame, percent, scoped
from .dialect import time_bucket
from .timeline import complete

OTHER = "(other)"
NONE = "(none)"
PROPERTY_SAMPLE = 5000  # the latest events of one name whose properties are counted
VALUE_CAP = 200  # characters of a property value shown


def _over_time(filters: Scope, column, label: str, top: int, *where) -> pd.DataFrame:
    """Events per bucket and `label`; labels beyond the `top` busiest are summed as '(other)'."""
    bucket = time_bucket(Event.occurred_at, filters.bucket).label("bucket")
    key = func.coalesce(column, NONE).label(label)
    stmt = scoped(
        select(bucket, key, func.count().label("events")).where(*where), filters
    ).group_by(bucket, key)
    df = frame(stmt)
    if df.empty:
        return complete(df, filters.bucket, filters.start, filters.end, key=label)
    totals = df.groupby(label)["events"].sum().sort_values(ascending=False, kind="stable")
    keep = set(totals.index[:top]) if len(totals) > top + 1 else set(totals.index)
    df[label] = df[label].where(df[label].isin(keep), OTHER)
    df["bucket"] = pd.to_datetime(df["bucket"])
    df = df.groupby(["bucket", label], as_index=False)["events"].sum()
    return complete(df, filters.bucket, filters.start, filters.end, key=label)


def events_over_time(filters: Scope, top: int = 8) -> pd.DataFrame:
    """Events per bucket and event name (the `top` busiest names, the rest as '(other)')."""
    return _over_time(filters, Event.name, "name", top)


def categories_over_time(filters: Scope, top: int = 8) -> pd.DataFrame:
    """Events per bucket and category; events without one count as '(none)'."""
    return _over_time(filters, Event.category, "category", top)


def event_names(filters: Scope) -> pd.DataFrame:
    """Every event name with its count, distinct visitors and share of all events."""
    stmt = scoped(
        select(
            Event.name.label("name"),
            func.count().label("events"),
            func.count(Event.visitor_id.distinct()).label("visitors"),
        ),
        filters,
    ).group_by(Event.name)
    df = frame(stmt).sort_values(["events", "name"], ascending=[False, True], ignore_index=True)
    df["events"] = df["events"].astype("int64")
    df["share_pct"] = percent(df["events"], int(df["events"].sum()))
    return df


def action_counts(filters: Scope, source: str = "track") -> pd.DataFrame:
    """(action, count) for one source: the old `SELECT count(*), action ... GROUP BY action`."""
    stmt = scoped(
        select(Event.name.label("action"), func.count().label("count")).where(
            Event.source == source
        ),
        filters,
    ).group_by(Event.name)
    df = frame(stmt).sort_values(["count", "action"], ascending=[False, True], ignore_index=True)
    df["count"] = df["count"].astype("int64")
    return df


def event_over_time(filters: Scope, name: str) -> pd.DataFrame:
    """Events of one name and their distinct visitors per bucket."""
    bucket = time_bucket(Event.occurred_at, filters.bucket).label("bucket")
    stmt = scoped(
        select(
            bucket,
            func.count().label("events"),
            func.count(Event.visitor_id.distinct()).label("visitors"),
        ).where(Event.name == name),
        filters,
    ).group_by(bucket)
    return complete(frame(stmt), filters.bucket, filters.start, filters.end)


def event_pages(filters: Scope, name: str) -> pd.DataFrame:
    """Where one event happened: its count by path."""
    path = func.coalesce(Event.path, NONE).label("path")
    stmt = scoped(
        select(path, func.count().label("events")).where(Event.name == name), filters
    ).group_by(path)
    df = frame(stmt).sort_values(["events", "path"], ascending=[False, True], ignore_index=True)
    df["events"] = df["events"].astype("int64")
    df["share_pct"] = percent(df["events"], int(df["events"].sum()))
    return df


def _flatten(props: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """{"a": {"b": 1}, "c": [1]} -> [("a.b", "1"), ("c", "[1]")]; values cut to VALUE_CAP."""
    out: list[tuple[str, str]] = []
    for key, value in props.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, f"{name}."))
        elif isinstance(value, str):
            out.append((name, value[:VALUE_CAP]))
        else:
            out.append((name, json.dumps(value, ensure_ascii=False)[:VALUE_CAP]))
    return out


def event_properties(filters: Scope, name: str, sample: int = PROPERTY_SAMPLE) -> pd.DataFrame:
    """Property key/value counts over the latest `sample` events of one name.

    Properties are free-form JSON, so they are counted in Python over a bounded sample rather than
    with per-dialect JSON functions; `sampled` says how many events were read.
    """
    stmt = scoped(select(Event.props).where(Event.name == name), filters)
    stmt = stmt.order_by(Event.occurred_at.desc()).limit(sample)
    counts: Counter[tuple[str, str]] = Counter()
    sampled = 0
    for (props,) in db.session.execute(stmt):
        sampled += 1
        if isinstance(props, dict):
            counts.update(set(_flatten(props)))
    rows = [(k, v, n) for (k, v), n in counts.items()]
    df = pd.DataFrame(rows, columns=["key", "value", "events"])
    df = df.sort_values(
        ["key", "events", "value"], ascending=[True, False, True], ignore_index=True
    )
    df["events"] = df["events"].astype("int64")
    df["share_pct"] = percent(df["events"], sampled)
    df.attrs["sampled"] = sampled
    return df
