"""Keep the rollups current: drain the queue that triggers on `events` fill, one day at a time.

Every change to `events` (ingest, imports, deletions, late events with an old time) queues its
(site, day) in the same transaction, so a committed event is always either rolled up or queued.
`refresh` brings each queued day up to date in one transaction that also deletes the queue rows
it saw (a row queued by a transaction that commits later stays for the next round): from the
rows added since, when that is all that changed (delta.py), else from all the day's events.

Only the holder of the lease refreshes, so several processes or nodes never work at once; and a
day's recomputation replaces that day's rows, so doing it twice cannot double-count.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import pq
from sqlalchemy import (
    Date,
    FromClause,
    and_,
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
from sqlalchemy.exc import IntegrityError, InvalidRequestError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import (
    Event,
    RollupFact,
    RollupLease,
    RollupPresence,
    RollupQueue,
    RollupSpanEvent,
    Site,
    utcnow,
)
from ..stats.base import METRICS, visit
from . import delta, slices, visits
from .read import ALL_TIME, BUILT, WITH_PROPS, month_metric, next_month, total_metric
from .store import (
    DAY,
    FACT_COLUMNS,
    as_date,
    begin,
    bulk_insert,
    day_literal,
    drop,
    events_table,
    fact_rows,
    marker_row,
    midnight,
    param_time,
    set_spans,
    spanning,
)

log = logging.getLogger(__name__)
LEASE = "refresh"
LEASE_SECONDS = 300  # a holder that died frees the lease after this long (renewed every day)
EVENTS = Event.__table__
PRESENCE = RollupPresence.__table__
LOCAL = "rollup_local_events"  # the temporary table of one day's day-local events
# Keys of a whole-day recount above which the statistics of rollup_presence are brought up to
# date first: a join misplanned on that many rows compares each with each (about 1 M pairs).
PRESENCE_ANALYZE = 1000


# --- the lease --------------------------------------------------------------------------------

# A refresher child is named by its parent (ROLLUP_HOLDER), which frees the lease if it kills it.
_HOLDER = (
    os.environ.get("ROLLUP_HOLDER")
    or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
)


def acquire_lease(holder: str = _HOLDER, seconds: float = LEASE_SECONDS) -> bool:
    """Take (or extend) the refresh lease; False when another live holder has it."""
    now = utcnow()
    values = {"holder": holder, "expires_at": now + dt.timedelta(seconds=seconds)}
    taken = db.session.execute(
        update(RollupLease)
        .where(
            RollupLease.name == LEASE,
            or_(RollupLease.expires_at < now, RollupLease.holder == holder),
        )
        .values(**values)
    ).rowcount
    if not taken:
        try:
            db.session.execute(insert(RollupLease).values(name=LEASE, **values))
            taken = 1
        except IntegrityError:  # another process inserted the lease row first
            db.session.rollback()
            return False
    db.session.commit()
    return bool(taken)


def release_lease(holder: str = _HOLDER, refreshed: bool = True) -> None:
    values: dict = {"expires_at": utcnow() - dt.timedelta(seconds=1)}
    if refreshed:
        values["refreshed_at"] = utcnow()
    db.session.execute(
        update(RollupLease)
        .where(RollupLease.name == LEASE, RollupLease.holder == holder)
        .values(**values)
    )
    db.session.commit()


# --- draining the queue -----------------------------------------------------------------------


def queued_days(site_id: int | None = None) -> list[tuple[int, dt.date]]:
    """The distinct (site, day) pairs waiting, newest day first (today matters most)."""
    stmt = select(RollupQueue.site_id, RollupQueue.day).group_by(
        RollupQueue.site_id, RollupQueue.day
    )
    if site_id is not None:
        stmt = stmt.where(RollupQueue.site_id == site_id)
    else:  # under Citus, one small query to every shard, once a round
        stmt = stmt.prefix_with("/* all sites: the refresher finds every site's queued days */")
    pairs = db.session.execute(stmt).all()
    db.session.commit()
    return sorted(((s, as_date(d)) for s, d in pairs), key=lambda p: (p[1], p[0]), reverse=True)


def refresh(
    site_id: int | None = None,
    progress: Callable[[int], None] | None = None,
    max_rounds: int = 10,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Recompute every queued day (of one site, or all) under the lease; return days done.

    Returns -1 when another process holds the lease (it is doing this work already). Ends
    early, between two rounds, once `stopping()` is true (the process is asked to end).
    """
    if not acquire_lease():
        return -1
    done = 0
    failed: set[tuple[int, dt.date]] = set()
    try:
        for _ in range(max_rounds):
            pairs = [pair for pair in queued_days(site_id) if pair not in failed]
            if not pairs or stopping():
                break
            for site, day in pairs:
                _presence_only(site, day)
            for n, (site, day) in enumerate(pairs):
                if not acquire_lease():  # extend it (a rebuild takes minutes)
                    # Lost to another process: queue again what this round did, so that the
                    # new holder also recomputes their month and all-time sums.
                    _requeue(pairs[:n])
                    return done
                try:
                    refresh_day(site, day)
                except Exception:
                    # One day that cannot be computed must not stop the others: it stays
                    # queued (its transaction rolled back) and is tried again next time.
                    db.session.rollback()
                    log.exception("rollups of site %s on %s failed; left queued", site, day)
                    failed.add((site, day))
                    continue
                done += 1
                if progress is not None:
                    progress(1)
            for site, month in sorted({(site, day.replace(day=1)) for site, day in pairs}):
                refresh_month(site, month)
            for site in sorted({site for site, _ in pairs}):
                refresh_totals(site)
        split_missing(site_id, stopping=stopping)
    finally:
        _end_transaction()
        release_lease(refreshed=done > 0)
    return done


def _end_transaction() -> None:
    """Roll back what a round left open. A round cut short by SIGTERM (whose handler raises
    SystemExit at once) may leave its connection waiting for a statement's answer, unable to
    roll back ("another command is already in progress"): that connection is dropped instead
    (the server rolls its transaction back), so that the lease is still freed and the
    SystemExit, not that error, ends the refresh. One that lands inside `commit()`, after the
    server committed and before SQLAlchemy closed the transaction, leaves a session that
    refuses a rollback ("in 'committed' state"; seen at a bench server's stop, 2026-12-05):
    there is nothing left to undo, so the session is closed."""
    session = db.session()
    if _statement_in_flight(session):
        session.invalidate()
        return
    try:
        session.rollback()
    except InvalidRequestError:
        session.close()


def _statement_in_flight(session: Session) -> bool:
    if not session.in_transaction():
        return False
    try:
        driver = session.connection().connection.driver_connection
    except SQLAlchemyError:  # already invalidated (SQLAlchemy saw the interruption): roll back
        return False
    info = getattr(driver, "info", None)  # psycopg's connection information; SQLite has none
    return info is not None and info.transaction_status == pq.TransactionStatus.ACTIVE


def _requeue(pairs: list[tuple[int, dt.date]]) -> None:
    if pairs:
        db.session.execute(insert(RollupQueue), [{"site_id": s, "day": d} for s, d in pairs])
        db.session.commit()


def _day_keys(site_id: int, start: dt.datetime) -> list[tuple[str | None, str | None]]:
    """The distinct (visitor, visit) pairs of the day's events.

    Fetched in parts: the refresher shares its process with request threads, and converting a
    million rows in one call holds the GIL for seconds (ingest p99 rose to 800 ms)."""
    stmt = (
        select(EVENTS.c.visitor_id, visit(EVENTS))
        .where(
            EVENTS.c.site_id == site_id,
            EVENTS.c.occurred_at >= start,
            EVENTS.c.occurred_at < start + DAY,
        )
        .distinct()
        .execution_options(yield_per=10_000)
    )
    keys: list[tuple[str | None, str | None]] = []
    for part in db.session.execute(stmt).partitions():
        keys.extend(part)
    return keys


def _write_presence(site_id: int, day: dt.date, keys: list[tuple[str | None, str | None]]) -> None:
    db.session.execute(
        delete(RollupPresence).where(RollupPresence.site_id == site_id, RollupPresence.day == day)
    )
    rows = {("u", u) for u, _ in keys if u} | {("v", v) for _, v in keys if v}
    bulk_insert(
        PRESENCE, ("site_id", "kind", "key", "day", "spans"),
        [(site_id, kind, key, day, False) for kind, key in rows],
    )  # fmt: skip


def _presence_only(site_id: int, day: dt.date) -> None:
    """First pass over a batch: who was there each day, so the second pass knows who spans.
    (A day recounted from its added rows updates its presence itself.)"""
    begin()
    if delta.recounts_whole(site_id, day):
        _add_presence(site_id, day, _day_keys(site_id, midnight(day)))
    db.session.commit()


def _add_presence(site_id: int, day: dt.date, keys: list[tuple[str | None, str | None]]) -> None:
    """Add the day's new visitors and visits, keeping the rows and flags already there: the
    second pass compares the flags before and after (a key that spanned and no longer does
    sends the other days it is on back to the queue), and rewrites the rest."""
    present = set(
        db.session.execute(
            select(RollupPresence.kind, RollupPresence.key).where(
                RollupPresence.site_id == site_id, RollupPresence.day == day
            )
        ).all()
    )
    rows = {("u", u) for u, _ in keys if u} | {("v", v) for _, v in keys if v}
    bulk_insert(
        PRESENCE, ("site_id", "kind", "key", "day", "spans"),
        [(site_id, kind, key, day, False) for kind, key in rows - present],
    )  # fmt: skip


def refresh_day(
    site_id: int, day: dt.date, whole: bool = False
) -> None:
    """Bring one day's presence, span events and facts up to date, in one transaction: from the
    rows added since it was built when that is all that changed (delta.py), else from all of
    the day's events."""
    start = midnight(day)
    begin()
    added = delta.take_queue(site_id, day, whole)
    if added is not None:
        try:
            delta.recount_added(site_id, day, added)
        except delta.RecountWhole as why:
            log.info("rollups of site %s on %s: recounting the whole day (%s)", site_id, day, why)
            db.session.rollback()
            return refresh_day(site_id, day, whole=True)
        db.session.commit()
        return None
    before = {
        (k, key): spans
        for k, key, spans in db.session.execute(
            select(RollupPresence.kind, RollupPresence.key, RollupPresence.spans).where(
                RollupPresence.site_id == site_id, RollupPresence.day == day
            )
        )
    }
    keys = _day_keys(site_id, start)
    _write_presence(site_id, day, keys)
    if db.session.get_bind().dialect.name == "postgresql" and len(keys) > PRESENCE_ANALYZE:
        # The day's presence rows were just replaced in this transaction: with statistics from
        # before, a day of a million visitors was planned as a few thousand, and the join below
        # ran for minutes (the ingest bench's whole-day recounts). The first build of a site's
        # day is the same case: 14,236 rows of a site the statistics had never seen were planned
        # as one, and the join compared each with all of them (37.7 s; 8.5 ms after ANALYZE,
        # which took 51 ms). ANALYZE sees our own rows.
        db.session.execute(text("ANALYZE rollup_presence"))

    other = PRESENCE.alias("other")
    mine = PRESENCE.alias("mine")
    elsewhere = db.session.execute(
        select(mine.c.kind, mine.c.key, other.c.day, other.c.spans)
        .join(
            other,
            and_(
                other.c.site_id == mine.c.site_id,
                other.c.kind == mine.c.kind,
                other.c.key == mine.c.key,
                other.c.day != mine.c.day,
            ),
        )
        .where(mine.c.site_id == site_id, mine.c.day == day)
    ).all()
    visitors, visits = spanning(keys, {(k, key) for k, key, _, _ in elsewhere})
    marked = [("u", u) for u in visitors] + [("v", v) for v in visits]
    if marked:
        set_spans(site_id, day, marked, True)

    # Other days that must be recounted: they hold a visitor or visit that now spans but was
    # counted there as day-local, or one that was kept apart for a link to this day now gone.
    stale = {as_date(d) for _, _, d, spans in elsewhere if not spans}
    gone = [key for key, spans in before.items() if key not in set(marked) and spans]
    if gone:
        stale |= _other_days(site_id, day, gone)
    # (Queued even when this round comes to them later: see delta.recount_added.)
    for other_day in stale - {day}:
        db.session.execute(insert(RollupQueue).values(site_id=site_id, day=other_day))

    _write_span_events(site_id, day, start)
    _write_facts(site_id, day, start)
    db.session.commit()


def _other_days(site_id: int, day: dt.date, keys: list[tuple[str, str]]) -> set[dt.date]:
    days: set[dt.date] = set()
    for kind in ("u", "v"):
        chosen = [key for k, key in keys if k == kind]
        for at in range(0, len(chosen), 500):
            days |= {
                as_date(d)
                for d in db.session.execute(
                    select(RollupPresence.day).where(
                        RollupPresence.site_id == site_id,
                        RollupPresence.kind == kind,
                        RollupPresence.key.in_(chosen[at : at + 500]),
                        RollupPresence.day != day,
                    )
                ).scalars()
            }
    return days


def _is_spanning(ev: FromClause, site_id: int, day: dt.date):
    """Whether an event of the day belongs to a visitor or visit kept apart."""

    def marked(kind: str, key) -> object:
        return exists().where(
            PRESENCE.c.site_id == site_id,
            PRESENCE.c.kind == kind,
            PRESENCE.c.key == key,
            PRESENCE.c.day == day,
            PRESENCE.c.spans.is_(True),
        )

    return or_(marked("u", ev.c.visitor_id), marked("v", visit(ev)))


def _write_span_events(site_id: int, day: dt.date, start: dt.datetime) -> None:
    span = RollupSpanEvent.__table__
    db.session.execute(delete(span).where(span.c.site_id == site_id, span.c.day == day))
    of_day = and_(
        EVENTS.c.site_id == site_id,
        EVENTS.c.occurred_at >= start,
        EVENTS.c.occurred_at < start + DAY,
    )
    chosen = select(*(EVENTS.c[c] for c in WITH_PROPS), day_literal(day)).where(
        of_day, _is_spanning(EVENTS, site_id, day)
    )
    db.session.execute(insert(span).from_select([*WITH_PROPS, "day"], chosen))


def _local_events(site_id: int, day: dt.date, start: dt.datetime) -> FromClause:
    """A temporary table of the day's day-local events: all of them but its span events."""
    where = "site_id = :site AND occurred_at >= :start AND occurred_at < :end"
    if db.session.execute(
        select(func.count())
        .select_from(RollupSpanEvent)
        .where(RollupSpanEvent.site_id == site_id, RollupSpanEvent.day == day)
    ).scalar_one():
        where += (
            " AND NOT EXISTS (SELECT 1 FROM rollup_span_events s WHERE s.site_id = e.site_id"
            " AND s.occurred_at = e.occurred_at AND s.id = e.id)"
        )
    params = {"site": site_id, "start": param_time(start), "end": param_time(start + DAY)}
    # With the properties: a split day's stored details (visits.py) group by them.
    return events_table(LOCAL, where, params, WITH_PROPS)


def _write_facts(site_id: int, day: dt.date, start: dt.datetime) -> None:
    """Replace the day's facts with the counts of its day-local events (split by each filter's
    value too, once the day has ended: slices.py)."""
    db.session.execute(
        delete(RollupFact).where(RollupFact.site_id == site_id, RollupFact.day == day)
    )
    visits.remove(site_id, day)
    local = _local_events(site_id, day, start)
    rows = fact_rows(site_id, day, local)
    rows.append(marker_row(site_id, BUILT, day))
    if slices.ended(day):
        rows.extend(slices.fact_rows(site_id, day, local))
    bulk_insert(RollupFact.__table__, FACT_COLUMNS, rows)
    drop(LOCAL)


def split_missing(
    site_id: int | None = None, seconds: float = 5.0, stopping: Callable[[], bool] = lambda: False
) -> int:
    """Split the counts of ended days that lack them (a day built while it was today, or
    recounted in part since), newest first, each in its transaction, for about `seconds`: the
    queue waits meanwhile (after an upgrade, every past day lacks them). Return how many."""
    done, until = 0, time.monotonic() + seconds
    while time.monotonic() < until and not stopping():
        found = slices.missing(site_id, limit=8)
        if not found:
            break
        for site, day in found:
            begin()
            slices.remove(site, day)
            local = _local_events(site, day, midnight(day))
            bulk_insert(RollupFact.__table__, FACT_COLUMNS, slices.fact_rows(site, day, local))
            drop(LOCAL)
            db.session.commit()
            done += 1
            if time.monotonic() >= until:
                break
    return done


def refresh_month(site_id: int, month: dt.date) -> None:
    """Re-add a month's day rows into its month sums (what long ranges read), in SQL."""
    fact = RollupFact.__table__
    names = [m.name for m in METRICS.values() if "bucket" not in m.keys]
    begin()
    db.session.execute(
        delete(fact).where(
            fact.c.site_id == site_id,
            fact.c.day == month,
            fact.c.metric.in_([month_metric(n) for n in names]),
        )
    )
    keys = (fact.c.metric, fact.c.k1, fact.c.k2, fact.c.k3, fact.c.k4)
    sums = (
        select(
            fact.c.site_id,
            (literal("m:") + fact.c.metric).label("metric"),
            literal(month, Date).label("day"),
            fact.c.k1,
            fact.c.k2,
            fact.c.k3,
            fact.c.k4,
            *(func.sum(fact.c[c]).label(c) for c in ("n1", "n2", "n3", "n4", "x")),
        )
        .where(
            fact.c.site_id == site_id,
            fact.c.day >= month,
            fact.c.day < next_month(month),
            fact.c.metric.in_(names),
        )
        .group_by(fact.c.site_id, *keys)
    )
    db.session.execute(insert(fact).from_select(list(FACT_COLUMNS), sums))
    db.session.commit()


def refresh_totals(site_id: int) -> None:
    """Re-add the month sums of the all-time metrics into one sum over every day."""
    fact = RollupFact.__table__
    names = [m.name for m in METRICS.values() if m.all_time]
    begin()
    db.session.execute(
        delete(fact).where(
            fact.c.site_id == site_id, fact.c.metric.in_([total_metric(n) for n in names])
        )
    )
    sums = select(
        fact.c.site_id,
        (literal("t:") + func.substr(fact.c.metric, 3)).label("metric"),
        literal(ALL_TIME, Date).label("day"),
        fact.c.k1,
        fact.c.k2,
        fact.c.k3,
        fact.c.k4,
        *(func.sum(fact.c[c]).label(c) for c in ("n1", "n2", "n3", "n4", "x")),
    ).where(
        fact.c.site_id == site_id, fact.c.metric.in_([month_metric(n) for n in names])
    ).group_by(
        fact.c.site_id, fact.c.metric, fact.c.k1, fact.c.k2, fact.c.k3, fact.c.k4
    )
    db.session.execute(insert(fact).from_select(list(FACT_COLUMNS), sums))
    db.session.commit()


# --- the CLI's rebuild and status ----------------------------------------------------------


def queue_rebuild(site_id: int | None = None, since: dt.date | None = None) -> int:
    """Queue every day that has events or rollups (of one site, since a day); return how many."""
    days: set[tuple[int, dt.date]] = set()
    day_of = func.date(EVENTS.c.occurred_at)
    stmt = select(EVENTS.c.site_id, day_of).group_by(EVENTS.c.site_id, day_of)
    facts = select(RollupFact.site_id, RollupFact.day).where(RollupFact.metric == BUILT)
    if site_id is not None:
        stmt = stmt.where(EVENTS.c.site_id == site_id)
        facts = facts.where(RollupFact.site_id == site_id)
    if since is not None:
        stmt = stmt.where(EVENTS.c.occurred_at >= dt.datetime.combine(since, dt.time()))
        facts = facts.where(RollupFact.day >= since)
    for s, d in [*db.session.execute(stmt), *db.session.execute(facts)]:
        days.add((s, as_date(d)))
    if days:
        db.session.execute(insert(RollupQueue), [{"site_id": s, "day": d} for s, d in days])
    db.session.commit()
    return len(days)


@dataclass(frozen=True)
class SiteStatus:
    public_id: str
    name: str
    queued_days: int
    lag_seconds: float | None  # how long the oldest queued change has waited; None: up to date
    built_days: int


def status() -> tuple[list[SiteStatus], dt.datetime | None]:
    """Each site's lag, and when rollups were last refreshed."""
    now = utcnow()
    queue = {
        s: (n, oldest)
        for s, n, oldest in db.session.execute(
            select(
                RollupQueue.site_id,
                func.count(RollupQueue.day.distinct()),
                func.min(RollupQueue.queued_at),
            ).group_by(RollupQueue.site_id)
        )
    }
    built = dict(
        db.session.execute(
            select(RollupFact.site_id, func.count())
            .where(RollupFact.metric == BUILT)
            .group_by(RollupFact.site_id)
        ).all()
    )
    out = []
    for site in db.session.execute(select(Site).order_by(Site.id)).scalars():
        n, oldest = queue.get(site.id, (0, None))
        if isinstance(oldest, str):
            oldest = dt.datetime.fromisoformat(oldest)
        lag = max((now - oldest).total_seconds(), 0.0) if oldest is not None else None
        out.append(SiteStatus(site.public_id, site.name, n, lag, built.get(site.id, 0)))
    last = db.session.execute(
        select(RollupLease.refreshed_at).where(RollupLease.name == LEASE)
    ).scalar()
    return out, last
