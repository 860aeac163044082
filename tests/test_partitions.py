"""Monthly partitions of `events` on PostgreSQL (migration 0008, analytics/partitions.py): rows land
in their month, `ensure` is idempotent and drains the default partition, the migration keeps every
row, and SQLite keeps working on the plain table."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
import sqlalchemy.orm
from flask_migrate import downgrade, upgrade

from analytics import create_app, partitions
from analytics.extensions import db
from analytics.ingest.writer import event_row, store_events
from analytics.models import RollupFact, RollupQueue, Site
from analytics.rollups import refresh as rollups

from .conftest import count
from .test_rollups import OVERVIEW, Period

EVENTS_COLUMNS = "site_id, occurred_at, id, name, path, session_id, visitor_id, props"


@pytest.fixture
def pg_app(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("partitions are a PostgreSQL feature")
    # The test database outlives each test (its tables are emptied between tests): start from
    # no ranged partition at all, only the default one.
    for part in partitions.partitions():
        db.session.execute(sa.text(f"DROP TABLE {part.name}"))
    db.session.commit()
    return app


def _events(site: Site, *days: dt.datetime, visit: str | None = None) -> list[dict]:
    """Page views at these times: one visit (and visitor) each, or all of them `visit`'s."""
    return [
        event_row(
            site_id=site.id,
            occurred_at=day,
            name="pageview",
            path=f"/{n % 3}",
            session_id=visit or f"s{day:%Y%m%d%H%M%S}-{n}",
            visitor_id=visit or f"s{day:%Y%m%d%H%M%S}-{n}",
            source="tracker",
        )
        for n, day in enumerate(days)
    ]


def _where_rows_are() -> dict[str, int]:
    rows = db.session.execute(
        sa.text("SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1")
    ).all()
    return dict(rows)


def test_events_of_three_months_land_in_three_partitions(pg_app, site) -> None:
    done = partitions.ensure(today=dt.date(2025, 1, 20), ahead=2)
    assert done.created == ["events_p2025_01", "events_p2025_02", "events_p2025_03"]
    assert done.drained == {}
    store_events(
        _events(
            site,
            dt.datetime(2025, 1, 1),
            dt.datetime(2025, 1, 31, 23, 59, 59),
            dt.datetime(2025, 2, 14),
            dt.datetime(2025, 3, 31, 12),
        )
    )
    assert _where_rows_are() == {"events_p2025_01": 2, "events_p2025_02": 1, "events_p2025_03": 1}
    names = [(p.name, p.start, p.end) for p in partitions.partitions()]
    assert names[0] == ("events_p2025_01", dt.date(2025, 1, 1), dt.date(2025, 2, 1))
    assert names[-1] == ("events_p2025_03", dt.date(2025, 3, 1), dt.date(2025, 4, 1))


def test_ensure_is_idempotent(pg_app, site) -> None:
    first = partitions.ensure(today=dt.date(2025, 11, 3))
    assert first.created == [
        "events_p2025_11",
        "events_p2025_12",
        "events_p2026_01",
        "events_p2026_02",
    ], "this month and the coming 3"
    listed = partitions.partitions()
    again = partitions.ensure(today=dt.date(2025, 11, 3))
    assert (again.created, again.drained) == ([], {})
    assert partitions.partitions() == listed
    # A month later, one more partition: the one now 3 months ahead.
    later = partitions.ensure(today=dt.date(2025, 12, 1))
    assert later.created == ["events_p2026_03"]


def test_an_event_without_a_partition_lands_in_the_default_and_ensure_drains_it(
    pg_app, site
) -> None:
    """Old events (an import) and far-future ones are stored at once; `ensure` then moves them to
    partitions of their own without touching the rollups or queueing their days again."""
    partitions.ensure(today=dt.date(2025, 6, 1), ahead=0)
    days = (dt.datetime(2019, 5, 4, 10), dt.datetime(2019, 5, 30), dt.datetime(2025, 6, 2))
    sent = _events(site, *days)
    assert store_events(sent) == 3
    assert _where_rows_are() == {partitions.DEFAULT: 2, "events_p2025_06": 1}
    rollups.refresh(max_rounds=20)
    facts = count(RollupFact)
    assert count(RollupQueue) == 0

    done = partitions.ensure(today=dt.date(2025, 6, 1), ahead=0)

    assert done.created == ["events_p2019_05"]
    assert done.drained == {"events_p2019_05": 2}
    assert _where_rows_are() == {"events_p2019_05": 2, "events_p2025_06": 1}
    assert count(RollupQueue) == 0, "moving rows between partitions queues nothing"
    assert count(RollupFact) == facts
    # The primary key still refuses a resend of the moved rows.
    assert store_events(sent) == 0
    assert partitions.ensure(today=dt.date(2025, 6, 1), ahead=0).created == []


def test_a_write_during_the_making_of_its_months_partition_waits_and_lands_there(
    pg_app, site, monkeypatch
) -> None:
    """A row of a month being given its partition, written meanwhile by another connection,
    waits for the partition and is stored in it (it failed the INSERT before: the row had been
    routed to the default partition, whose bound the new partition then narrowed)."""
    partitions.ensure(today=dt.date(2025, 6, 1), ahead=0)
    assert store_events(_events(site, dt.datetime(2019, 5, 4, 10))) == 1  # in the default
    before_commit, may_commit = threading.Event(), threading.Event()
    commit = sa.orm.Session.commit

    def paused_commit(session):
        if threading.current_thread().name == "ensure":
            before_commit.set()
            assert may_commit.wait(10)
        return commit(session)

    monkeypatch.setattr(sa.orm.Session, "commit", paused_commit)
    made: list = []

    def ensure_in_thread() -> None:
        with pg_app.app_context():
            made.append(partitions.add_month(dt.date(2019, 5, 1)))

    maker = threading.Thread(target=ensure_in_thread, name="ensure")
    maker.start()
    assert before_commit.wait(10), "add_month did not reach its commit"
    failure: list[BaseException] = []
    rows = _events(site, dt.datetime(2019, 5, 20, 12))

    def write() -> None:  # the ingest write path, on a connection of its own
        try:
            with pg_app.app_context():
                store_events(rows)
        except BaseException as exc:  # reported below
            failure.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(1.0)
    assert writer.is_alive(), "the write did not wait for the partition"
    may_commit.set()
    maker.join(10)
    writer.join(10)
    assert not failure, failure
    assert made == [1]
    assert _where_rows_are() == {"events_p2019_05": 2}


def _summary(site: Site, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    db.session.expire_all()
    return {
        name: fn(Period(site, start, end, "day")).reset_index(drop=True)
        for name, fn in OVERVIEW.items()
    }


def test_dropping_a_partition_leaves_the_rollups_figures_intact(pg_app, make_site) -> None:
    """Retention drops a month that every site is done with as a whole partition; what the
    dashboards show for that month and after it does not change."""
    old, young = make_site(), make_site()
    old.retention_months, young.retention_months = 1, 2
    db.session.commit()
    partitions.ensure(today=dt.date(2025, 1, 1), ahead=5)
    rows = []
    for site in (old, young):
        for day in range(1, 28, 3):
            for month in (1, 2, 3, 4, 5):
                at = dt.datetime(2025, month, day, 9 + day % 5)
                rows += _events(site, at, at + dt.timedelta(minutes=2), visit=f"{at:%m%d}")
    store_events(rows)
    rollups.refresh(max_rounds=50)
    january = (dt.datetime(2025, 1, 1), dt.datetime(2025, 2, 1))
    later = (dt.datetime(2025, 3, 1), dt.datetime(2025, 6, 1))
    before = {s.id: (_summary(s, *january), _summary(s, *later)) for s in (old, young)}

    # On 2025-04-20: `old` keeps from 2025-03-20, `young` from 2025-02-20: January is before both.
    from analytics.retention import purge

    report = purge(today=dt.date(2025, 4, 20))

    assert report.partitions_dropped == ["events_p2025_01"]
    assert "events_p2025_01" not in {p.name for p in partitions.partitions()}
    by_site = {r.public_id: r for r in report.sites}
    assert by_site[young.public_id].events == 18 + 14, "January, February to the 19th"
    assert by_site[old.public_id].events == 18 + 18 + 14, "January, February, March to the 19th"
    for site in (old, young):
        jan_before, later_before = before[site.id]
        jan_after, later_after = _summary(site, *january), _summary(site, *later)
        for name in ("summary", "timeseries", "pages", "referrers", "browsers"):
            pd.testing.assert_frame_equal(
                jan_after[name], jan_before[name], check_dtype=False, obj=f"January {name}"
            )
        if site is young:  # nothing of its retained period went
            for name, frame in later_before.items():
                if name == "summary":  # its comparison is with a period partly purged
                    frame, later_after[name] = (
                        df.drop(columns=["previous", "change_pct"])
                        for df in (frame, later_after[name])
                    )
                pd.testing.assert_frame_equal(later_after[name], frame, check_dtype=False)
    assert count(RollupQueue) == 0


def _rows(conn) -> list[tuple]:
    return conn.execute(sa.text(f"SELECT {EVENTS_COLUMNS} FROM events ORDER BY id")).all()


def test_the_migration_converts_a_table_with_data_and_back(postgres_url: str) -> None:
    """0008 on a database holding events and rollups: every row is kept, the keys, indexes and
    triggers come back, and nothing is queued for recount; its downgrade keeps every row too."""
    admin = os.environ["TEST_POSTGRES_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"analytics_migration_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_url).set(database=name).render_as_string(False)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "ROLLUPS": False})
    try:
        with app.app_context():
            upgrade(revision="0007_accounts_and_audit")
            site = Site(public_id="m", name="M", origins=[])
            db.session.add(site)
            db.session.commit()
            db.session.refresh(site)
            db.session.expunge(site)  # kept across the migrations' sessions
            days = [dt.datetime(2024, m, d, h) for m in (2, 7, 11) for d in (1, 15) for h in (3, 9)]
            rows = _events(site, *days)
            rows[0]["props"] = {"k": "é \\ \"q\""}
            rows[1]["dedupe_key"] = "resend-me"
            store_events(rows)
            # Today's refresher writes a fourth key (0011), which 0008 never touches: lent to
            # the old schema for the refresh, and taken back before upgrading.
            with db.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE rollup_facts ADD COLUMN k4 varchar(1024)"))
            rollups.refresh(max_rounds=20)
            with db.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE rollup_facts DROP COLUMN k4"))
            db.session.remove()
            with db.engine.connect() as conn:
                kept = _rows(conn)
            facts, queued = count(RollupFact), count(RollupQueue)

            upgrade()
            db.session.remove()
            with db.engine.connect() as conn:
                assert _rows(conn) == kept
                relkind = conn.execute(
                    sa.text("SELECT relkind FROM pg_class WHERE relname = 'events'")
                ).scalar()
            assert relkind == "p"
            assert {"events_p2024_02", "events_p2024_07", "events_p2024_11"} <= {
                p.name for p in partitions.partitions()
            }
            assert _where_rows_are().get(partitions.DEFAULT) is None
            assert (count(RollupFact), count(RollupQueue)) == (facts, queued)
            # The unique key and the insert trigger work on the new table.
            resend = dict(rows[1], id=uuid.uuid4())
            assert store_events([resend]) == 0
            assert store_events(_events(site, dt.datetime(2024, 7, 2))) == 1
            assert count(RollupQueue) == queued + 1
            db.session.remove()

            downgrade(revision="0007_accounts_and_audit")
            db.session.remove()
            with db.engine.connect() as conn:
                assert len(_rows(conn)) == len(kept) + 1
                relkind = conn.execute(
                    sa.text("SELECT relkind FROM pg_class WHERE relname = 'events'")
                ).scalar()
            assert relkind == "r"
            db.engine.dispose()
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def test_on_sqlite_the_commands_keep_working_on_the_plain_table(app, runner, site) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the plain-table case")
    assert partitions.ensure().partitioned is False
    assert partitions.droppable(dt.date(2100, 1, 1)) == []
    result = runner.invoke(args=["partitions", "ensure"])
    assert result.exit_code == 0 and "nothing to do" in result.output


def test_the_ensure_command_says_what_it_made(pg_app, runner) -> None:
    result = runner.invoke(args=["partitions", "ensure", "--ahead", "1"])
    assert result.exit_code == 0, result.output
    assert "created 2 partitions" in result.output
    again = runner.invoke(args=["partitions", "ensure", "--ahead", "1"])
    assert again.output.strip() == "created 0 partitions"
    listed = runner.invoke(args=["partitions", "list"])
    assert listed.exit_code == 0 and partitions.DEFAULT in listed.output


def test_a_demo_load_goes_straight_to_month_partitions(pg_app, runner) -> None:
    """`demo load` (COPY of past events) makes the months it covers first: nothing waits in
    the default partition for `ensure` to move it."""
    result = runner.invoke(args=["demo", "load", "--days", "70", "--events", "600", "--seed", "3"])
    assert result.exit_code == 0, result.output
    where = _where_rows_are()
    assert partitions.DEFAULT not in where
    assert sum(where.values()) == 600 and len(where) >= 3
    assert partitions.cover(dt.date(2025, 1, 1), dt.date(2025, 2, 28)) == [
        "events_p2025_01",
        "events_p2025_02",
    ]
    assert partitions.cover(dt.date(2025, 1, 1), dt.date(2025, 2, 28)) == []
