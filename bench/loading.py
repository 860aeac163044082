"""Demo data into a fresh PostgreSQL database by COPY, timed against a bare COPY of the same rows.

The baseline is the server's own speed: `COPY events` of rows built beforehand (so nothing is
generated while it runs), into an empty database with the same schema. The loader is
`analytics.demo_copy.load`, generation included, as `flask demo load` runs it.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask

from analytics import demo_copy, partitions
from analytics.extensions import db
from analytics.models import Site, utcnow
from analytics.sites import create_site
from bench.database import (
    database_exists,
    database_url,
    drop_database,
    fresh_database,
    libpq_url,
    migrated_app,
)

BASELINE_DB = "analytics_bench_copy"
BASELINE_CAP = 1_000_000  # rows of the bare COPY: more would only hold memory
MAIN_DAYS = 395  # 13 months
MAIN_SITE = "Bench main site"


@dataclass
class Loaded:
    """A database filled for the dashboards: its app, URL, main site, and the loading rates."""

    app: Flask
    url: str
    site_id: int
    public_id: str
    load_rates: list[float]
    bare_rates: list[float]


def _sites(app: Flask, names: list[str]) -> list[tuple[int, str]]:
    with app.app_context():
        sites = [create_site(name) for name in names]
        found = [(s.id, s.public_id) for s in sites]
        db.session.remove()
    return found


def _partitions(app: Flask, days: int) -> None:
    """The months the load covers, partitioned first, as `flask demo load` does."""
    with app.app_context():
        today = utcnow().date()
        partitions.cover(today - dt.timedelta(days=days + 1), today)
        db.session.remove()


def bare_copy_rate(blocks: list[bytes], days: int = MAIN_DAYS) -> float:
    """Rows/s of COPYing pre-built `blocks` into a fresh database (one site, id 1)."""
    url = fresh_database(BASELINE_DB)
    try:
        app = migrated_app(url)
        _partitions(app, days)
        ((site_id, _),) = _sites(app, ["Baseline"])
        assert site_id == 1, "the pre-built rows name site 1"
        rows = sum(b.count(b"\n") for b in blocks)
        started = time.perf_counter()
        demo_copy.copy_blocks(libpq_url(url), iter(blocks))
        rate = rows / (time.perf_counter() - started)
        with app.app_context():
            db.engine.dispose()
    finally:
        drop_database(BASELINE_DB)
    return rate


def load(
    name: str,
    events: int,
    rounds: int,
    *,
    now: dt.datetime | None = None,
    small_sites: int = 2,
    days: int = MAIN_DAYS,
) -> Loaded:
    """Fill database `name`: the main site gets `events` over `days` (13 months), small sites
    a few more over 90 days (at most `days`).

    Each round (re)creates the database and times the loader, after a bare COPY of up to
    BASELINE_CAP pre-built rows in a database of its own; the last round's database is kept.
    """
    now = now or utcnow()
    baseline_rows = min(events, BASELINE_CAP)
    blocks = list(demo_copy.blocks(1, days, baseline_rows, now=now, seed=7))
    load_rates: list[float] = []
    bare_rates: list[float] = []
    for round_ in range(rounds):
        bare_rates.append(bare_copy_rate(blocks, days))
        url = fresh_database(name)
        app = migrated_app(url)
        _partitions(app, days)
        (main_id, public_id), *others = _sites(
            app, [MAIN_SITE, *[f"Bench small site {n + 1}" for n in range(small_sites)]]
        )
        started = time.perf_counter()
        stored = demo_copy.load(libpq_url(url), main_id, days, events, seed=round_, now=now)
        load_rates.append(stored / (time.perf_counter() - started))
        assert stored == events, (stored, events)
        if round_ < rounds - 1:
            with app.app_context():
                db.engine.dispose()
    del blocks
    for n, (site_id, _) in enumerate(others):
        small = min(90, days)
        demo_copy.load(libpq_url(url), site_id, small, max(events // 100, 1000), seed=100 + n,
                       now=now)  # fmt: skip
    return Loaded(app, url, main_id, public_id, load_rates, bare_rates)


def reopen(name: str) -> Loaded | None:
    """The database a `--keep` run left, migrated to this code's schema; None if there is none.

    Its load rates are empty: nothing was loaded.
    """
    if not database_exists(name):
        return None
    url = database_url(name)
    app = migrated_app(url)
    with app.app_context():
        site = db.session.execute(
            sa.select(Site).where(Site.name == MAIN_SITE)
        ).scalar_one_or_none()
        found = (site.id, site.public_id) if site else None
        db.session.remove()
    if found is None:
        return None
    return Loaded(app, url, found[0], found[1], [], [])


def settle(app: Flask) -> float:
    """Bring a freshly loaded database to the state the app reads at; return the seconds the
    rollups took to catch up.

    The load's COPY statements queued every day they touched (the triggers on `events`); the
    refresh here builds those days' rollups, as the app's own refresher thread would, then
    `ANALYZE` gives the planner fresh statistics.
    """
    from analytics.rollups.refresh import refresh

    with app.app_context():
        started = time.perf_counter()
        refresh(max_rounds=100)
        seconds = time.perf_counter() - started
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        db.session.remove()
        db.engine.dispose()
    return seconds


@dataclass
class RefreshCost:
    """What one refresh round costs once today is built and `added` new events arrive."""

    day_events: int  # events of today before
    added: int
    partial: float  # seconds: recounting what the added rows touch (the refresher's usual work)
    whole: float  # seconds: recounting all of today (what it did before delta.py)


def refresh_cost(app: Flask, site_id: int, added: int = 1000) -> RefreshCost:
    """Time a refresh round after `added` new tracker events today, both ways: first from the
    rows added, then (after as many more) with today queued for a whole recount."""
    from sqlalchemy import insert

    from analytics.ingest.writer import event_row, store_events
    from analytics.models import Event, RollupQueue
    from analytics.rollups.refresh import refresh

    def batch(part: int) -> list[dict]:
        now = utcnow()
        return [
            event_row(site_id=site_id, occurred_at=now - dt.timedelta(milliseconds=i),
                      name="pageview", source="tracker", path=f"/bench/{i % 40}",
                      session_id=f"bench-{part}-s{i // 4}", visitor_id=f"bench-{part}-v{i // 8}")
            for i in range(added)
        ]  # fmt: skip

    with app.app_context():
        today = utcnow().date()
        day_events = db.session.query(Event).filter(
            Event.site_id == site_id, Event.occurred_at >= dt.datetime.combine(today, dt.time())
        ).count()
        refresh()  # nothing left from the load
        store_events(batch(1))
        started = time.perf_counter()
        refresh()
        partial = time.perf_counter() - started
        store_events(batch(2))
        db.session.execute(insert(RollupQueue).values(site_id=site_id, day=today))  # no list
        db.session.commit()
        started = time.perf_counter()
        refresh()
        whole = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return RefreshCost(day_events, added, partial, whole)
