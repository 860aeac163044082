"""Actions: what visitors did, by event name and category, and what one event carried."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pandas as pd
from sqlalchemy import FromClause, func, select

from ..extensions import db
from ..models import Event
from .base import Scope, counts, frame, metric, percent, scoped
from .dialect import time_bucket
from .timeline import complete

OTHER = "(other)"
NONE = "(none)"
PROPERTY_SAMPLE = 5000  # the latest events of one name whose properties are counted
VALUE_CAP = 200  # characters of a property value shown


def _by_name_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    """Events and distinct visitors per time bucket and event name."""
    bucket = time_bucket(ev.c.occurred_at, filters.bucket).label("bucket")
    stmt = scoped(
        select(
            bucket,
            ev.c.name.label("name"),
            func.count().label("events"),
            func.count(ev.c.visitor_id.distinct()).label("visitors"),
        ),
        filters,
        ev,
    ).group_by(bucket, ev.c.name)
    return frame(stmt)


def _by_category_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    bucket = time_bucket(ev.c.occurred_at, filters.bucket).label("bucket")
    key = func.coalesce(ev.c.category, NONE).label("category")
    stmt = scoped(select(bucket, key, func.count().label("events")), filters, ev)
    return frame(stmt.group_by(bucket, key))


for grain in ("hour", "day"):
    metric(f"names_{grain}", ("bucket", "name"), ("events", "visitors"), grain)(_by_name_counts)
    metric(f"categories_{grain}", ("bucket", "category"), ("events",), grain)(_by_category_counts)


def _bucketed(name: str, filters: Scope) -> pd.DataFrame:
    return counts(f"{name}_{'hour' if filters.bucket == 'hour' else 'day'}", filters)


def _over_time(filters: Scope, df: pd.DataFrame, label: str, top: int) -> pd.DataFrame:
    """Events per bucket and `label`; labels beyond the `top` busiest are summed as '(other)'."""
    df = df[["bucket", label, "events"]]
    if df.empty:
        return complete(df, filters.bucket, filters.start, filters.end, key=label)
    totals = df.groupby(label)["events"].sum()
    totals = totals.reset_index().sort_values(
        ["events", label], ascending=[False, True], kind="stable"
    )[label]
    keep = set(totals[:top]) if len(totals) > top + 1 else set(totals)
    df = df.assign(**{label: df[label].where(df[label].isin(keep), OTHER)})
    df = df.assign(bucket=pd.to_datetime(df["bucket"]))
    df = df.groupby(["bucket", label], as_index=False)["events"].sum()
    return complete(df, filters.bucket, filters.start, filters.end, key=label)


def events_over_time(filters: Scope, top: int = 8) -> pd.DataFrame:
    """Events per bucket and event name (the `top` busiest names, the rest as '(other)')."""
    return _over_time(filters, _bucketed("names", filters), "name", top)


def categories_over_time(filters: Scope, top: int = 8) -> pd.DataFrame:
    """Events per bucket and category; events without one count as '(none)'."""
    return _over_time(filters, _bucketed("categories", filters), "category", top)


@metric("names", keys=("name",), measures=("events", "visitors"))
def _name_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    stmt = scoped(
        select(
            ev.c.name.label("name"),
            func.count().label("events"),
            func.count(ev.c.visitor_id.distinct()).label("visitors"),
        ),
        filters,
        ev,
    ).group_by(ev.c.name)
    return frame(stmt)


def event_names(filters: Scope) -> pd.DataFrame:
    """Every event name with its count, distinct visitors and share of all events."""
    df = counts("names", filters)
    df = df.sort_values(["events", "name"], ascending=[False, True], ignore_index=True)
    df["events"] = df["events"].astype("int64")
    df["share_pct"] = percent(df["events"], int(df["events"].sum()))
    return df


@metric("source_names", keys=("source", "name"), measures=("count",))
def _source_name_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    stmt = scoped(
        select(ev.c.source, ev.c.name.label("action"), func.count().label("count")),
        filters,
        ev,
    ).group_by(ev.c.source, ev.c.name)
    return frame(stmt).rename(columns={"action": "name"})


def action_counts(filters: Scope, source: str = "track") -> pd.DataFrame:
    """(action, count) for one source: the old `SELECT count(*), action ... GROUP BY action`."""
    df = counts("source_names", filters)
    df = df[df["source"] == source].rename(columns={"name": "action"})[["action", "count"]]
    df = df.sort_values(["count", "action"], ascending=[False, True], ignore_index=True)
    df["count"] = df["count"].astype("int64")
    return df


def event_over_time(filters: Scope, name: str) -> pd.DataFrame:
    """Events of one name and their distinct visitors per bucket."""
    df = _bucketed("names", filters)
    df = df[df["name"] == name][["bucket", "events", "visitors"]]
    return complete(df, filters.bucket, filters.start, filters.end)


@metric("name_paths", keys=("path", "name"), measures=("events",))  # path: the long key, k1
def _name_path_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    path = func.coalesce(ev.c.path, NONE).label("path")
    stmt = scoped(
        select(ev.c.name.label("name"), path, func.count().label("events")), filters, ev
    ).group_by(ev.c.name, path)
    return frame(stmt)


def event_pages(filters: Scope, name: str) -> pd.DataFrame:
    """Where one event happened: its count by path."""
    df = counts("name_paths", filters)
    df = df[df["name"] == name][["path", "events"]]
    df = df.sort_values(["events", "path"], ascending=[False, True], ignore_index=True)
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
