"""What every stats function shares: the site-and-period scope, SQL rows -> DataFrame, and the
one place that chooses between raw events and rollups.

A metric's SQL is written once, over a table `ev` shaped like `events`. Run over `events` itself
it is the reference; the rollup refresher runs the same SQL over one day's events to store that
day's counts, and `counts` adds those stored days to the same SQL run over the few events that
cannot be added per day (analytics/rollups/read.py says why, and proves nothing is counted twice).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
from flask import current_app, has_app_context
from sqlalchemy import ColumnElement, FromClause, Select, func

from ..extensions import db
from ..models import Event

EVENTS: FromClause = Event.__table__


class HasId(Protocol):
    id: int


class Scope(Protocol):
    """What the stats need from the dashboard filters (`analytics.filters.Filters` fits)."""

    site: HasId
    start: dt.datetime | None
    end: dt.datetime | None
    bucket: str

    def previous(self) -> Scope: ...


def visit(ev: FromClause) -> ColumnElement:
    """A visit is a tracker session; events without one (API calls) fall back to their visitor."""
    return func.coalesce(ev.c.session_id, ev.c.visitor_id)


SLICE_DIMENSION, SLICE = "dimension", "slice"


def slice_keys(ev: FromClause) -> list[ColumnElement]:
    """The extra group keys of events copied once per filter dimension with their value there
    (analytics/rollups/slices.py): a metric over them is counted per dimension and value, each
    visit within each of its copies. None for a table shaped like `events`."""
    return [ev.c[SLICE_DIMENSION], ev.c[SLICE]] if SLICE in ev.c else []


def in_range(stmt: Select, filters: Scope, ev: FromClause = EVENTS) -> Select:
    """Restrict a SELECT on `ev` to the filters' site and [start, end) period only."""
    stmt = stmt.where(ev.c.site_id == filters.site.id)
    if filters.start is not None:
        stmt = stmt.where(ev.c.occurred_at >= filters.start)
    if filters.end is not None:
        stmt = stmt.where(ev.c.occurred_at < filters.end)
    return stmt


def scoped(stmt: Select, filters: Scope, ev: FromClause = EVENTS) -> Select:
    """Restrict a SELECT on `ev` to the filters' site, [start, end) period and segment."""
    stmt = in_range(stmt, filters, ev)
    segment = getattr(filters, "segment", None)
    if segment:
        from .segment import clauses  # it builds on `visit`, defined here

        stmt = stmt.where(*clauses(segment, filters, ev))
    return stmt


def frame(stmt: Select, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame (column names from the labels)."""
    result = db.session.execute(stmt)
    names = list(columns) if columns is not None else list(result.keys())
    return pd.DataFrame([tuple(row) for row in result], columns=names)


def percent(part: Any, whole: Any) -> Any:
    """part / whole * 100 rounded to 0.1, NaN (or None for scalars) where whole is 0."""
    if isinstance(part, pd.Series):
        whole = pd.Series(whole, index=part.index) if not isinstance(whole, pd.Series) else whole
        return (part * 100.0 / whole.where(whole != 0)).round(1)
    return round(part * 100.0 / whole, 1) if whole else None


# --- metrics: raw counts that rollups can store per day ------------------------------------

Counts = Callable[[Scope, FromClause], pd.DataFrame]


@dataclass(frozen=True)
class Metric:
    """A raw-count query whose per-day results add up to the result over any range of days.

    `counts(scope, ev)` returns one row per group: the `keys` columns, then the `measures`
    columns, all counts that add up across disjoint sets of visitors and visits. `grain` is the
    time bucket a stored day is counted in when a key is the time bucket ('hour' or 'day'); a
    read regroups the stored buckets into the range's own. `all_time` metrics are also kept as
    one sum over every day, for readers that ask for everything (`GET /statistics`).
    """

    name: str
    counts: Counts
    keys: tuple[str, ...]
    measures: tuple[str, ...]
    grain: str | None = None
    all_time: bool = False


METRICS: dict[str, Metric] = {}


def metric(
    name: str,
    keys: Sequence[str],
    measures: Sequence[str],
    grain: str | None = None,
    all_time: bool = False,
) -> Callable[[Counts], Counts]:
    """Register a raw-count query as a metric that rollups store (see `Metric`)."""

    def register(fn: Counts) -> Counts:
        METRICS[name] = Metric(name, fn, tuple(keys), tuple(measures), grain, all_time)
        return fn

    return register


_reference: contextvars.ContextVar[bool] = contextvars.ContextVar("raw_stats", default=False)


@contextlib.contextmanager
def reference() -> Iterator[None]:
    """Compute every stats function from raw events inside this block (the exactness oracle)."""
    token = _reference.set(True)
    try:
        yield
    finally:
        _reference.reset(token)


def use_rollups() -> bool:
    """Whether reads go through rollups: on unless ROLLUPS is off or inside `reference()`."""
    if _reference.get():
        return False
    return not has_app_context() or bool(current_app.config.get("ROLLUPS", True))


def counts(name: str, filters: Scope) -> pd.DataFrame:
    """A metric's counts over the filters' range: from rollups when they are on, else raw.

    Under one filter of one value, an Overview metric adds that value's split day counts
    (rollups/slices.py); under other visit- and event-level filters, it counts what they keep
    of the split days' stored visits (rollups/visits.py). Another segmented view is counted
    from raw events: on PostgreSQL a page copies the events its segment keeps once
    (`segment_events`), and every metric reads the copy; the reference reads `events` itself.
    """
    found = METRICS[name]
    if segment := getattr(filters, "segment", None):
        if use_rollups():
            from ..rollups import slices, visits
            from .segment import segment_events

            if name in slices.SPLIT and (split := slices.splittable(segment)) is not None:
                from ..rollups.read import combine_split

                return combine_split(found, filters, *split)
            if name in slices.SPLIT and visits.answers(segment):
                from ..rollups.read import combine_visits

                return combine_visits(found, filters)

            if (copied := segment_events(filters)) is not None:
                return found.counts(copied[1], copied[0])
        return found.counts(filters, EVENTS)
    if not use_rollups():
        return found.counts(filters, EVENTS)
    from ..rollups.read import combine

    return combine(found, filters)
