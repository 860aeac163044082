"""A segment (analytics/segments.py) as SQL conditions on a table shaped like `events`.

`clauses` gives WHERE conditions that `base.scoped` adds to every stats query, so each metric,
table and CSV honours the filters with its SQL unchanged. Event-level filters compare the
event's own column; visit-level ones keep the events of the visits that match, judged within the
same site and period: by the visit's entry page view for `entry`, `referrer` and `utm_*`, and by
its first event for `browser`, `os`, `device` and `country`, and by whether it reached the goal
for `goal`. Values compare as text; a negated
filter also keeps rows and visits that have no value.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from flask import has_request_context, request
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    FromClause,
    String,
    and_,
    any_,
    case,
    cast,
    column,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    text,
)

from .. import replica
from ..extensions import db
from ..goals import condition as goal_condition
from ..goals import goals_of, target
from ..segments import DIRECT, GOAL, Condition, Segment
from ..vocabulary import PAGEVIEW
from .base import EVENTS, in_range, scoped, visit
from .dialect import dialect, url_host, without_nested_loops

EVENT_COLUMNS = {"path": "path", "name": "name", "item": "item_id", "source": "source",
                  "category": "category"}  # fmt: skip


def prop_value(ev: FromClause, key: str) -> ColumnElement:
    """An event property's value as text (None when the event has no such property)."""
    if dialect() == "postgresql":
        return func.jsonb_extract_path_text(ev.c.props, literal(key))
    path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return cast(func.json_extract(ev.c.props, literal(path)), String)


def matches(column: ColumnElement, condition: Condition) -> ColumnElement:
    """`column` holds one of the condition's values (negated: none of them, or no value)."""
    values = list(condition.values)
    if condition.negated:
        return or_(column.is_(None), column.not_in(values))
    return column.in_(values)


def _event_clause(ev: FromClause, condition: Condition) -> ColumnElement:
    key = condition.prop_key
    column = prop_value(ev, key) if key is not None else ev.c[EVENT_COLUMNS[condition.dimension]]
    return matches(column, condition)


def _first_per_visit(
    name: str,
    scope: Any,
    columns: tuple[str, ...],
    event: str | None = None,
    source: FromClause = EVENTS,
) -> Any:
    """Each visit's first event in the site and period (by time, then id), or its first event
    named `event`, among the events of `source`: a subquery of `visit` and `columns`."""
    ev = source.alias(name)
    nth = func.row_number().over(partition_by=visit(ev), order_by=(ev.c.occurred_at, ev.c.id))
    stmt = select(visit(ev).label("visit"), *(ev.c[c] for c in columns), nth.label("nth"))
    stmt = stmt.where(visit(ev).isnot(None))
    if event is not None:
        stmt = stmt.where(ev.c.name == event)
    ranked = in_range(stmt, scope, ev).subquery(f"{name}_ranked")
    return select(ranked).where(ranked.c.nth == 1).subquery(name + "_first")


FIRST_EVENT = ("browser", "os", "device", "country")  # judged by the visit's first event
ENTRY = ("entry", "referrer", "utm_source", "utm_medium", "utm_campaign")  # by its entry


def visit_attributes(
    scope: Any, source: FromClause = EVENTS, entry: bool = True
) -> tuple[Any, ColumnElement, dict[str, ColumnElement]]:
    """Each visit of the scope's site and period in `source`, with the value every visit-level
    filter judges it by: (FROM clause, visit key, {dimension: value}), and the entry page
    view's visitor. Without `entry`, only the first event's dimensions (one window function
    less)."""
    firsts = _first_per_visit("seg_first", scope, FIRST_EVENT, source=source)
    columns: dict[str, ColumnElement] = {name: firsts.c[name] for name in FIRST_EVENT}
    found: Any = firsts
    if entry:
        entry_columns = ("path", "referrer", "utm_source", "utm_medium", "utm_campaign",
                         "visitor_id")  # fmt: skip
        landing = _first_per_visit("seg_entry", scope, entry_columns, PAGEVIEW, source)
        found = firsts.outerjoin(landing, landing.c.visit == firsts.c.visit)
        columns |= {
            "entry": landing.c.path,
            "entry_visitor": landing.c.visitor_id,  # not a filter: for rollups/visits.py
            "utm_source": landing.c.utm_source,
            "utm_medium": landing.c.utm_medium,
            "utm_campaign": landing.c.utm_campaign,
            # A visit with an entry page view and no referrer came direct; one without any
            # page view has no referrer at all.
            "referrer": case(
                (landing.c.visit.is_(None), None),
                else_=func.coalesce(url_host(landing.c.referrer), DIRECT),
            ),
        }
    return found, firsts.c.visit, columns


def matching_visits(segment: Segment, scope: Any, source: FromClause = EVENTS) -> Any:
    """SELECT of the visit keys in the scope that every visit-level condition keeps, judged
    over the events of `source`: by the visit's first event (browser, os, device, country) or
    its entry page view (the rest)."""
    entry = any(c.dimension in ENTRY for c in segment.visit_conditions)
    found, key, columns = visit_attributes(scope, source, entry)
    wheres = [
        _converted(key, c, scope, source)
        if c.dimension == GOAL
        else matches(columns[c.dimension], c)
        for c in segment.visit_conditions
    ]
    return select(key).select_from(found).where(*wheres)


def _goals(site_id: int) -> list:
    """The site's goals, read once per request: every metric of a page builds its statement
    with the segment, and each would read the goals again (a dozen queries on an Overview).
    Kept on the request, not `g`: an app context (and its `g`) can outlive many requests."""
    if not has_request_context():
        return goals_of(site_id)
    cache = request.__dict__.setdefault("segment_goals", {})
    if site_id not in cache:
        cache[site_id] = goals_of(site_id)
    return cache[site_id]


def _converted(
    key: ColumnElement, condition: Condition, scope: Any, source: FromClause
) -> ColumnElement:
    """`key` is (or, negated, is not) a visit with an event of `source` in the scope's site and
    period that reached one of the goals named; a name the site has no goal for reaches nothing."""
    named = [x for x in _goals(scope.site.id) if x.name in condition.values]
    ev = source.alias("seg_goal")
    # An unknown name: a bound false, which SQLAlchemy does not fold into a bare WHERE false
    # (the site and period conditions stay, so the statement still names its one site).
    reached = or_(*(goal_condition(target(x), ev) for x in named)) if named else literal(False)
    visits = in_range(select(visit(ev)).where(visit(ev).isnot(None), reached), scope, ev)
    return key.not_in(visits) if condition.negated else key.in_(visits)


def _visit_keys(segment: Segment, scope: Any, source: FromClause) -> list[str] | None:
    """The matching visits' keys, computed once per request and kept for its other queries.

    On PostgreSQL, inside a request: a page runs a dozen metrics over the same segment and
    period, and finding the visits (window functions over the period's events) is the costly
    part. Elsewhere (SQLite, scripts) None: the caller embeds the query itself.
    """
    if not has_request_context() or dialect() != "postgresql":
        return None
    cache = request.__dict__.setdefault("segment_visits", {})  # not `g`: see `_goals`
    # `source` by identity: events, or the rest of a sliced read (rollups/read.py), whose
    # visits are judged over that rest alone (it holds each of its visits' events whole).
    key = (segment, scope.site.id, scope.start, scope.end, source)
    if key not in cache:
        # The first events and the entry page views are joined on the visit. Over the rest
        # of a split read (a union the planner cannot size) it guessed a few rows and looped
        # over every pair: 198 ms for 2,000 visits of today, growing with their square.
        with without_nested_loops():
            found = db.session.execute(matching_visits(segment, scope, source)).scalars()
            cache[key] = list(found)
    return cache[key]


def segment_events(
    scope: Any, source: FromClause = EVENTS, columns: tuple[str, ...] | None = None
) -> tuple[FromClause, Any] | None:
    """The period's events of `source` (`events`, or the rest of a rollup read) that the
    scope's segment keeps, copied once per request into a temporary table, with the scope to
    read it by (the same, segment done): or None outside a request, on SQLite or on a replica.
    `columns`: those every metric reads (`SPAN_COLUMNS`) unless given.

    Why: an Overview runs a dozen metrics over the same segment and period; each one scanned the
    period's events and tested every row against the segment. Now one statement does that, and
    the metrics read the smaller copy (not analysed: ANALYZE of 21 columns cost more than it
    saved, 110 ms of a 930 ms page at 1 M events). The table goes with the request's transaction,
    which is rolled back at its end (a dashboard request writes nothing); its name is unique, so
    a request that did commit leaves a table no later request can meet. Not on a read replica
    (replica.py): a hot standby refuses CREATE TEMPORARY TABLE, so each metric tests the segment.
    """
    if not has_request_context() or dialect() != "postgresql" or replica.in_use():
        return None
    from ..rollups.read import SPAN_COLUMNS  # the columns every metric reads

    columns = columns or SPAN_COLUMNS
    cache = request.__dict__.setdefault("segment_events", {})  # not `g`: see `_goals`
    # `source` by identity, as in `_visit_keys`
    key = (scope.segment, scope.site.id, scope.start, scope.end, source, columns)
    if key not in cache:
        name = f"segment_events_{secrets.token_hex(6)}"
        listed = ", ".join(columns)
        # Only the columns' types are copied; the site's condition keeps the statement on one
        # shard under Citus (DDL takes no bound parameters, hence the integer in the text).
        site_id = int(scope.site.id)
        db.session.execute(
            text(
                f"CREATE TEMPORARY TABLE {name} AS SELECT {listed} FROM events"
                f" WHERE site_id = {site_id} WITH NO DATA"
            )
        )
        copy = table(name, *(column(c) for c in columns))
        chosen = scoped(select(*(source.c[c] for c in columns)), scope, source)
        db.session.execute(insert(copy).from_select(list(columns), chosen))
        cache[key] = (copy, dataclasses.replace(scope, segment=None))
    return cache[key]


def clauses(segment: Segment, scope: Any, ev: FromClause) -> list[ColumnElement]:
    """WHERE conditions on `ev` that keep only what the segment keeps (visits judged over the
    events of `ev`: the events table, or a part of it that holds its visits whole)."""
    found = [_event_clause(ev, c) for c in segment.event_conditions]
    if segment.visit_conditions:
        keys = _visit_keys(segment, scope, ev)
        if keys is None:
            found.append(visit(ev).in_(matching_visits(segment, scope, ev)))
        else:
            found.append(visit(ev) == any_(literal(keys, ARRAY(String))))
    return [and_(*found)] if found else []
