"""Per-visit rows of split days, so any visit-level filter reads stored days.

Split counts (slices.py) answer one value of one dimension. Several values (`country=FR,BE`), a
negation (`referrer=!www.google.com`) or several visit-level dimensions at once cannot come from
them: distinct visitors do not add across values, nor subtract for a negation. What does add
up is the visits themselves. A visit-level filter keeps or drops whole visits, each judged by
its own values (entry page view, first event); for the day-local visits of a split day those
values are stored with the visit, so the filter becomes a WHERE over these rows, and each
Overview metric is counted over the rows it keeps: distinct visitors over their visitor ids,
which are day-local too, so a count over many days equals the sum of each day's.

`rollup_visits`: a row per visit and distinct (visitor, browser, os, device, country) among its
events, its first row carrying the visit's own measures; `rollup_visit_pages`: its page views
per visitor and path. Both are written with a day's split counts and removed with them, under
the same `sliced` marker, so a read takes them for exactly the days `read._split_plan` stores.
The rest of a range is counted by the metric's SQL under the filter, as for split counts.

Each metric here is the Overview metric's SQL (stats/overview.py) restated over visits; the
property tests hold the two equal (tests/test_slices.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Date,
    FromClause,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
)

from ..extensions import db
from ..models import RollupVisit, RollupVisitPage
from ..segments import Segment
from ..stats.base import Metric, Scope, frame, visit
from ..stats.dialect import seconds_between, text_time, time_bucket, without_nested_loops
from ..stats.overview import UNKNOWN, UTM_KEYS
from ..stats.segment import ENTRY, FIRST_EVENT, matches
from ..vocabulary import PAGEVIEW
from .read import Plan, stored_days

VISITS: FromClause = RollupVisit.__table__
PAGES: FromClause = RollupVisitPage.__table__
WHO = ("visitor_id", "browser", "os", "device", "country")  # a visit's rows, one per distinct
JUDGED = {**{d: d for d in ENTRY}, **{d: f"first_{d}" for d in FIRST_EVENT}}  # filter -> column


def answers(segment: Segment | None) -> bool:
    """Whether the visit rows answer this segment: visit-level conditions only, no goal."""
    return bool(segment) and all(c.dimension in JUDGED for c in segment.conditions)


# --- writing ----------------------------------------------------------------------------------


def write(site_id: int, day: dt.date, local: FromClause, attributes: FromClause) -> None:
    """Store the visits of a day's day-local events (`local`), judged by `attributes` (one row
    per visit: slices.py's temporary table of each visit's filter values)."""
    key = visit(local)
    pageview = func.sum(case((local.c.name == PAGEVIEW, 1), else_=0))
    who = [local.c[c] for c in WHO]
    parts = (
        select(
            key.label("visit"), *who, func.count().label("events"), pageview.label("pageviews"),
            func.row_number().over(partition_by=key, order_by=who).label("part"),
        )
        .where(key.isnot(None))
        .group_by(key, *who)
        .subquery("visit_parts")
    )  # fmt: skip
    span = seconds_between(func.min(local.c.occurred_at), func.max(local.c.occurred_at))
    whole = (
        select(key.label("visit"), func.count().label("events"),
               pageview.label("pageviews"), span.label("seconds"))
        .where(key.isnot(None))
        .group_by(key)
        .subquery("visit_whole")
    )  # fmt: skip
    first = parts.c.part == 1
    bounced = and_(first, whole.c.events == 1, whole.c.pageviews == 1)
    rows = select(
        literal(site_id), literal(day, Date), parts.c.visit, parts.c.part,
        *(parts.c[c] for c in WHO),
        *(attributes.c[d] for d in JUDGED), attributes.c.entry_visitor,
        case((first, 1), else_=0), parts.c.events, parts.c.pageviews,
        case((bounced, 1), else_=0), case((first, whole.c.seconds), else_=0.0),
    ).select_from(
        parts.join(whole, whole.c.visit == parts.c.visit).join(
            attributes, attributes.c.visit == parts.c.visit
        )
    )  # fmt: skip
    names = ["site_id", "day", "visit", "part", *WHO, *JUDGED.values(), "entry_visitor",
             "visits", "events", "pageviews", "bounces", "seconds"]  # fmt: skip
    viewed = [local.c.visitor_id, local.c.path]
    pages = (
        select(
            literal(site_id), literal(day, Date), key,
            func.row_number().over(partition_by=key, order_by=viewed),
            *viewed, func.count(),
        )
        .where(key.isnot(None), local.c.name == PAGEVIEW, local.c.path.isnot(None))
        .group_by(key, *viewed)
    )  # fmt: skip
    # Joins of temporary tables without statistics: PostgreSQL would guess a few rows and
    # compare every pair (slices.py measured it).
    with without_nested_loops():
        db.session.execute(insert(VISITS).from_select(names, rows))
        db.session.execute(
            insert(PAGES).from_select(
                ["site_id", "day", "visit", "part", "visitor_id", "path", "pageviews"], pages
            )
        )


def remove(site_id: int, day: dt.date) -> None:
    """Remove the day's visit rows (with its split counts, whenever those go)."""
    for table in (VISITS, PAGES):
        db.session.execute(delete(table).where(table.c.site_id == site_id, table.c.day == day))


# --- reading ----------------------------------------------------------------------------------

# (conditions on rollup_visits: the site, the plan's stored days, the filters; scope; plan)
Reader = Callable[[list[ColumnElement], Scope, Plan], pd.DataFrame]
READERS: dict[str, Reader] = {}


def reader(name: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return register


def stored(metric: Metric, filters: Scope, p: Plan) -> pd.DataFrame:
    """The metric over the kept visits of the plan's stored days (the split ones)."""
    if p.first_day is None:
        return pd.DataFrame(columns=[*metric.keys, *metric.measures])
    where = [VISITS.c.site_id == p.site_id, stored_days(VISITS.c.day, p)]
    where += [matches(VISITS.c[JUDGED[c.dimension]], c) for c in filters.segment.conditions]
    return READERS[metric.name](where, filters, p)


def _visitors(column: ColumnElement = VISITS.c.visitor_id) -> ColumnElement:
    return func.count(column.distinct()).label("visitors")


def _sum(name: str) -> ColumnElement:
    return func.coalesce(func.sum(VISITS.c[name]), 0).label(name)


@reader("summary")
def _summary(where: list, filters: Scope, p: Plan) -> pd.DataFrame:
    measures = [_sum(name) for name in ("visits", "pageviews", "bounces", "seconds")]
    return frame(select(_visitors(), *measures).where(*where))


@reader("events")
def _events(where: list, filters: Scope, p: Plan) -> pd.DataFrame:
    return frame(select(_sum("events")).where(*where))


@reader("traffic_day")
def _traffic(where: list, filters: Scope, p: Plan) -> pd.DataFrame:
    bucket = time_bucket(text_time(VISITS.c.day), filters.bucket).label("bucket")
    stmt = select(bucket, _sum("pageviews"), _visitors()).where(*where).group_by(bucket)
    return frame(stmt)


@reader("pages")
def _pages(where: list, filters: Scope, p: Plan) -> pd.DataFrame:
    on = and_(
        VISITS.c.site_id == PAGES.c.site_id, VISITS.c.day == PAGES.c.day,
        VISITS.c.visit == PAGES.c.visit, VISITS.c.visits == 1,
    )  # fmt: skip
    stmt = (
        select(PAGES.c.path, func.sum(PAGES.c.pageviews).label("pageviews"),
               _visitors(PAGES.c.visitor_id))
        .select_from(PAGES.join(VISITS, on))
        # the same bounds on the pages too, for their own key's index
        .where(*where, PAGES.c.site_id == p.site_id, stored_days(PAGES.c.day, p))
        .group_by(PAGES.c.path)
    )  # fmt: skip
    return frame(stmt)


def _entry_reader(name: str, *keys: Callable[[], ColumnElement], only=None) -> None:
    """Visits and their entry page view's distinct visitors, by the visit's entry values (a
    visit with no page view has none: its referrer, always set otherwise, is NULL)."""

    def read(where: list, filters: Scope, p: Plan) -> pd.DataFrame:
        columns = [k() for k in keys]
        kept = [*where, VISITS.c.visits == 1, VISITS.c.referrer.isnot(None)]
        if only is not None:
            kept.append(only())
        stmt = (
            select(*columns, func.count().label("visits"), _visitors(VISITS.c.entry_visitor))
            .where(*kept)
            .group_by(*columns)
        )
        return frame(stmt)

    reader(name)(read)


_entry_reader("entry_pages", lambda: func.coalesce(VISITS.c.entry, UNKNOWN).label("path"))
_entry_reader("referrers", lambda: VISITS.c.referrer.label("referrer"))
_entry_reader(
    "utm",
    *(lambda k=k: func.coalesce(VISITS.c[k], "").label(k) for k in UTM_KEYS),
    only=lambda: or_(*(VISITS.c[k].isnot(None) for k in UTM_KEYS)),
)


def _visitors_reader(name: str) -> None:
    """Distinct visitors by one of the visit rows' own browser, os, device or country."""

    def read(where: list, filters: Scope, p: Plan) -> pd.DataFrame:
        value = VISITS.c[name]
        stmt = (
            select(value.label(name), _visitors())
            .where(*where, VISITS.c.visitor_id.isnot(None), value.isnot(None))
            .group_by(value)
        )
        return frame(stmt)

    reader(name)(read)


for _name in ("browser", "os", "device", "country"):
    _visitors_reader(_name)
