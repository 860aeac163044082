"""Time buckets on the Python side: complete a bucketed series with the empty buckets."""

from __future__ import annotations

import datetime as dt

import pandas as pd

FREQUENCIES = {"minute": "min", "hour": "h", "day": "D", "week": "W-MON", "month": "MS"}
MAX_BUCKETS = 5000  # beyond this a chart is unreadable anyway; keep only the buckets with data


def bucket_start(moment: dt.datetime, unit: str) -> dt.datetime:
    """The start of the bucket `moment` falls in (same rule as `dialect.time_bucket`)."""
    moment = moment.replace(second=0, microsecond=0)
    if unit == "minute":
        return moment
    moment = moment.replace(minute=0)
    if unit == "hour":
        return moment
    moment = moment.replace(hour=0)
    if unit == "day":
        return moment
    if unit == "week":
        return moment - dt.timedelta(days=moment.weekday())
    return moment.replace(day=1)


def complete(
    df: pd.DataFrame,
    unit: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    key: str | None = None,
) -> pd.DataFrame:
    """Parse the `bucket` column and add zero rows for buckets with no events in [start, end).

    Every other column is a count. With `key` (e.g. "name") each key gets its own full series.
    """
    df = df.copy()
    df["bucket"] = pd.to_datetime(df["bucket"])
    order = ["bucket", key] if key else ["bucket"]
    counts = [c for c in df.columns if c not in order]
    df[counts] = df[counts].astype("int64")
    if df.empty and (start is None or end is None):
        return df
    first = bucket_start(start, unit) if start is not None else df["bucket"].min()
    last = end - dt.timedelta(microseconds=1) if end is not None else df["bucket"].max()
    index = pd.date_range(first, last, freq=FREQUENCIES[unit], name="bucket")
    if len(index) > MAX_BUCKETS:
        return df.sort_values(order, ignore_index=True)
    if key is None:
        out = df.set_index("bucket").reindex(index, fill_value=0).reset_index()
    else:
        grid = pd.MultiIndex.from_product([index, df[key].unique()], names=order)
        out = df.set_index(order).reindex(grid, fill_value=0).reset_index()
    out[counts] = out[counts].astype("int64")
    return out.sort_values(order, ignore_index=True)
