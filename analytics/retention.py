"""Retention: raw events older than each site's retention go; their aggregates stay.

`flask --app wsgi purge` runs `purge` (idempotent: a second run finds nothing to do). For each
site, every whole UTC day before the first day kept (today minus `retention_months`) is removed
in a transaction of its own, oldest first, so an interrupted purge resumes where it stopped:

- the day's rollups are first recounted from all its events as if none of them spanned days:
  the raw copies of visits that span days (`rollup_span_events`) and who was there that day
  (`rollup_presence`) are raw data too, and go with the events. Counts of events and page views
  of a purged day are unchanged; a visitor seen on several purged days (or on both sides of the
  cutoff) is counted once per day in a range over them, where the raw data counted them once;
- then its events go, with the queue rows their deletion made (nothing is left to recount).

With `rollups=True` the day's aggregates go as well. `event_errors` has its own, shorter
retention (EVENT_ERRORS_RETENTION_DAYS, 30 by default): rejected payloads are kept for an
operator to read, not for ever.

On PostgreSQL, where `events` is partitioned by month (analytics/partitions.py), a purge of
every site first runs `partitions.ensure` (so no old month waits in the default partition), and
a month that lies wholly before every site's first day kept is dropped whole once its days are
folded, instead of having its rows deleted: instant, and it leaves no dead rows to vacuum.

The refresher's lease is held meanwhile, so that no rollup round reads a day half purged.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, text

from . import partitions
from .extensions import db
from .models import (
    Event,
    EventError,
    RollupFact,
    RollupPresence,
    RollupQueue,
    RollupSpanEvent,
    Site,
    utcnow,
)
from .rollups import visits
from .rollups.read import BUILT
from .rollups.refresh import acquire_lease, refresh_month, refresh_totals, release_lease
from .rollups.store import (
    DAY,
    FACT_COLUMNS,
    as_date,
    begin,
    bulk_insert,
    drop,
    events_table,
    fact_rows,
    marker_row,
    midnight,
    param_time,
)
from .stats.dialect import dialect
from .throttle import prune as prune_rate_counts

PURGE_HOLDER = "purge"
FOLDED = "rollup_purged_events"  # the temporary table of a day being folded


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` earlier (the month's last day when it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def first_day_kept(site: Site, today: dt.date) -> dt.date:
    return months_before(today, site.retention_months)


@dataclass
class SitePurge:
    """What a purge removed from one site."""

    public_id: str
    kept_from: dt.date
    days: int = 0
    events: int = 0
    raw_rollup_rows: int = 0  # span events and presence: raw data kept by the rollups
    aggregates: int = 0  # rollup facts (only with rollups=True)


@dataclass
class Purge:
    sites: list[SitePurge]
    errors_before: dt.datetime
    errors: int
    partitions_dropped: list[str] = field(default_factory=list)


def days_to_purge(site_id: int, before: dt.date) -> list[dt.date]:
    """Every day before `before` that still has events or raw rollup rows, oldest first."""
    limit = midnight(before)
    day_of = func.date(Event.occurred_at)
    found = list(
        db.session.execute(
            select(day_of)
            .where(Event.site_id == site_id, Event.occurred_at < limit)
            .group_by(day_of)
        ).scalars()
    )
    for model in (RollupSpanEvent, RollupPresence):
        found += db.session.execute(
            select(model.day).where(model.site_id == site_id, model.day < before).distinct()
        ).scalars()
    return sorted({as_date(d) for d in found})


def _fold(site_id: int, day: dt.date, where: str, params: dict) -> None:
    """Recount the day's facts from all its events, every visitor and visit as day-local."""
    rows = fact_rows(site_id, day, events_table(FOLDED, where, params))
    drop(FOLDED)
    db.session.execute(
        delete(RollupFact).where(RollupFact.site_id == site_id, RollupFact.day == day)
    )
    visits.remove(site_id, day)  # stored visits go with the events
    rows.append(marker_row(site_id, BUILT, day))
    bulk_insert(RollupFact.__table__, FACT_COLUMNS, rows)


def purge_day(
    site_id: int, day: dt.date, rollups: bool, report: SitePurge, dropped_later: bool = False
) -> None:
    """Remove one day's raw data (and with `rollups`, its aggregates), in one transaction.

    With `dropped_later` its events stay: their whole partition is dropped once every site's
    days in it are done."""
    begin()
    start = midnight(day)
    where = "site_id = :site AND occurred_at >= :start AND occurred_at < :end"
    params = {"site": site_id, "start": param_time(start), "end": param_time(start + DAY)}
    if rollups:
        report.aggregates += db.session.execute(
            delete(RollupFact).where(RollupFact.site_id == site_id, RollupFact.day == day)
        ).rowcount
        visits.remove(site_id, day)
    else:
        _fold(site_id, day, where, params)
    for model in (RollupSpanEvent, RollupPresence):
        report.raw_rollup_rows += db.session.execute(
            delete(model).where(model.site_id == site_id, model.day == day)
        ).rowcount
    if dropped_later:
        report.events += db.session.execute(
            text(f"SELECT count(*) FROM events WHERE {where}"), params
        ).scalar_one()
    else:
        report.events += db.session.execute(
            text(f"DELETE FROM events WHERE {where}"), params
        ).rowcount
    # What the deletion queued (the rollup trigger) has nothing left to recount.
    db.session.execute(
        delete(RollupQueue).where(RollupQueue.site_id == site_id, RollupQueue.day == day)
    )
    db.session.commit()
    report.days += 1


def _hold_lease(wait: float = 600.0) -> None:
    deadline = time.monotonic() + wait
    while not acquire_lease(PURGE_HOLDER):
        if time.monotonic() > deadline:
            raise RuntimeError("the rollup refresher kept its lease for 10 minutes; try later")
        time.sleep(1.0)


def purge(
    today: dt.date | None = None,
    rollups: bool = False,
    errors_days: float = 30,
    site_ids: list[int] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Purge:
    """Apply every site's retention (see the module's docstring); return what went.

    `progress(site, done, total)` is called after each day.
    """
    today = today or utcnow().date()
    _hold_lease()
    try:
        sites = db.session.execute(select(Site).order_by(Site.id)).scalars().all()
        whole: list[partitions.Partition] = []
        if site_ids is None:
            partitions.ensure(today)
            if sites:
                whole = partitions.droppable(min(first_day_kept(s, today) for s in sites))
        reports = []
        for site in sites:
            if site_ids is not None and site.id not in site_ids:
                continue
            report = SitePurge(site.public_id, first_day_kept(site, today))
            days = days_to_purge(site.id, report.kept_from)
            for n, day in enumerate(days, start=1):
                acquire_lease(PURGE_HOLDER)  # extend it: a big purge takes minutes
                purge_day(
                    site.id, day, rollups, report, any(p.start <= day < p.end for p in whole)
                )
                if progress is not None:
                    progress(site.public_id, n, len(days))
            for month in sorted({day.replace(day=1) for day in days}):
                refresh_month(site.id, month)
            if days:
                refresh_totals(site.id)
            reports.append(report)
        for part in whole:
            partitions.drop(part)
        errors_before = utcnow() - dt.timedelta(days=errors_days)
        removed = db.session.execute(
            delete(EventError).where(EventError.received_at < errors_before)
        ).rowcount
        db.session.commit()
        prune_rate_counts()  # rate limit windows past any limit's reach
        if dialect() == "postgresql" and any(r.days for r in reports):
            db.session.execute(text("ANALYZE events"))
            db.session.commit()
    finally:
        db.session.rollback()
        release_lease(PURGE_HOLDER, refreshed=False)
    return Purge(reports, errors_before, removed, [p.name for p in whole])
