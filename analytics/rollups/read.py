"""Answer a metric over any range from the rollups, exactly.

Why adding days is exact. Counts of events add up across days, but distinct visitors and visits
do not when one visitor or visit has events on several days. The refresher therefore splits each
day's events in two sets that share no visitor and no visit:

- *span* events: every event of a visitor or visit seen on more than one day, and of whatever
  visitor or visit shares an event with those (closed over, within the day). They are copied to
  `rollup_span_events`, and a read counts them with the metric's raw SQL over the whole range;
- *day-local* events: everything else. Each of their visitors and visits lives within one day,
  so the day's stored counts of them simply add up over the range.

Because the two sets share no visitor and no visit, every metric of the one adds to the same
metric of the other. Parts of a range that are not whole stored days (a range starting at 10:00,
a day never built yet) are read from `events` itself and join the span side.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import pandas as pd
from flask import has_request_context, request
from sqlalchemy import FromClause, and_, func, or_, select, union_all

from ..extensions import db
from ..models import Event, RollupFact, RollupQueue, RollupSpanEvent
from ..stats.base import SLICE, Metric, Scope
from ..stats.dialect import text_time, time_bucket

DAY = dt.timedelta(days=1)
BUILT = "built"  # the marker fact every computed day has, whatever its events
# The columns every metric reads; span events and a refresh's day-local events also keep the
# properties (WITH_PROPS), which only a `prop.KEY` filter reads.
SPAN_COLUMNS = tuple(
    c.name for c in RollupSpanEvent.__table__.columns if c.name not in ("day", "props")
)
WITH_PROPS = (*SPAN_COLUMNS, "props")
COUNT_COLUMNS = ("n1", "n2", "n3", "n4")


@dataclass(frozen=True)
class Plan:
    """Which days of a range come from stored facts, and which times from raw events."""

    site_id: int
    first_day: dt.date | None  # stored days: [first_day, end_day) minus `unbuilt`
    end_day: dt.date | None
    unbuilt: tuple[dt.date, ...]
    raw: tuple[tuple[dt.datetime | None, dt.datetime | None], ...]  # read from events
    everything: bool = False  # no start and no end: every stored day


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def plan(site_id: int, start: dt.datetime | None, end: dt.datetime | None) -> Plan:
    """Split [start, end) into whole stored days and the times to read raw."""
    everything = start is None and end is None
    if start is None:
        first = db.session.execute(
            select(func.min(Event.occurred_at)).where(Event.site_id == site_id)
        ).scalar_one()
        start = _midnight(first.date()) if first is not None else None
    if end is None:
        end = _midnight(dt.datetime.now(dt.UTC).date()) + 2 * DAY
    if start is None:
        return Plan(site_id, None, None, (), ())
    first_day = (start - dt.timedelta(microseconds=1)).date() + DAY
    end_day = end.date()
    if first_day >= end_day:
        return Plan(site_id, None, None, (), ((start, end),))
    raw = []
    if start < _midnight(first_day):
        raw.append((start, _midnight(first_day)))
    if _midnight(end_day) < end:
        raw.append((_midnight(end_day), end))
    # Queued days never built yet are read raw (queued days already built are read as stored:
    # at most one refresh behind). Two small queries: a busy day has many queue rows.
    queued = db.session.execute(
        select(RollupQueue.day)
        .where(
            RollupQueue.site_id == site_id,
            RollupQueue.day >= first_day,
            RollupQueue.day < end_day,
        )
        .distinct()
    ).scalars().all()
    built = set()
    if queued:
        built = set(
            db.session.execute(
                select(RollupFact.day).where(
                    RollupFact.site_id == site_id,
                    RollupFact.metric == BUILT,
                    RollupFact.day.in_(queued),
                )
            ).scalars()
        )
    unbuilt = tuple(sorted(day for day in queued if day not in built))
    raw.extend((_midnight(day), _midnight(day) + DAY) for day in unbuilt)
    return Plan(site_id, first_day, end_day, unbuilt, tuple(raw), everything)


def _cached_plan(filters: Scope) -> Plan:
    """One plan per range and request: a page asks for a dozen metrics over the same range."""
    key = (filters.site.id, filters.start, filters.end)
    if not has_request_context():
        return plan(*key)
    # On the request, not `g`: an app context (and its `g`) can outlive many requests.
    plans = request.__dict__.setdefault("rollup_plans", {})
    if key not in plans:
        plans[key] = plan(*key)
    return plans[key]


ALL_TIME = dt.date(1970, 1, 1)  # the `day` of all-time sums


def total_metric(name: str) -> str:
    """The name under which an all-time metric's sum over every day is stored."""
    return f"t:{name}"


def month_metric(name: str) -> str:
    """The name under which a metric's month sums are stored (day = the month's first day)."""
    return f"m:{name}"


def _months(p: Plan) -> list[dt.date]:
    """First days of the months wholly inside the plan's stored days, none of them unbuilt."""
    out = []
    month = p.first_day.replace(day=1)
    if month < p.first_day:
        month = next_month(month)
    while next_month(month) <= p.end_day:
        if not any(month <= d < next_month(month) for d in p.unbuilt):
            out.append(month)
        month = next_month(month)
    return out


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def stored_days(column, p: Plan, months: list[dt.date] | None = None):
    """Stored days of the plan, minus those the month sums in `months` stand for."""
    where = [column >= p.first_day, column < p.end_day, column.notin_(p.unbuilt)]
    where += [or_(column < m, column >= next_month(m)) for m in months or ()]
    return and_(*where)


@functools.lru_cache(maxsize=256)
def _rest(p: Plan, props: bool = False) -> FromClause:
    """Span events of the stored days plus raw events of the other times, shaped like events
    (with their properties too when `props`: for a property filter).

    Kept per plan (a plan is a value; the subquery reads no database): a page reads a dozen
    metrics over the same plan, and building the 21-column union again for each cost Python
    time in every one of them.
    """
    span = RollupSpanEvent.__table__
    columns = WITH_PROPS if props else SPAN_COLUMNS
    parts = []
    if p.first_day is not None:
        parts.append(
            select(*(span.c[c] for c in columns)).where(
                span.c.site_id == p.site_id, stored_days(span.c.day, p)
            )
        )
    if p.raw:
        ev = Event.__table__
        times = [
            and_(
                ev.c.occurred_at >= a if a is not None else True,
                ev.c.occurred_at < b if b is not None else True,
            )
            for a, b in p.raw
        ]
        parts.append(
            select(*(ev.c[c] for c in columns)).where(ev.c.site_id == p.site_id, or_(*times))
        )
    if not parts:  # an empty range: a query that yields no row, with the right columns
        parts.append(select(*(span.c[c] for c in columns)).where(span.c.site_id == -1))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("ev")


def stored_columns(metric: Metric) -> dict[str, str]:
    """Where each of a metric's columns is stored in rollup_facts: k1..k4, n1..n4 and x."""
    out = {key: f"k{i}" for i, key in enumerate(metric.keys, start=1)}
    counts = iter(COUNT_COLUMNS)
    for measure in metric.measures:
        out[measure] = "x" if measure == "seconds" else next(counts)
    return out


def _stored(metric: Metric, p: Plan, bucket: str, value: str | None = None) -> pd.DataFrame:
    """The metric's day-local counts, summed over the stored days of the plan: the month sums
    of whole months (a year is 12 rows per group, not 365), the day rows of the rest. With a
    `value`, the metric is a split one (slices.py) and only that value's counts are read."""
    columns = stored_columns(metric)
    keys_out = [k for k in metric.keys if value is None or k != SLICE]
    if p.first_day is None:
        return pd.DataFrame(columns=[*keys_out, *metric.measures])
    fact = RollupFact.__table__
    # The all-time sum holds one row per group already (refresh_totals): read as it is. Its
    # GROUP BY sorted 14,000 rows of text keys for `GET /statistics` (17 of its 37 ms).
    total = metric.all_time and p.everything and not p.unbuilt and "bucket" not in metric.keys
    if total:
        where = and_(fact.c.metric == total_metric(metric.name), fact.c.day == ALL_TIME)
    elif value is not None:  # split counts have day rows only
        where = and_(
            fact.c.metric == metric.name, fact.c.k1 == value, stored_days(fact.c.day, p)
        )
    else:
        months = [] if "bucket" in metric.keys else _months(p)
        where = and_(fact.c.metric == metric.name, stored_days(fact.c.day, p, months))
        if months:
            where = or_(
                where, and_(fact.c.metric == month_metric(metric.name), fact.c.day.in_(months))
            )
    # A stored hour or day regroups into the range's own bucket in SQL: a year by week is 52
    # rows per group to fetch, not 365.
    keys = [
        time_bucket(text_time(fact.c[columns[k]]), bucket).label(k)
        if k == "bucket"
        else fact.c[columns[k]].label(k)
        for k in keys_out
    ]
    sums = [
        (fact.c[columns[m]] if total else func.sum(fact.c[columns[m]])).label(m)
        for m in metric.measures
    ]
    stmt = select(*keys, *sums).where(fact.c.site_id == p.site_id, where)
    if keys and not total:
        stmt = stmt.group_by(*keys)
    rows = db.session.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=[*keys_out, *metric.measures])
    if not keys:
        df = df.dropna()  # SUM over no row is one row of NULLs
    return df


def key_text(value) -> str:
    """A group key as stored in rollup_facts: text, '' for a missing one (None or NaN)."""
    if value.__class__ is str:
        return value
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def combine(metric: Metric, filters: Scope) -> pd.DataFrame:
    """The metric over the filters' range: stored day-local counts + raw SQL over the rest."""
    p = _cached_plan(filters)
    return _add(metric, _stored(metric, p, filters.bucket), metric.counts(filters, _rest(p)))


def combine_split(metric: Metric, filters: Scope, dimension: str, value: str) -> pd.DataFrame:
    """The metric under a one-value filter (`dimension` = `value`, the filters' segment): the
    value's stored split counts of the split days + the metric's SQL, segment and all, over the
    rest, whose visits are judged over that rest alone (it holds each of them whole)."""
    from .slices import split_metric

    p = _split_plan(filters)
    stored = _stored(split_metric(metric, dimension), p, filters.bucket, value)
    return _add(metric, stored, _rest_counts(metric, filters, p))


def combine_visits(metric: Metric, filters: Scope) -> pd.DataFrame:
    """The metric under visit-level filters that split counts do not answer (visits.py): the
    kept visits of the split days + the metric's SQL, segment and all, over the rest."""
    from .visits import stored

    p = _split_plan(filters)
    return _add(metric, stored(metric, filters, p), _rest_counts(metric, filters, p))


def _rest_counts(metric: Metric, filters: Scope, p: Plan) -> pd.DataFrame:
    """The metric's SQL, segment and all, over the rest of a split read. Under a visit-level
    filter, on PostgreSQL, the events of the rest the segment keeps are copied once per request
    (`segment_events`), and each metric reads the copy: testing each event's visit against the
    kept ones in each of a dozen statements over today's events took about half of such an
    Overview's database time. An event-level test is cheap: copying would cost more."""
    from ..stats.segment import segment_events

    props = any(c.is_prop for c in filters.segment.conditions)
    rest = _rest(p, props)
    if filters.segment.visit_conditions and (
        copied := segment_events(filters, rest, WITH_PROPS if props else None)
    ):
        return metric.counts(copied[1], copied[0])
    return metric.counts(filters, rest)


def _split_plan(filters: Scope) -> Plan:
    """The plan of a split read: its stored days are the split ones; the other days and the
    partial times are read raw. One per range and request, as `_cached_plan`."""
    from .slices import SLICED

    cache = request.__dict__.setdefault("rollup_plans", {}) if has_request_context() else {}
    key = (filters.site.id, filters.start, filters.end, SLICED)
    if key in cache:
        return cache[key]
    base = _cached_plan(filters)
    if base.first_day is None:
        return base
    # Days built and not split (today, a day recounted in part since) are read raw, as are
    # the days never built; a day with neither marker has no events.
    fact = RollupFact.__table__
    marked: dict[str, set[dt.date]] = {BUILT: set(), SLICED: set()}
    for name, day in db.session.execute(
        select(fact.c.metric, fact.c.day).where(
            fact.c.site_id == base.site_id,
            fact.c.metric.in_([BUILT, SLICED]),
            fact.c.day >= base.first_day,
            fact.c.day < base.end_day,
        )
    ):
        marked[name].add(day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10]))
    missing = sorted((marked[BUILT] - marked[SLICED]) | set(base.unbuilt))
    whole_days = {(_midnight(d), _midnight(d) + DAY) for d in base.unbuilt}
    raw = [r for r in base.raw if r not in whole_days]
    for day in missing:  # consecutive days as one range: a shorter statement
        if raw and raw[-1][1] == _midnight(day):
            raw[-1] = (raw[-1][0], _midnight(day) + DAY)
        else:
            raw.append((_midnight(day), _midnight(day) + DAY))
    cache[key] = Plan(base.site_id, base.first_day, base.end_day, tuple(missing), tuple(raw))
    return cache[key]


def _add(metric: Metric, stored: pd.DataFrame, rest: pd.DataFrame) -> pd.DataFrame:
    """Stored counts + counts of the rest, added per group."""
    for key in metric.keys:  # stored keys are text; make the raw side's alike
        if key != "bucket":
            rest[key] = [key_text(v) for v in rest[key]]
    if "bucket" in metric.keys:
        stored["bucket"] = pd.to_datetime(stored["bucket"])
        rest["bucket"] = pd.to_datetime(rest["bucket"])
    parts = [df for df in (stored, rest) if not df.empty]
    if not parts:
        return rest
    both = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if metric.keys:
        both = both.groupby(list(metric.keys), as_index=False, sort=False)[
            list(metric.measures)
        ].sum()
    else:
        both = both[list(metric.measures)].sum().to_frame().T
    for measure in metric.measures:
        if measure != "seconds":
            both[measure] = both[measure].astype("int64")
    return both
