"""Rollups give exactly the raw queries' answers, on SQLite and PostgreSQL.

Hypothesis makes random event sets: several sites and days, visits that cross midnight, visitors
that come back on other days (legacy ids that never rotate), late events with an old time,
imported history, duplicates. After a refresh, every stats function must return through rollups
what it returns from raw events (`stats.reference()`), for ranges that start and end at any hour.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import stats
from analytics.extensions import db
from analytics.ingest.writer import event_row, insert_events, store_events
from analytics.models import RollupFact, RollupPresence, RollupQueue, RollupSpanEvent
from analytics.rollups import background
from analytics.rollups import refresh as rollups
from analytics.stats.base import reference

from .conftest import count

DAY0 = dt.datetime(2026, 3, 1)  # a Sunday: weeks and months are crossed too
DAYS = 5
# Random histories per property test: a few in `make test` (CI), many in `make fuzz`.
EXAMPLES = int(os.environ.get("ROLLUP_EXAMPLES", "8"))
# The settings of every such test (here and in test_slices.py): a history takes seconds to
# refresh, so no deadline, and the fixtures are the test's own.
HISTORIES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Period:
    site: object
    start: dt.datetime | None
    end: dt.datetime | None
    bucket: str = "day"

    def previous(self) -> Period:
        length = self.end - self.start
        return replace(self, start=self.start - length, end=self.start)


NAMES = ["pageview", "pageview", "pageview", "scroll", "signup", "impression", "show",
         "item_click", "showDetails", "click"]  # fmt: skip
PATHS = ["/", "/a", "/b", None]
REFERRERS = [None, "https://www.google.com/", "https://t.co/x"]
AGENTS = [(None, None, None), ("Chrome", "Windows", "desktop"), ("Safari", "iOS", "mobile")]

event = st.fixed_dictionaries(
    {
        "site": st.integers(0, 1),
        "minute": st.integers(0, DAYS * 24 * 60 - 1),
        "name": st.sampled_from(NAMES),
        "path": st.sampled_from(PATHS),
        "referrer": st.sampled_from(REFERRERS),
        "utm": st.sampled_from([None, "news", "ads"]),
        "session": st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3", "s4", "s5"])),
        "visitor": st.one_of(st.none(), st.sampled_from(["v1", "v2", "v3", "v4", "v5", "v6"])),
        "agent": st.sampled_from(AGENTS),
        "source": st.sampled_from(["tracker", "tracker", "benefits", "import", "track"]),
        "dedupe": st.one_of(st.none(), st.sampled_from(["d1", "d2", "d3"])),
        "item": st.sampled_from(["rsa", "apl"]),
        "position": st.one_of(st.none(), st.integers(1, 3)),
        "category": st.sampled_from([None, "results", "forms"]),
        "version": st.sampled_from([1, 2]),
        # Text, a number and none: a property filter compares the database's own text of each.
        "props": st.sampled_from([None, {"plan": "pro"}, {"plan": "free", "n": 2}, {"n": 2}]),
    }
)


def _row(sites, e: dict) -> dict:
    browser, os_, device = e["agent"]
    return event_row(
        site_id=sites[e["site"]].id,
        occurred_at=DAY0 + dt.timedelta(minutes=e["minute"], seconds=e["minute"] % 7),
        name=e["name"],
        source=e["source"],
        path=e["path"],
        referrer=e["referrer"],
        utm_source=e["utm"],
        utm_campaign="spring" if e["utm"] else None,
        session_id=e["session"],
        visitor_id=e["visitor"],
        browser=browser,
        os=os_,
        device=device,
        dedupe_key=e["dedupe"],
        category=e["category"],
        schema_version=e["version"],
        item_id=e["item"] if e["name"] in LISTED else None,
        item_position=e["position"] if e["name"] in LISTED else None,
        list_size=3 + (e["minute"] % 2) if e["name"] in LISTED else None,
        props=e.get("props"),
    )


LISTED = ("impression", "show", "item_click", "showDetails", "signup")


def _clear() -> None:
    with db.engine.begin() as conn:
        for table in ("events", "rollup_queue", "rollup_presence", "rollup_span_events",
                      "rollup_facts", "rollup_leases", "rollup_visit_days"):  # fmt: skip
            conn.execute(sa.text(f"DELETE FROM {table}"))
    db.session.remove()


OVERVIEW = {
    "summary": stats.overview_summary,
    "timeseries": stats.pageviews_over_time,
    "pages": stats.top_pages,
    "entry_pages": stats.entry_pages,
    "referrers": stats.referrers,
    "utm": stats.utm_campaigns,
    "browsers": stats.browsers,
    "os": stats.operating_systems,
    "devices": stats.devices,
    "events_over_time": lambda f: stats.events_over_time(f, top=3),
    "categories_over_time": stats.categories_over_time,
    "event_names": stats.event_names,
    "track_actions": lambda f: stats.action_counts(f, "track"),
    "event_over_time": lambda f: stats.event_over_time(f, "pageview"),
    "event_pages": lambda f: stats.event_pages(f, "signup"),
    "behaviour": stats.item_behaviour,
    "heatmap": stats.position_heatmap,
    "heatmap_rsa": lambda f: stats.position_heatmap(f, "rsa"),
    "ctr": stats.ctr_by_position,
    "items": lambda f: pd.DataFrame({"item": stats.list_items(f)}),
}


def assert_same_answers(site, start: dt.datetime, end: dt.datetime, bucket: str) -> None:
    period = Period(site, start, end, bucket)
    for name, fn in OVERVIEW.items():
        with reference():
            expected = fn(period)
        actual = fn(period)
        try:
            pd.testing.assert_frame_equal(
                actual.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
            )
        except AssertionError as exc:
            raise AssertionError(f"{name} over {start} - {end} ({bucket}): {exc}") from exc
    with reference():
        expected = (
            stats.event_count(period),
            stats.recorder.events_by_benefit(site.id, start),
            stats.recorder.statistics(site.id),
        )
    assert (
        stats.event_count(period),
        stats.recorder.events_by_benefit(site.id, start),
        stats.recorder.statistics(site.id),
    ) == expected


ranges = st.tuples(st.integers(-24, DAYS * 24 + 24), st.integers(1, DAYS * 24 + 24))


@HISTORIES
@given(
    first=st.lists(event, min_size=1, max_size=40),
    late=st.lists(event, max_size=15),
    hours=st.lists(ranges, min_size=1, max_size=3),
    built_before=st.booleans(),
)
def test_rollups_equal_raw_queries(app, make_site, first, late, hours, built_before):
    _clear()
    sites = [make_site("A"), make_site("B")]
    store_events([_row(sites, e) for e in first])
    if built_before:
        assert rollups.refresh() >= 1
    # Late arrivals: old times, duplicates of stored events, imports into built days.
    store_events([_row(sites, e) for e in late + first[:3]])
    rollups.refresh()
    assert count(RollupQueue) == 0
    for site in sites:
        for start_hour, length in hours:
            start = DAY0 + dt.timedelta(hours=start_hour)
            end = start + dt.timedelta(hours=length)
            bucket = "hour" if length <= 48 else "day"
            assert_same_answers(site, start, end, bucket)
        assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=DAYS), "week")
        month = dt.timedelta(days=30)
        assert_same_answers(site, DAY0 - month, DAY0 + month, "month")


def _stored_state() -> tuple[list, set]:
    """Every fact (without its id; seconds to the millisecond) and every span event's key."""
    facts = db.session.execute(
        sa.select(RollupFact.site_id, RollupFact.metric, RollupFact.day, RollupFact.k1,
                  RollupFact.k2, RollupFact.k3, RollupFact.n1, RollupFact.n2, RollupFact.n3,
                  RollupFact.n4, sa.func.round(sa.cast(RollupFact.x, sa.Numeric), 3))
    ).all()  # fmt: skip
    spans = set(db.session.execute(sa.select(RollupSpanEvent.site_id, RollupSpanEvent.id)).all())
    db.session.commit()
    return sorted(tuple(map(str, row)) for row in facts), spans


@HISTORIES
@given(
    first=st.lists(event, min_size=1, max_size=30),
    batches=st.lists(st.lists(event, min_size=1, max_size=10), min_size=1, max_size=4),
)
def test_added_rows_update_rollups_as_a_whole_rebuild_would(app, make_site, first, batches):
    """Built days then get rows added in several refreshes, each recounting only what the
    added rows touch (delta.py); the stored rollups must equal a whole rebuild's, and answers
    the raw queries'."""
    _clear()
    sites = [make_site("A"), make_site("B")]
    store_events([_row(sites, e) for e in first])
    rollups.refresh()
    for batch in batches:
        store_events([_row(sites, e) for e in batch])
        assert db.session.execute(
            sa.select(sa.func.count()).where(RollupQueue.added.is_(None))
        ).scalar() == 0  # only lists of added rows: the partial recount is what runs
        db.session.commit()
        rollups.refresh()
    assert count(RollupQueue) == 0
    partial = _stored_state()
    rollups.queue_rebuild()
    rollups.refresh()
    assert _stored_state() == partial
    for site in sites:
        assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=DAYS), "day")
        assert_same_answers(site, DAY0 + dt.timedelta(hours=13), DAY0 + dt.timedelta(hours=61),
                            "hour")  # fmt: skip


def test_added_rows_recount_only_what_they_touch(app, site, monkeypatch):
    """The plain case, where the partial recount must run: rows added to a built day."""
    from analytics.rollups import delta

    def visit(hour: int, visitor: str) -> dict:
        return event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(hours=hour),
                         name="pageview", source="tracker", path=f"/{hour}",
                         session_id=f"s-{visitor}", visitor_id=visitor)  # fmt: skip

    store_events([visit(h, f"v{h}") for h in range(1, 6)] + [visit(23, "night")])
    rollups.refresh()
    ran = []
    real = delta.recount_added
    monkeypatch.setattr(delta, "recount_added", lambda *a: ran.append(real(*a)))
    store_events([visit(7, "v1"), visit(8, "new"), visit(9, "new")])
    store_events([visit(1, "night"), visit(10, "new")])
    rollups.refresh()
    assert len(ran) == 1 and count(RollupQueue) == 0
    assert count(RollupSpanEvent) == 0
    store_events([visit(25, "night")])  # the night visit is now seen on two days
    rollups.refresh()  # (the new day is built first, and queues this one whole)
    assert count(RollupQueue) == 0
    assert count(RollupSpanEvent) == 3
    partial = _stored_state()
    rollups.queue_rebuild()
    rollups.refresh()
    assert _stored_state() == partial
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=2), "hour")


def test_added_rows_that_touch_most_of_the_day_recount_it_whole(app, site, monkeypatch):
    """A visitor whose events run through most of a built day: an added row of theirs touches
    the whole of it, and the day is recounted whole rather than read twice in part."""
    from analytics.rollups import delta

    monkeypatch.setattr(delta, "SMALL_DAY", 5)  # a day of tens of events is "big" here

    def visit(minute: int, visitor: str) -> dict:
        return event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(minutes=minute),
                         name="pageview", source="tracker", path=f"/{minute % 7}",
                         session_id=f"s-{visitor}", visitor_id=visitor)  # fmt: skip

    store_events([visit(m, "regular") for m in range(30)])
    store_events([visit(100 + m, f"v{m}") for m in range(10)])
    rollups.refresh()
    calls = []
    real = rollups.refresh_day
    monkeypatch.setattr(rollups, "refresh_day",
                        lambda s, d, whole=False: calls.append(whole) or real(s, d, whole))
    store_events([visit(200, "regular")])  # touches 31 of the day's 41 events
    rollups.refresh()
    assert calls == [False, True] and count(RollupQueue) == 0
    recounted = _stored_state()
    rollups.queue_rebuild()
    rollups.refresh()
    assert _stored_state() == recounted
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=1), "hour")


def test_a_deletion_or_a_big_statement_recounts_the_whole_day(app, site):
    """Only inserts list their rows; the trigger lists at most ADDED_LIMIT rows a statement."""
    from analytics.rollups import delta

    store_events([event_row(site_id=site.id, occurred_at=DAY0, name="pageview", source="api",
                            visitor_id="v")])  # fmt: skip
    added = db.session.execute(sa.select(RollupQueue.added)).scalar_one()
    assert len(added) == 1
    db.session.commit()
    rollups.refresh()
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))
    assert delta.recounts_whole(site.id, DAY0.date())
    db.session.commit()
    rollups.refresh()
    assert stats.event_count(Period(site, DAY0, DAY0 + dt.timedelta(days=1))) == 0


def test_a_visit_across_midnight_counts_once(app, site):
    """The case the span events exist for: one visit, one visitor, two days."""
    store_events(_midnight_visit(site))
    rollups.refresh()
    assert count(RollupQueue) == 0
    assert count(RollupSpanEvent) == 2
    period = Period(site, DAY0, DAY0 + dt.timedelta(days=2))
    summary = stats.overview_summary(period).set_index("metric")["value"]
    assert (summary["visitors"], summary["visits"], summary["pageviews"]) == (1, 1, 2)
    assert summary["avg_visit_seconds"] == 900.0
    assert summary["bounce_rate"] == 0.0
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=2), "day")


def _midnight_visit(site) -> list[dict]:
    """One visit of one visitor: a page view at 23:50 on DAY0, another at 00:05 the next day."""
    return [
        event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(hours=23, minutes=50),
                  name="pageview", source="tracker", path="/", session_id="s", visitor_id="v"),
        event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(days=1, minutes=5),
                  name="pageview", source="tracker", path="/b", session_id="s", visitor_id="v"),
    ]  # fmt: skip


def test_a_visit_cut_back_to_one_day_is_counted_there_again(app, site):
    """Deleting the after-midnight part of a visit makes the other day's events day-local."""
    store_events(_midnight_visit(site))
    rollups.refresh()
    assert count(RollupSpanEvent) == 2
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE path = '/b'"))
    rollups.refresh()
    assert count(RollupQueue) == 0
    assert count(RollupSpanEvent) == 0
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=2), "day")


def test_reads_need_no_refresh_and_deletions_are_recounted(app, site):
    """Unbuilt days are read raw; a deleted event's day is queued and recomputed."""
    store_events(
        [
            event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(hours=h), name="pageview",
                      source="tracker", path="/", session_id=f"s{h}", visitor_id=f"v{h}")
            for h in range(6)
        ]
    )  # fmt: skip
    period = Period(site, DAY0, DAY0 + dt.timedelta(days=1))
    assert stats.event_count(period) == 6  # nothing built yet: raw
    rollups.refresh()
    assert db.session.execute(sa.select(sa.func.count()).select_from(RollupFact)).scalar() > 0
    assert stats.event_count(period) == 6  # built: from facts
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE session_id IN ('s0', 's1')"))
    assert count(RollupQueue) >= 1
    rollups.refresh()
    assert stats.event_count(period) == 4
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=1), "hour")
    assert count(RollupPresence) == 8  # 4 visitors and 4 visits


def test_one_refresher_at_a_time(app, site):
    store_events([event_row(site_id=site.id, occurred_at=DAY0, name="pageview", source="api")])
    assert rollups.acquire_lease("another-node")
    assert rollups.refresh() == -1  # the other holder is at work
    assert count(RollupQueue) == 1
    rollups.release_lease("another-node")
    assert rollups.refresh() == 1
    assert count(RollupQueue) == 0


def test_cli_status_rebuild_and_refresh(app, site, runner):
    store_events(
        [event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(days=d), name="pageview",
                   source="api", visitor_id=f"v{d}") for d in range(3)]
    )  # fmt: skip
    status = runner.invoke(args=["rollups", "status"])
    assert status.exit_code == 0, status.output
    assert "last refresh: never" in status.output
    assert f"{site.public_id}\tExample\t0 days built\t3 queued\tlag " in status.output
    result = runner.invoke(args=["rollups", "refresh"])
    assert result.exit_code == 0 and "refreshed 3 days" in result.output, result.output
    assert "3 days built\t0 queued\tup to date" in runner.invoke(args=["rollups", "status"]).output
    since = (DAY0 + dt.timedelta(days=1)).date().isoformat()
    rebuilt = runner.invoke(args=["rollups", "rebuild", "--site", site.public_id, "--since", since])
    assert rebuilt.exit_code == 0 and "rebuilt 2 days" in rebuilt.output, rebuilt.output
    assert "no site" in runner.invoke(args=["rollups", "rebuild", "--site", "nope"]).output


def _wait_for(condition, seconds: float = 20) -> bool:
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize(
    "app_config",
    [
        {"TESTING": False, "ROLLUP_INTERVAL": 0.2},
        {"TESTING": False, "ROLLUP_INTERVAL": 0.2, "ROLLUP_PROCESS": False},
    ],
    ids=["child-process", "thread"],
)
def test_each_process_refreshes_in_the_background(app, client, site):
    """No extra command: the first request starts the refresher; queued days get built."""
    store_events([event_row(site_id=site.id, occurred_at=DAY0, name="pageview", source="api")])
    assert count(RollupQueue) == 1
    try:
        client.get("/healthz")
        assert _wait_for(lambda: count(RollupQueue) == 0)
        assert any(t.name == "rollup-refresher" for t in threading.enumerate())
        assert len(background._children) == (1 if app.config["ROLLUP_PROCESS"] else 0)
    finally:
        background.stop(app)
    assert not any(t.name == "rollup-refresher" for t in threading.enumerate())
    assert background._children == []


@pytest.mark.parametrize(
    "app_config", [{"TESTING": False, "ROLLUP_INTERVAL": 0.2, "ROLLUP_NICE": 10}]
)
def test_a_refresher_process_that_dies_is_started_again(app, client, site):
    """The child is lowered by ROLLUP_NICE, named for `top`, replaced when killed, and ended by
    `stop` (as at a worker's exit)."""
    client.get("/healthz")
    try:
        assert _wait_for(lambda: len(background._children) == 1)
        first = background._children[0]
        assert _wait_for(lambda: Path(f"/proc/{first.pid}/comm").read_text().strip()
                         == "rollup-refresh")
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, first.pid) >= min(19, own + 10)
        first.kill()
        assert _wait_for(lambda: background._children and background._children[0] is not first)
        store_events([event_row(site_id=site.id, occurred_at=DAY0, name="pageview", source="api")])
        assert _wait_for(lambda: count(RollupQueue) == 0)
        second = background._children[0]
    finally:
        background.stop(app)
    assert second.poll() is not None and background._children == []


def test_a_process_that_ends_frees_the_lease(app, site):
    """A stopped worker hands the lease on at once, not after it expires."""
    assert rollups.acquire_lease()
    assert not rollups.acquire_lease("another-node")
    background.release_on_exit(app)
    assert rollups.acquire_lease("another-node")
    rollups.release_lease("another-node")


def test_whole_months_read_their_month_sums(app, site):
    """A range holding a whole month adds that month's sums, not its 31 days; same answers."""
    march = dt.datetime(2026, 3, 1)
    store_events(
        [
            event_row(site_id=site.id, occurred_at=march + dt.timedelta(days=d, hours=h),
                      name=name, source="benefits" if name == "show" else "tracker",
                      path=f"/p{d % 3}", session_id=f"s{d}", visitor_id=f"v{min(d, 6)}",
                      item_id="rsa", item_position=1 + h % 3, list_size=3, schema_version=2)
            for d in range(31) for h in (9, 23) for name in ("pageview", "show")
        ]
    )  # fmt: skip
    rollups.refresh()
    monthly = db.session.execute(
        sa.select(sa.func.count()).select_from(RollupFact).where(RollupFact.metric == "m:pages")
    ).scalar_one()
    assert monthly == 3  # one row per path for March
    assert_same_answers(site, dt.datetime(2026, 2, 15), dt.datetime(2026, 4, 15), "week")
    assert_same_answers(site, march, dt.datetime(2026, 4, 1), "day")
    # A late event in March recomputes March's sums too.
    late = event_row(site_id=site.id, occurred_at=march + dt.timedelta(days=3), name="pageview",
                     source="tracker", path="/late", visitor_id="v9")  # fmt: skip
    store_events([late])
    rollups.refresh()
    assert_same_answers(site, dt.datetime(2026, 2, 15), dt.datetime(2026, 4, 15), "week")
    pages = stats.top_pages(Period(site, march, dt.datetime(2026, 4, 1)))
    assert "/late" in set(pages["path"])


def test_statistics_reads_the_all_time_sums(app, site):
    """GET /statistics asks for everything: one stored sum, kept current by each refresh."""
    def record(day: int, position: int) -> dict:
        return event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(days=day),
                         name="show", source="benefits", item_id="rsa", item_position=position,
                         list_size=4, schema_version=2, visitor_id=f"h{day}")  # fmt: skip

    store_events([record(d, 1 + d % 4) for d in range(40)])
    rollups.refresh()
    totals = db.session.execute(
        sa.select(sa.func.sum(RollupFact.n1)).where(RollupFact.metric == "t:recorder_positions")
    ).scalar_one()
    assert totals == 40
    with reference():
        expected = stats.recorder.statistics(site.id)
    assert stats.recorder.statistics(site.id) == expected
    assert expected[0]["events_count"] == 40
    store_events([record(3, 2)])  # a late record changes the all-time sum at the next refresh
    rollups.refresh()
    assert stats.recorder.statistics(site.id)[0]["events"]["show"]["4"]["2"] == 11


def test_longest_values_fit_the_stored_keys(app, site):
    """Every key column takes the longest value its events column can hold."""
    long_path = "/" + "é" * 1023
    store_events(
        [
            event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(hours=1), name=name,
                      source="tracker", path=long_path, referrer="https://" + "r" * 1000 + "/",
                      utm_source="s" * 100, utm_medium="m" * 100, utm_campaign="c" * 100,
                      category="k" * 100, item_id="i" * 200, item_position=1, list_size=2,
                      session_id="s" * 64, visitor_id="v" * 64)
            for name in ("pageview", "n" * 100, "impression")
        ]
    )  # fmt: skip
    assert rollups.refresh() == 1
    assert count(RollupQueue) == 0
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=1), "hour")
    pages = stats.event_pages(Period(site, DAY0, DAY0 + dt.timedelta(days=1)), "n" * 100)
    assert set(pages["path"]) == {long_path}


def test_a_refresher_that_loses_its_lease_stops_and_requeues(app, site, monkeypatch):
    store_events(
        [event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(days=d), name="pageview",
                   source="api", visitor_id=f"v{d}") for d in range(3)]
    )  # fmt: skip
    real = rollups.refresh_day

    def then_lose(site_id, day):
        real(site_id, day)
        rollups.release_lease(refreshed=False)
        assert rollups.acquire_lease("another-node")  # our lease is gone after the first day

    monkeypatch.setattr(rollups, "refresh_day", then_lose)
    assert rollups.refresh() == 1
    queued = {d for (d,) in db.session.execute(sa.select(RollupQueue.day).distinct())}
    assert len(queued) == 3  # two never done, and the done one queued again for its month


def test_a_refresh_asked_to_stop_ends_between_rounds_and_frees_the_lease(app, site):
    """A refresher told to end (SIGTERM at a worker's exit) leaves the queue for the next one."""
    store_events([event_row(site_id=site.id, occurred_at=DAY0, name="pageview", source="api")])
    assert rollups.refresh(stopping=lambda: True) == 0
    assert count(RollupQueue) == 1
    assert rollups.acquire_lease("another-node")
    rollups.release_lease("another-node")
    assert rollups.refresh() == 1 and count(RollupQueue) == 0


def _sent_then_cut() -> None:
    """A statement sent, its answer not read: SIGTERM right after psycopg sent it."""
    raw = db.session.connection().connection.driver_connection
    raw.pgconn.send_query(b"SELECT pg_sleep(0.05)")
    raise SystemExit(0)


def _cut_while_waiting() -> None:
    """SIGTERM while psycopg waits for an answer under SQLAlchemy (which then marks the
    connection invalid), as the refresher process's handler does it: a real signal."""
    def end(*_):
        raise SystemExit(0)

    previous = signal.signal(signal.SIGALRM, end)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        db.session.execute(sa.text("SELECT pg_sleep(1)"))  # cut after 0.1 s
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cut_inside_commit() -> None:
    """SIGTERM inside `commit()`: the server has committed, SQLAlchemy has not yet closed the
    transaction (its after_commit hooks, then its bookkeeping), and refuses a rollback."""

    def end(_session):
        raise SystemExit(0)

    session = db.session()
    sa.event.listen(session, "after_commit", end, once=True)
    session.execute(sa.text("SELECT 1"))
    session.commit()


@pytest.mark.parametrize("cut", [_sent_then_cut, _cut_while_waiting, _cut_inside_commit])
def test_a_refresh_cut_short_inside_a_statement_still_ends_and_frees_the_lease(
    app, site, monkeypatch, cut
):
    """SIGTERM ends the refresher process at once (its handler raises SystemExit), and may land
    while a statement is in flight: the connection then cannot even roll back ("another
    command is already in progress"). The refresh must still end with the SystemExit, not
    with an error of its clean-up (which `refresh_round` logged as a failed round, with two
    tracebacks, at a server's stop), and free the lease on its way out; its day stays queued.
    Likewise when it lands inside a commit, where SQLAlchemy refuses the rollback."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a statement in flight on a psycopg connection")
    store_events([event_row(site_id=site.id, occurred_at=DAY0, name="pageview", source="api")])
    monkeypatch.setattr(rollups, "refresh_day", lambda site_id, day: cut())
    with pytest.raises(SystemExit):
        rollups.refresh()
    monkeypatch.undo()
    assert rollups.acquire_lease("another-node")  # freed, not left to expire
    rollups.release_lease("another-node")
    assert count(RollupQueue) == 1
    assert rollups.refresh() == 1 and count(RollupQueue) == 0


def test_events_of_one_instant_are_found_by_their_primary_key(app, site):
    """Thousands of collector events sent with one timestamp (a client's fixed clock, an import
    of whole seconds) share an occurred_at. The refresher finds the rows an insert added by
    (site_id, occurred_at, id): through the primary key, one row a probe. While the dedupe
    index was a full one, PostgreSQL probed it by (site_id, occurred_at) and filtered on id,
    reading all of the instant's events for each row (3.5 s for 4,000; 13 ms by the key), its
    statistics, from before the burst, having every instant rare. The index holds only rows
    with a key since migration 0015, so nothing without `dedupe_key IS NOT NULL` can use it."""
    instant = DAY0 + dt.timedelta(hours=9)
    burst = [
        event_row(site_id=site.id, occurred_at=instant, name="pageview", source="collector",
                  session_id=f"s{n}", visitor_id=f"v{n}", dedupe_key=f"k{n}")
        for n in range(3000)
    ]  # fmt: skip
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:  # a day of spread-out events, as the planner's statistics last saw it
        spread = [
            event_row(site_id=site.id, occurred_at=instant + dt.timedelta(seconds=n),
                      name="pageview", source="tracker", visitor_id=f"t{n}")
            for n in range(1, 20000)
        ]  # fmt: skip
        with db.engine.begin() as conn:
            insert_events(conn, spread)
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE events"))  # autovacuum's last look, before the burst
    with db.engine.begin() as conn:
        insert_events(conn, burst)
    again = event_row(**{k: v for k, v in burst[0].items() if k not in ("id", "received_at")})
    assert store_events([again]) == 0  # a duplicate: the partial index is still an arbiter
    index = sa.text(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_events_site_time_dedupe'"
        if postgres
        else "SELECT sql FROM sqlite_master WHERE name = 'uq_events_site_time_dedupe'"
    )
    assert "dedupe_key IS NOT NULL" in db.session.execute(index).scalar_one()
    if not postgres:
        return
    db.session.execute(sa.text(
        "CREATE TEMPORARY TABLE added AS SELECT occurred_at, id FROM events "
        "WHERE dedupe_key IS NOT NULL"
    ))  # fmt: skip
    db.session.execute(sa.text("ANALYZE added"))
    db.session.execute(sa.text("SET LOCAL random_page_cost = 1.1"))  # as delta.recount_added
    # The plan it chose on a day of 115,000 events; on this small one it would read them all.
    db.session.execute(sa.text("SET LOCAL enable_hashjoin = off"))
    db.session.execute(sa.text("SET LOCAL enable_mergejoin = off"))
    plan = "\n".join(db.session.execute(sa.text(
        "EXPLAIN SELECT e.visitor_id FROM events e JOIN added a ON e.site_id = :site "
        "AND e.occurred_at = a.occurred_at AND e.id = a.id"
    ), {"site": site.id}).scalars())  # fmt: skip
    db.session.rollback()
    assert "dedupe" not in plan and "_pkey on events_" in plan, plan


def test_a_sites_first_day_is_planned_with_its_own_rows(app, make_site):
    """The first build of a site's day writes its presence rows and then joins them with the
    site's other days. PostgreSQL's statistics, from before, knew no row of the site and
    planned thousands as one: a nested loop that compared every row with every other (37.7 s
    for 14,236 rows in the ingest bench). The build brings the statistics up to date first."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    older, new = make_site(name="Older", public_id="older"), make_site(name="New", public_id="new")
    store_events([event_row(site_id=older.id, occurred_at=DAY0, name="pageview",
                            source="api", visitor_id=f"o{n}") for n in range(20)])  # fmt: skip
    rollups.refresh()
    db.session.execute(sa.text("ANALYZE rollup_presence"))  # the statistics know `older` only
    db.session.commit()
    store_events([event_row(site_id=new.id, occurred_at=DAY0, name="pageview", source="api",
                            visitor_id=f"n{n}") for n in range(1500)])  # fmt: skip
    rollups.refresh()
    plan = "\n".join(db.session.execute(sa.text(
        "EXPLAIN SELECT * FROM rollup_presence WHERE site_id = :site AND day = :day"
    ), {"site": new.id, "day": DAY0.date()}).scalars())  # fmt: skip
    estimated = int(plan.split("rows=")[1].split()[0])
    assert estimated > 1000, plan  # 3,000 rows: a visitor and a visit each


def test_a_day_that_more_than_doubles_is_still_recounted_in_part(app, site, monkeypatch):
    """A young day under load takes more rows in a round than it held: the partial recount is
    still the cheaper (delta.WHOLE_AFTER), and agrees with a whole rebuild."""
    from analytics.rollups import delta

    def rows(start: int, n: int) -> list[dict]:
        return [event_row(site_id=site.id, occurred_at=DAY0 + dt.timedelta(seconds=s),
                          name="pageview", source="tracker", path=f"/{s % 7}",
                          session_id=f"s{s // 3}", visitor_id=f"v{s // 6}")
                for s in range(start, start + n)]  # fmt: skip

    store_events(rows(0, 1200))
    rollups.refresh()
    ran = []
    real = delta.recount_added
    monkeypatch.setattr(delta, "recount_added", lambda *a: ran.append(real(*a)))
    for at in range(1200, 3600, 400):  # 2,400 added to a day of 1,200, in statements of 400
        store_events(rows(at, 400))
    rollups.refresh()
    assert len(ran) == 1 and count(RollupQueue) == 0
    partial = _stored_state()
    rollups.queue_rebuild()
    rollups.refresh()
    assert _stored_state() == partial
    assert_same_answers(site, DAY0, DAY0 + dt.timedelta(days=1), "hour")


def _rows_read_in_subplans(plan: dict) -> int:
    """Rows that the subplans of an `EXPLAIN (ANALYZE, FORMAT JSON)` plan read, over all of
    their runs (returned and filtered out)."""

    def walk(node: dict, inside: bool) -> int:
        inside = inside or node.get("Parent Relationship") == "SubPlan"
        read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        own = read * node.get("Actual Loops", 1) if inside else 0
        return own + sum(walk(child, inside) for child in node.get("Plans", []))

    return walk(plan["Plan"], False)


def test_touched_events_are_matched_by_lookups_whatever_the_number_of_keys(app):
    """A partial recount tests the touched events against the touched keys (delta.TOUCHED,
    SPANNING; `_touches` alike). As `key IN (SELECT ...)` under an OR, PostgreSQL hashed the
    keys only while its estimate of them fitted in work_mem; past that, each event scanned
    them one by one: a round of the ingest bench's 20 s runs ran for ten minutes.
    Here work_mem is at its least, so that 3,000 keys of a kind do not fit, and the keys read
    are counted over every lookup: a few per event (millions by the old test)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    from analytics.rollups import delta

    n = 3000  # events with a visitor each, two of three a session: ids as long as ours
    db.session.execute(sa.text(
        f"CREATE TEMPORARY TABLE {delta.TOUCHED_EVENTS} AS SELECT g, md5(g::text) AS visitor_id,"
        " CASE WHEN g % 3 > 0 THEN 's' || md5(g::text) END AS session_id"
        " FROM generate_series(1, :n) g"
    ), {"n": n})  # fmt: skip
    delta.KEYS.create(db.session.connection())
    db.session.execute(sa.text(
        "INSERT INTO rollup_touched (kind, key, spans) SELECT 'u', visitor_id, 'n' "
        f"FROM {delta.TOUCHED_EVENTS} UNION ALL SELECT 'v', coalesce(session_id, visitor_id), "
        f"CASE WHEN g % 10 = 7 THEN 'y' ELSE 'n' END FROM {delta.TOUCHED_EVENTS}"
    ))  # fmt: skip
    db.session.execute(sa.text(f"ANALYZE rollup_touched; ANALYZE {delta.TOUCHED_EVENTS}"))
    db.session.execute(sa.text("SET LOCAL work_mem = '64kB'"))
    explain = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM {} e WHERE {}"
    for where, kept in (
        (delta.TOUCHED, n),
        (f"{delta.TOUCHED} AND NOT {delta.SPANNING}", n - n // 10),  # a tenth of visits span
    ):
        plan = db.session.execute(sa.text(explain.format(delta.TOUCHED_EVENTS, where))).scalar()
        count_ = db.session.execute(
            sa.text(f"SELECT count(*) FROM {delta.TOUCHED_EVENTS} e WHERE {where}")
        ).scalar()
        assert count_ == kept
        assert _rows_read_in_subplans(plan[0]) <= 10 * n, where
    copy = sa.table(delta.TOUCHED_EVENTS, sa.column("visitor_id"), sa.column("session_id"))
    query = sa.select(sa.func.count()).select_from(copy).where(delta._touches(copy, spans=True))
    statement = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
    plan = db.session.execute(sa.text("EXPLAIN (ANALYZE, FORMAT JSON) " + statement)).scalar()
    assert db.session.execute(query).scalar() == n // 10
    assert _rows_read_in_subplans(plan[0]) <= 10 * n
    db.session.rollback()
