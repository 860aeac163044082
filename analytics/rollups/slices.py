"""Day counts split by one filter's value, so a filtered Overview reads stored days too.

A filter of one dimension and one value (`country=FR`, `referrer=www.google.com`, `path=/x`)
keeps, of a day's day-local events (read.py), a set that is day-local still: a visit-level
filter keeps whole visits, each judged by its own events, all of them in that day; an
event-level one keeps single events. So each Overview metric, counted per day and per value over
the events each value keeps, adds up over days exactly as the unfiltered counts do. The rest of
a range (span events, raw times) is counted under the filter by the metric's SQL, its visits
judged over that rest, which holds each of its visits whole: the same split as unfiltered.

Stored in rollup_facts: `<metric>@<code>` with the value in k1 and the metric's own keys after
it, for every metric of SPLIT and dimension of DIMENSIONS, and a `sliced` marker per day. A day
is split once it has ended: when its facts are built (refresh.py), or later by `split_missing`.
A partial recount removes the day's split rows (delta.py), a whole one replaces every fact of
it; a read takes a day without the marker from raw events. The day's stored visits go with its
split counts (visits.py answers the other visit- and event-level filters from them); property
and goal filters are read from raw events (stats/segment.py).

One pass per metric and day: the day's events are copied once per dimension into a temporary
table with the dimension and its value, and each metric groups by both.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Column,
    DateTime,
    FromClause,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    column,
    delete,
    exists,
    insert,
    literal,
    select,
)
from sqlalchemy import table as sql_table

from ..extensions import db
from ..models import RollupFact, RollupQueue, utcnow
from ..segments import Segment
from ..stats.base import METRICS, SLICE, SLICE_DIMENSION, Metric, visit
from ..stats.dialect import without_nested_loops
from ..stats.segment import ENTRY, EVENT_COLUMNS, FIRST_EVENT, visit_attributes
from . import visits
from .read import BUILT, SPAN_COLUMNS
from .store import DAY, DayScope, SiteRef, drop, marker_row, metric_rows, midnight

SLICED = "sliced"  # the marker of a day whose split counts are stored
# Filter dimension -> its code in a split metric's name (rollup_facts.metric is 24 characters).
DIMENSIONS = {
    "entry": "en", "referrer": "re", "utm_source": "us", "utm_medium": "um",
    "utm_campaign": "uc", "browser": "br", "os": "os", "device": "de", "country": "co",
    "path": "pa", "name": "na", "item": "it", "source": "so", "category": "ca",
}  # fmt: skip
# The Overview's metrics (its cards, its chart by day, and its empty state).
SPLIT = (
    "summary", "traffic_day", "pages", "entry_pages", "referrers", "utm",
    "browser", "os", "device", "country", "events",
)  # fmt: skip
TAGGED = "rollup_split_events"
ATTRIBUTES = "rollup_visit_attributes"
_VISIT_LEVEL = (*ENTRY, *FIRST_EVENT)  # the dimensions judged per visit


def split_name(metric: str, dimension: str) -> str:
    return f"{metric}@{DIMENSIONS[dimension]}"


def split_metric(metric: Metric, dimension: str) -> Metric:
    """The metric as stored split by `dimension`: the value is its first key."""
    return Metric(
        split_name(metric.name, dimension), metric.counts, (SLICE, *metric.keys),
        metric.measures, metric.grain,
    )  # fmt: skip


def stored_names() -> list[str]:
    """Every split metric's name, and the marker: what a partial recount of a day removes."""
    return [split_name(m, d) for m in SPLIT for d in DIMENSIONS] + [SLICED]


def splittable(segment: Segment | None) -> tuple[str, str] | None:
    """(dimension, value) when the segment is one filter that split counts answer, else None."""
    if not segment or len(segment.conditions) != 1:
        return None
    (condition,) = segment.conditions
    if condition.negated or len(condition.values) != 1 or condition.dimension not in DIMENSIONS:
        return None
    value = condition.values[0]
    return (condition.dimension, value) if value else None


def _attributes_table() -> Table:
    return Table(
        ATTRIBUTES, MetaData(),
        Column("visit", String, primary_key=True),
        *(Column(name, String) for name in (*_VISIT_LEVEL, "entry_visitor")),
        prefixes=["TEMPORARY"],
    )  # fmt: skip


def _tagged_table() -> Table:
    types = {"occurred_at": DateTime, "id": Uuid, "site_id": Integer, "item_position": Integer,
             "list_size": Integer, "schema_version": Integer}  # fmt: skip
    return Table(
        TAGGED, MetaData(),
        *(Column(name, types.get(name, String)) for name in SPAN_COLUMNS),
        Column(SLICE_DIMENSION, String), Column(SLICE, String),
        prefixes=["TEMPORARY"],
    )  # fmt: skip


def _tag(site_id: int, day: dt.date, local: FromClause) -> FromClause:
    """Copy the day's events once per dimension, each with its value there (events without one
    are left out: a filter on that dimension keeps none of them)."""
    scope = DayScope(SiteRef(site_id), midnight(day), midnight(day) + DAY)
    drop(TAGGED, ATTRIBUTES)
    connection = db.session.connection()
    attributes, tagged = _attributes_table(), _tagged_table()
    attributes.create(connection)
    tagged.create(connection)
    found, key, values = visit_attributes(scope, local)
    # The first events and the entries are joined on the visit: with no statistics on the
    # temporary table, PostgreSQL guessed a few rows and looped over every pair (7.7 s for a
    # day of 25,000 events; a hash join takes a fraction of a second).
    with without_nested_loops():
        db.session.execute(
            insert(attributes).from_select(
                ["visit", *_VISIT_LEVEL, "entry_visitor"],
                select(key, *(values[name] for name in (*_VISIT_LEVEL, "entry_visitor")))
                .select_from(found),
            )
        )
    names = [*SPAN_COLUMNS, SLICE_DIMENSION, SLICE]
    for dimension, code in DIMENSIONS.items():
        if dimension in _VISIT_LEVEL:
            value = attributes.c[dimension]
            source = local.join(attributes, visit(local) == attributes.c.visit)
        else:
            value, source = local.c[EVENT_COLUMNS[dimension]], local
        chosen = select(*(local.c[c] for c in SPAN_COLUMNS), literal(code), value).select_from(
            source
        )
        db.session.execute(insert(tagged).from_select(names, chosen.where(value.isnot(None))))
    return sql_table(TAGGED, *(column(c) for c in names))


def fact_rows(site_id: int, day: dt.date, local: FromClause) -> list[tuple]:
    """The split counts of a day's day-local events (`local`), as rollup_facts tuples, with the
    day's marker; its stored visits (visits.py) are written here."""
    tagged = _tag(site_id, day, local)
    visits.write(site_id, day, local, _attributes_table())
    codes = {code: dimension for dimension, code in DIMENSIONS.items()}
    rows: list[tuple] = []
    start = midnight(day)
    for name in SPLIT:
        metric = METRICS[name]
        scope = DayScope(SiteRef(site_id), start, start + DAY, metric.grain or "day")
        counted = metric.counts(scope, tagged)
        named = [split_name(name, codes[code]) for code in counted[SLICE_DIMENSION].tolist()]
        shape = split_metric(metric, next(iter(DIMENSIONS)))  # every dimension's: the same keys
        body = counted.drop(columns=SLICE_DIMENSION)
        rows.extend(metric_rows(shape, site_id, day, body, named))
    drop(TAGGED, ATTRIBUTES)
    rows.append(marker_row(site_id, SLICED, day))
    return rows


def ended(day: dt.date) -> bool:
    """Whether the day is over (UTC): only such a day is split; today changes all day long."""
    return day < utcnow().date()


def remove(site_id: int, day: dt.date) -> None:
    """Remove the day's split counts and stored visits (a partial recount changed what is
    day-local)."""
    visits.remove(site_id, day)
    db.session.execute(
        delete(RollupFact).where(
            RollupFact.site_id == site_id,
            RollupFact.day == day,
            RollupFact.metric.in_(stored_names()),
        )
    )


def missing(site_id: int | None = None, limit: int = 4) -> list[tuple[int, dt.date]]:
    """Built days that have ended, have no split counts, and wait for no recount: newest first."""
    built, marked = RollupFact.__table__.alias("built"), RollupFact.__table__.alias("marked")
    stmt = (
        select(built.c.site_id, built.c.day)
        .where(
            built.c.metric == BUILT,
            built.c.day < utcnow().date(),
            ~exists().where(
                marked.c.site_id == built.c.site_id,
                marked.c.metric == SLICED,
                marked.c.day == built.c.day,
            ),
            ~exists().where(
                and_(RollupQueue.site_id == built.c.site_id, RollupQueue.day == built.c.day)
            ),
        )
        .order_by(built.c.day.desc(), built.c.site_id)
        .limit(limit)
    )
    if site_id is not None:
        stmt = stmt.where(built.c.site_id == site_id)
    else:  # under Citus, one small query to every shard (joined on site_id), once a round
        stmt = stmt.prefix_with("/* all sites: the refresher finds every site's days to split */")
    return [(s, d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]))
            for s, d in db.session.execute(stmt)]  # fmt: skip

