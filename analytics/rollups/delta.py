"""Recount a built day from the rows added since its last refresh, not from all of its rows.

A whole-day recount reads every event of the day, so on a busy day each refresh takes longer and
the lag of today grows with today (900,000 events: over a minute under load). The insert
triggers list the rows each statement added (`rollup_queue.added`). When everything queued for a
built day is such a list, only the visitors and visits those rows touch are recounted:

- the touched keys K: the visitors and visits of the added rows, closed over the day's events
  (whatever shares an event with them). No visitor or visit links the day's other events to K's,
  so their counts stand;
- K's events, split again into span and day-local ones against the other days' presence;
- facts += counts(K's day-local events now) - counts(K's day-local events before), where
  "before" is K's events minus the added rows minus those that were span events. Both are the
  metric SQL itself over a small temporary table. Exact for the reason the day split is: every
  metric adds up over sets of events that share no visitor and no visit.

Deletions and updates (and statements of more rows than the trigger lists) queue the day without
a list, and the day is recounted whole.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import table as sql_table

from ..extensions import db
from ..models import Event, RollupFact, RollupPresence, RollupQueue, RollupSpanEvent
from ..stats.base import visit
from ..stats.dialect import dialect
from . import slices
from .read import BUILT, SPAN_COLUMNS, WITH_PROPS
from .store import (
    DAY,
    FACT_COLUMNS,
    KEY_COLUMNS,
    MEASURES,
    as_date,
    bulk_insert,
    day_literal,
    drop,
    events_table,
    fact_rows,
    midnight,
    param_time,
    set_spans,
    spanning,
    temporary_table,
)

ADDED_LIMIT = 5000  # rows per statement the PostgreSQL trigger lists (migration 0003)
SMALL_DAY = 1000  # touched events below which the partial recount is used whatever the day's size
# Added rows, per event the day held, from which the whole day is recounted instead. CPU per
# added event (client and PostgreSQL) on a day of 20,000 events with unique visitors, partial
# against whole: 10,000 added 146 against 242 us, 20,000 added 114 against 144, 40,000 added
# 105 against 108. Until 2026-12-03 the whole day was recounted from half the day's size, and a
# young day under load (the ingest bench's legacy site) was recounted whole every round.
WHOLE_AFTER = 2

EVENTS = Event.__table__
PRESENCE = RollupPresence.__table__
SPAN = RollupSpanEvent.__table__
_tables = MetaData()
ADDED = Table(
    "rollup_added", _tables,
    Column("occurred_at", DateTime, primary_key=True), Column("id", Uuid, primary_key=True),
    prefixes=["TEMPORARY"],
)  # fmt: skip
KEYS = Table(
    "rollup_touched", _tables,
    Column("kind", String(1), primary_key=True), Column("key", String(64), primary_key=True),
    Column("spans", String(1)),
    prefixes=["TEMPORARY"],
)  # fmt: skip
NOW, BEFORE = "rollup_local_now", "rollup_local_before"
# A copy of the day's events that touch KEYS, made by the closure's last pass: the recount then
# reads this copy, not the day (a test of every event of the day against KEYS, which no index
# serves: 69 ms for a day of 146,000 events, and it was made four times a round).
TOUCHED_EVENTS = "rollup_touched_events"

Key = tuple[str, str]  # ('u', visitor) or ('v', visit)


class RecountWhole(Exception):
    """Recount the day whole instead: the day's events that the added rows touch are most of it
    (one visitor or visit that runs through all of it), so the partial recount would read it
    twice; or the stored counts and the recount disagree (a count would go below zero: never
    expected)."""


def recounts_whole(site_id: int, day: dt.date) -> bool:
    """Whether the day's queued changes need a whole recount (not only added rows listed)."""
    listed = db.session.execute(
        select(RollupQueue.added.is_(None)).where(
            RollupQueue.site_id == site_id, RollupQueue.day == day
        )
    ).scalars().all()
    return not listed or any(listed) or not _built(site_id, day)


def _built(site_id: int, day: dt.date) -> bool:
    return db.session.execute(
        select(RollupFact.id)
        .where(RollupFact.site_id == site_id, RollupFact.metric == BUILT, RollupFact.day == day)
        .limit(1)
    ).first() is not None


def take_queue(site_id: int, day: dt.date, whole: bool = False) -> int | None:
    """Delete the day's queue rows, in the caller's transaction, and list the rows they say
    were added in ADDED; return how many, or None when the day is recounted whole instead (asked
    to, a change not listed, a day not built yet, or so many added that a whole recount costs
    no more).

    The rows are taken in the statement that deletes them: on SQLite a SELECT before the DELETE
    ran outside the write transaction, and a row queued in between was deleted unread (its
    events never counted). On PostgreSQL that statement also writes ADDED from the lists, which
    never leave the database: decoding them in Python (a JSON list per statement, a time and a
    UUID per row) and sending them back through COPY took some 15 % of a round (the refresh
    suite's rounds of 35,000 events, profiled).
    """
    queue = RollupQueue.__table__
    mine = and_(queue.c.site_id == site_id, queue.c.day == day)
    if whole or not _built(site_id, day):
        db.session.execute(delete(queue).where(mine))
        return None
    most = max(WHOLE_AFTER * _day_events(site_id, day), SMALL_DAY)
    drop(ADDED.name)
    ADDED.create(db.session.connection())
    if dialect() == "postgresql":
        copied = db.session.execute(
            text(_TAKE_LISTED), {"site": site_id, "day": day, "most": most}
        ).scalar_one()
        if copied:
            return copied
        drop(ADDED.name)
        return None
    lists = db.session.execute(delete(queue).where(mine).returning(queue.c.added)).scalars().all()
    if not lists or any(a is None for a in lists) or sum(len(a) for a in lists) > most:
        drop(ADDED.name)
        return None
    rows = {(dt.datetime.fromisoformat(str(t)), uuid.UUID(str(i))) for a in lists for t, i in a}
    bulk_insert(ADDED, ("occurred_at", "id"), sorted(rows))
    return len(rows)


# The day's queue rows deleted, and the rows they list copied into ADDED when every one lists
# its rows and they are at most :most (as SQLite's branch of `take_queue` decides in Python).
# A data-modifying WITH runs once, whichever parts read it.
_TAKE_LISTED = f"""
WITH taken AS (
  DELETE FROM rollup_queue WHERE site_id = :site AND day = :day RETURNING added
), listed AS (
  SELECT count(*) > 0 AND count(added) = count(*)
         AND coalesce(sum(jsonb_array_length(added)), 0) <= :most AS partial
  FROM taken
), copied AS (
  INSERT INTO {ADDED.name} (occurred_at, id)
  SELECT DISTINCT (a.value ->> 0)::timestamp, (a.value ->> 1)::uuid
  FROM taken CROSS JOIN LATERAL jsonb_array_elements(taken.added) AS a
  WHERE (SELECT partial FROM listed)
  RETURNING 1
)
SELECT count(*) FROM copied
"""


def recount_added(site_id: int, day: dt.date, added: int) -> None:
    """Update a built day's presence, span events and facts for the `added` rows listed in
    ADDED (`take_queue`), in the caller's transaction (which deleted the queue rows that listed
    them). The day's split counts go (what is day-local may change); the refresher splits the
    day again later."""
    slices.remove(site_id, day)
    if dialect() == "postgresql":
        # The day's events are looked up by visitor and by session (`_touched_of_day`). At the
        # default cost of a random read (4, for spinning disks), PostgreSQL chose to read the
        # whole day instead for a few thousand sessions: 0.73 s against 0.11 s on a day of
        # 2 million events, and the day's read grows with the day, the lookups do not.
        db.session.execute(text("SET LOCAL random_page_cost = 1.1"))
        # The lookups of KEYS (`_IN_KEYS`) are costed high enough for the JIT compiler, whose
        # compiling made a query over 20,000 touched events take 260 ms (24 ms without).
        db.session.execute(text("SET LOCAL jit = off"))
    drop(KEYS.name, TOUCHED_EVENTS)
    KEYS.create(db.session.connection())
    _analyze(ADDED.name)

    touched = _touched(site_id, day)
    if touched - added > max(_day_events(site_id, day) / 2, SMALL_DAY):
        raise RecountWhole(f"{touched - added} events of the day touched")
    rows = db.session.execute(
        select(PRESENCE.c.kind, PRESENCE.c.key, PRESENCE.c.day, PRESENCE.c.spans)
        .join(KEYS, and_(KEYS.c.kind == PRESENCE.c.kind, KEYS.c.key == PRESENCE.c.key))
        .where(PRESENCE.c.site_id == site_id)
    ).all()
    present = {(k, key): spans for k, key, d, spans in rows if as_date(d) == day}
    elsewhere = [(k, key, as_date(d), was) for k, key, d, was in rows if as_date(d) != day]
    seen = {(k, key) for k, key, _, _ in elsewhere}
    # Which touched keys span days follows the touched events' links from the keys seen on
    # other days: with none (a day of new visitors), none span, and the events stay unread.
    copy = sql_table(TOUCHED_EVENTS, *(column(c) for c in WITH_PROPS))
    pairs = db.session.execute(select(copy.c.visitor_id, visit(copy))).all() if seen else []
    visitors, visits = spanning(pairs, seen)
    spans = {("u", u) for u in visitors} | {("v", v) for v in visits}
    _flag_spanning_keys(spans)

    _update_facts(site_id, day)  # before the span events change: "before" reads the old ones
    _update_span_events(site_id, day)
    _update_presence(site_id, day, present, spans)
    # Days holding a key that now spans but was counted there as day-local are recounted whole
    # (queued even when this round will come to them: a queued list of added rows alone would
    # only recount the keys those rows touch).
    for other_day in {d for k, key, d, was in elsewhere if (k, key) in spans and not was}:
        db.session.execute(insert(RollupQueue).values(site_id=site_id, day=other_day))
    drop(ADDED.name, KEYS.name, NOW, BEFORE, TOUCHED_EVENTS)


def _flag_spanning_keys(spans: set[Key]) -> None:
    """Mark the touched keys that span days in KEYS (written with none marked by `_touched`).

    Only those rows change: rewriting every touched key to mark a few (until 2026-12-04) sent
    each of them through COPY a second time, two keys per event on a day of new visitors, and
    analysed the table again. Its statistics are refreshed only when some rows changed.
    """
    for kind in ("u", "v"):
        chosen = sorted(key for k, key in spans if k == kind)
        for at in range(0, len(chosen), 500):
            db.session.execute(
                update(KEYS)
                .where(KEYS.c.kind == kind, KEYS.c.key.in_(chosen[at : at + 500]))
                .values(spans="y")
            )
    if spans:
        _analyze(KEYS.name)


def _analyze(name: str) -> None:
    """Fresh statistics for a filled temporary table (autovacuum never sees them): without,
    PostgreSQL guessed its size and checked 100,000 added rows against a day row by row."""
    if dialect() == "postgresql":
        db.session.execute(text(f"ANALYZE {name}"))


def _day_events(site_id: int, day: dt.date) -> int:
    """How many events the day held at its last refresh: its day-local count plus its span
    events."""
    local = db.session.execute(
        select(RollupFact.n1).where(
            RollupFact.site_id == site_id, RollupFact.metric == "events", RollupFact.day == day
        )
    ).scalar()
    span = db.session.execute(
        select(func.count()).where(SPAN.c.site_id == site_id, SPAN.c.day == day)
    ).scalar_one()
    return (local or 0) + span


def _touched(site_id: int, day: dt.date) -> int:
    """Write to KEYS the added rows' visitors and visits closed over the day's events, and
    copy the day's events that hold them to TOUCHED_EVENTS; return how many those are.

    The database does the closure itself: the keys of the added rows, then those of the events
    that hold them, until no new key comes. (Until 2026-12-04 each pass read the events' keys
    into Python and sent the new ones back through COPY: two keys an event on a day of new
    visitors, read twice.)
    """
    start = midnight(day)
    params = {"site": site_id, "start": param_time(start), "end": param_time(start + DAY)}
    db.session.execute(text(_NEW_KEYS.format(events=_ADDED_EVENTS)), params)
    while True:
        _analyze(KEYS.name)
        temporary_table(TOUCHED_EVENTS, _TOUCHED_OF_DAY, params, WITH_PROPS)
        grew = db.session.execute(text(_NEW_KEYS.format(events=f"{TOUCHED_EVENTS} e")), params)
        if not grew.rowcount:
            break
    _analyze(TOUCHED_EVENTS)
    return db.session.execute(text(f"SELECT count(*) FROM {TOUCHED_EVENTS}")).scalar_one()


# The visitors and visits of some events (`e` in {events}) that KEYS does not hold yet, added
# to it (none flagged as spanning: `_flag_spanning_keys` does that).
_NEW_KEYS = (
    "INSERT INTO rollup_touched (kind, key, spans) SELECT t.kind, t.key, 'n' FROM ("
    " SELECT 'u' AS kind, e.visitor_id AS key FROM {events} WHERE e.visitor_id IS NOT NULL"
    " UNION"
    " SELECT 'v', coalesce(e.session_id, e.visitor_id) FROM {events}"
    " WHERE coalesce(e.session_id, e.visitor_id) IS NOT NULL"
    ") t WHERE NOT EXISTS"
    " (SELECT 1 FROM rollup_touched k WHERE k.kind = t.kind AND k.key = t.key)"
)
_ADDED_EVENTS = (
    "rollup_added a JOIN events e"
    " ON e.site_id = :site AND e.occurred_at = a.occurred_at AND e.id = a.id"
)


def _touches(ev, spans: bool = False):
    """Whether an event's visitor or visit is one of KEYS (of those that span, with `spans`).
    EXISTS, not IN: see _IN_KEYS."""

    def listed(kind: str, value):
        where = [KEYS.c.kind == kind, KEYS.c.key == value]
        where += [KEYS.c.spans == "y"] if spans else []
        return select(literal(1)).where(*where).correlate(ev).exists()

    return or_(listed("u", ev.c.visitor_id), listed("v", visit(ev)))


# The same tests as `_touches`, in the SQL text the temporary tables are made with (`e`: events).
# EXISTS, which KEYS' primary key answers for each event, whatever the number of keys. With
# `key IN (SELECT ...)` under an OR, PostgreSQL hashed the keys only while its estimate of them
# fitted in work_mem; past that, each event scanned the keys one by one: a round of the ingest
# bench's 20 s runs ran for ten minutes (2026-12-05), and over 150,000 synthetic events with
# 32-character keys the query did not end in 300 s, where EXISTS took 167 ms.
_IN_KEYS = (
    "(EXISTS (SELECT 1 FROM rollup_touched k WHERE k.kind = 'u' AND k.key = e.visitor_id{0})"
    " OR EXISTS (SELECT 1 FROM rollup_touched k WHERE k.kind = 'v'"
    " AND k.key = coalesce(e.session_id, e.visitor_id){0}))"
)
TOUCHED, SPANNING = _IN_KEYS.format(""), _IN_KEYS.format(" AND k.spans = 'y'")
ADDED_ROW = (
    "EXISTS (SELECT 1 FROM rollup_added a WHERE a.occurred_at = e.occurred_at AND a.id = e.id)"
)
WAS_SPAN = (
    "EXISTS (SELECT 1 FROM rollup_span_events s WHERE s.site_id = e.site_id"
    " AND s.occurred_at = e.occurred_at AND s.id = e.id)"
)
KEYLESS = "(e.visitor_id IS NULL AND e.session_id IS NULL)"
OF_DAY = "e.site_id = :site AND e.occurred_at >= :start AND e.occurred_at < :end"


def _touched_of_day() -> str:
    """The day's events that match TOUCHED, as three lookups an index serves each: a visitor
    of KEYS (`ix_events_site_visitor_time`, migration 0014); a session of KEYS
    (`ix_events_site_session`); no session and a visitor id that is a visit of KEYS. Each event
    matches one of them at most. (TOUCHED's `OR` across the two columns is no one index's
    lookup: PostgreSQL read the whole day for it.)"""
    columns = ", ".join(f"e.{c}" for c in WITH_PROPS)
    keys = "(SELECT key FROM rollup_touched WHERE kind = '{}')"
    not_visitor = (
        "NOT EXISTS (SELECT 1 FROM rollup_touched k WHERE k.kind = 'u' AND k.key = e.visitor_id)"
    )
    return " UNION ALL ".join(
        f"SELECT {columns} FROM events e WHERE {OF_DAY} AND {where}"
        for where in (
            f"e.visitor_id IN {keys.format('u')}",
            f"e.session_id IN {keys.format('v')} AND {not_visitor}",
            f"e.session_id IS NULL AND e.visitor_id IN {keys.format('v')} AND {not_visitor}",
        )
    )


_TOUCHED_OF_DAY = _touched_of_day()


def _update_facts(site_id: int, day: dt.date) -> None:
    """facts += counts(touched day-local events now) - counts(the same before the added rows)."""
    start = midnight(day)
    params = {"site": site_id, "start": param_time(start), "end": param_time(start + DAY)}
    now = events_table(NOW, f"{TOUCHED} AND NOT {SPANNING}", params, source=TOUCHED_EVENTS)
    # An event with neither visitor nor visit links to nothing: it is day-local on its own, and
    # not in the touched copy. The added ones are found through their keys.
    columns = ", ".join(f"e.{c}" for c in SPAN_COLUMNS)
    db.session.execute(
        text(
            f"INSERT INTO {NOW} SELECT {columns} FROM {ADDED.name} a JOIN events e"
            f" ON e.site_id = :site AND e.occurred_at = a.occurred_at AND e.id = a.id"
            f" WHERE {OF_DAY} AND {KEYLESS}"
        ),
        params,
    )
    before = events_table(
        BEFORE, f"e.site_id = :site AND {TOUCHED} AND NOT {ADDED_ROW} AND NOT {WAS_SPAN}", params,
        source=TOUCHED_EVENTS,
    )  # fmt: skip
    change: dict[tuple, list] = {}
    for sign, rows in ((1, fact_rows(site_id, day, now)), (-1, fact_rows(site_id, day, before))):
        for row in rows:
            sums = change.setdefault((row[1], *row[KEY_COLUMNS]), [0, 0, 0, 0, 0.0])
            for i, value in enumerate(row[MEASURES]):
                sums[i] += sign * value
    change = {key: sums for key, sums in change.items() if any(sums)}
    if not change:
        return
    fact = RollupFact.__table__
    stored = {
        (m, k1, k2, k3, k4): (id_, [n1, n2, n3, n4, x])
        for id_, m, k1, k2, k3, k4, n1, n2, n3, n4, x in db.session.execute(
            select(
                fact.c.id, fact.c.metric, fact.c.k1, fact.c.k2, fact.c.k3, fact.c.k4,
                fact.c.n1, fact.c.n2, fact.c.n3, fact.c.n4, fact.c.x,
            ).where(
                fact.c.site_id == site_id,
                fact.c.day == day,
                fact.c.metric.in_(sorted({key[0] for key in change})),
            )
        )
    }  # fmt: skip
    replaced, rows = [], []
    for key, sums in change.items():
        id_, values = stored.get(key, (None, [0, 0, 0, 0, 0.0]))
        values = [a + b for a, b in zip(values, sums, strict=True)]
        values[4] = round(values[4], 6)
        if min(values) < 0:
            raise RecountWhole(f"{key} of site {site_id} on {day} would be {values}")
        if id_ is not None:
            replaced.append(id_)
        if any(values):
            rows.append((site_id, key[0], day, *key[1:], *values))
    for at in range(0, len(replaced), 500):
        db.session.execute(
            delete(fact).where(fact.c.site_id == site_id, fact.c.id.in_(replaced[at : at + 500]))
        )
    bulk_insert(fact, FACT_COLUMNS, rows)


def _update_span_events(site_id: int, day: dt.date) -> None:
    """Replace the touched events' copies among the day's span events."""
    db.session.execute(
        delete(SPAN).where(SPAN.c.site_id == site_id, SPAN.c.day == day, _touches(SPAN))
    )
    copy = sql_table(TOUCHED_EVENTS, *(column(c) for c in WITH_PROPS))
    chosen = select(*(copy.c[c] for c in WITH_PROPS), day_literal(day)).where(
        _touches(copy, spans=True)
    )
    db.session.execute(insert(SPAN).from_select([*WITH_PROPS, "day"], chosen))


def _update_presence(
    site_id: int, day: dt.date, present: dict[Key, bool], spans: set[Key]
) -> None:
    """Add the day's new visitors and visits; flag exactly the touched ones that span.

    The new ones are the touched keys (KEYS, flagged) not yet present that day, copied by the
    database itself: on a day of new visitors that is two rows per event, which the refresher
    once built in Python and sent back through COPY.
    """
    there = exists().where(
        PRESENCE.c.site_id == site_id,
        PRESENCE.c.day == day,
        PRESENCE.c.kind == KEYS.c.kind,
        PRESENCE.c.key == KEYS.c.key,
    )
    new = select(
        literal(site_id), KEYS.c.kind, KEYS.c.key, literal(day, Date), KEYS.c.spans == "y"
    ).where(~there)
    db.session.execute(
        insert(PRESENCE).from_select(["site_id", "kind", "key", "day", "spans"], new)
    )
    for value in (True, False):
        flip = [key for key, was in present.items() if was != value and (key in spans) == value]
        set_spans(site_id, day, flip, value)
