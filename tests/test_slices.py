"""Split rollups (analytics/rollups/slices.py): an Overview under one filter of one value gives
exactly the raw queries' answers, on SQLite and PostgreSQL, whatever the days' state (split when
built, recounted in part since, split again later, or not split yet). So does one under any
visit-level filters (several values, negated, several dimensions), read from the split days'
visit rows (analytics/rollups/visits.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import pandas as pd
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from analytics import stats
from analytics.extensions import db
from analytics.ingest.writer import store_events
from analytics.models import RollupFact, RollupQueue, RollupVisitDay
from analytics.rollups import read, slices, visits
from analytics.rollups import refresh as rollups
from analytics.segments import Condition, Segment
from analytics.stats.base import METRICS, reference

from .conftest import count
from .test_rollups import AGENTS, DAY0, DAYS, HISTORIES, _clear, _row, event

# One filter each, of every split dimension; some match nothing in the random events.
FILTERS = [
    ("referrer", "www.google.com"), ("referrer", "(direct)"), ("referrer", "t.co"),
    ("entry", "/a"), ("entry", "/"), ("utm_source", "news"), ("utm_medium", "email"),
    ("utm_campaign", "spring"), ("browser", "Chrome"), ("os", "iOS"), ("device", "mobile"),
    ("country", "FR"), ("country", "BE"), ("path", "/a"), ("path", "/"), ("name", "pageview"),
    ("name", "signup"), ("item", "rsa"), ("source", "tracker"), ("source", "benefits"),
    ("category", "results"),
]  # fmt: skip
COUNTRIES = ["FR", "BE", None]


@dataclass(frozen=True)
class Filtered:
    site: object
    start: dt.datetime | None
    end: dt.datetime | None
    bucket: str = "day"
    segment: Segment | None = None

    def previous(self) -> Filtered:
        length = self.end - self.start
        return replace(self, start=self.start - length, end=self.start)


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
    "countries": stats.countries,
    "events": lambda f: pd.DataFrame({"events": [stats.event_count(f)]}),
}


def _rows(sites, events: list[dict]) -> list[dict]:
    """The rollup tests' rows, with a country by the minute (one visit can change country)."""
    return [_row(sites, e) | {"country": COUNTRIES[e["minute"] % 3]} for e in events]


def assert_filtered_answers(period: Filtered) -> None:
    for name, fn in OVERVIEW.items():
        with reference():
            expected = fn(period)
        actual = fn(period)
        try:
            pd.testing.assert_frame_equal(
                actual.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
            )
        except AssertionError as exc:
            raise AssertionError(f"{name} under {period.segment} {period.start} - {period.end}"
                                 f" ({period.bucket}): {exc}") from exc  # fmt: skip


def _segment(dimension: str, value: str) -> Segment:
    return Segment((Condition(dimension, (value,)),))


@HISTORIES
@given(
    first=st.lists(event, min_size=1, max_size=40),
    late=st.lists(event, max_size=12),
    chosen=st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3, unique=True),
    start_hour=st.integers(-24, DAYS * 24),
    split_again=st.booleans(),
)
def test_split_rollups_equal_raw_queries(
    app, make_site, first, late, chosen, start_hour, split_again
):
    _clear()
    sites = [make_site("A"), make_site("B")]
    store_events(_rows(sites, first))
    rollups.refresh()
    # Late rows: recounted in part (the day's split counts removed), then split again or not.
    store_events(_rows(sites, late + first[:2]))
    if split_again:
        rollups.refresh()
    else:  # recount without splitting: those days are read raw under a filter
        # One round at a time (a round can queue other days again: a visit now spans), until
        # nothing is queued: a queued day is read as stored, at most one refresh behind.
        for _ in range(10):
            rollups.refresh(max_rounds=10, stopping=_after_first_round())
            if not count(RollupQueue):
                break
    assert count(RollupQueue) == 0
    whole = Filtered(sites[0], DAY0, DAY0 + dt.timedelta(days=DAYS))
    partial = Filtered(sites[0], DAY0 + dt.timedelta(hours=start_hour),
                       DAY0 + dt.timedelta(hours=start_hour + 37), "hour")  # fmt: skip
    for dimension, value in chosen:
        segment = _segment(dimension, value)
        for period in (whole, partial, replace(whole, bucket="week")):
            assert_filtered_answers(replace(period, segment=segment))


def _after_first_round():
    """A `stopping` that lets the refresher finish its first round and split nothing after."""
    calls = {"n": 0}

    def stopping() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    return stopping


def _split_state() -> list[tuple]:
    names = slices.stored_names()
    rows = db.session.execute(
        sa.select(RollupFact.site_id, RollupFact.metric, RollupFact.day, RollupFact.k1,
                  RollupFact.k2, RollupFact.k3, RollupFact.k4, RollupFact.n1, RollupFact.n2,
                  RollupFact.n3, RollupFact.n4,
                  sa.func.round(sa.cast(RollupFact.x, sa.Numeric), 3))
        .where(RollupFact.metric.in_(names))
    ).all()  # fmt: skip
    db.session.commit()
    return sorted(tuple(map(str, row)) for row in rows)


def test_a_partial_recount_removes_a_days_split_counts_and_they_come_back(app, site):
    day = DAY0.date()
    store_events(_rows([site], [
        {**e, "site": 0} for e in _fixed_events()
    ]))  # fmt: skip
    rollups.refresh()
    built = _split_state()
    assert any(r[1] == "summary@co" and r[3] == "FR" for r in built)
    assert (str(site.id), slices.SLICED, str(day)) in {r[:3] for r in built}
    store_events(_rows([site], [{**_fixed_events()[0], "minute": 30, "dedupe": None}]))
    rollups.refresh(max_rounds=10, stopping=_after_first_round())
    assert not any(r[2] == str(day) for r in _split_state())  # read raw until split again
    period = Filtered(site, DAY0, DAY0 + dt.timedelta(days=2), segment=_segment("country", "FR"))
    assert read._split_plan(period).unbuilt == (day,)
    assert_filtered_answers(period)
    assert rollups.split_missing() == 1
    assert read._split_plan(period).raw == ()
    assert_filtered_answers(period)
    split_again = _split_state()
    rollups.queue_rebuild()
    rollups.refresh(max_rounds=10, stopping=_after_first_round())
    assert _split_state() == split_again  # a whole recount splits an ended day at once


def test_today_is_not_split_and_is_read_raw(app, site):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events = [{**e, "minute": 0} for e in _fixed_events()]
    rows = _rows([site], events)
    for n, row in enumerate(rows):
        row["occurred_at"] = today + dt.timedelta(seconds=n)
    store_events(rows)
    rollups.refresh()
    assert not [r for r in _split_state() if r[2] == str(today.date())]
    period = Filtered(site, today - dt.timedelta(days=1), today + dt.timedelta(days=1),
                      segment=_segment("browser", "Chrome"))  # fmt: skip
    assert today.date() in read._split_plan(period).unbuilt
    assert_filtered_answers(period)
    assert stats.overview_summary(period).set_index("metric").loc["visits", "value"] == 1


def test_only_one_value_of_one_dimension_reads_split_counts():
    one = _segment("country", "FR")
    assert slices.splittable(one) == ("country", "FR")
    assert slices.splittable(Segment((Condition("country", ("FR", "BE")),))) is None
    assert slices.splittable(Segment((Condition("country", ("FR",), negated=True),))) is None
    assert slices.splittable(Segment((Condition("prop.plan", ("pro",)),))) is None
    assert slices.splittable(Segment((Condition("goal", ("Signup",)),))) is None
    two = Segment((Condition("country", ("FR",)), Condition("path", ("/a",))))
    assert slices.splittable(two) is None
    assert slices.splittable(Segment()) is None
    # Every split name fits rollup_facts.metric, with the month prefix a metric may get.
    assert max(len("m:" + name) for name in slices.stored_names()) <= 24


def _fixed_events() -> list[dict]:
    """Two visits on DAY0: s1 (Chrome, from Google, entry /a), s2 (Safari, direct, entry /)."""
    base = {"site": 0, "referrer": None, "utm": None, "visitor": None, "source": "tracker",
            "dedupe": None, "item": "rsa", "position": None, "category": None, "version": 2}
    chrome, safari = ("Chrome", "Windows", "desktop"), ("Safari", "iOS", "mobile")
    return [
        base | {"minute": 60, "name": "pageview", "path": "/a", "session": "s1",
                "referrer": "https://www.google.com/", "agent": chrome},
        base | {"minute": 63, "name": "pageview", "path": "/b", "session": "s1", "agent": chrome},
        base | {"minute": 64, "name": "signup", "path": "/b", "session": "s1", "agent": chrome},
        base | {"minute": 70, "name": "pageview", "path": "/", "session": "s2", "agent": safari},
    ]  # fmt: skip


# Every visit-level dimension's values in the random events (and one that matches nothing).
VISIT_VALUES: dict[str, list[str]] = {}
for _dimension, _value in [*FILTERS, ("utm_source", "ads"), ("utm_medium", "cpc"),
                           ("utm_campaign", "(none)"), ("browser", "Safari"), ("os", "Windows"),
                           ("device", "desktop"), ("entry", "/b")]:  # fmt: skip
    if _dimension in visits.JUDGED:
        VISIT_VALUES.setdefault(_dimension, []).append(_value)
# And every event-level one's.
EVENT_VALUES: dict[str, list[str]] = {}
for _dimension, _value in [*FILTERS, ("path", "/b"), ("name", "click"), ("item", "apl"),
                           ("source", "import"), ("category", "forms"), ("prop.plan", "pro"),
                           ("prop.plan", "free"), ("prop.n", "2")]:  # fmt: skip
    if _dimension in visits.EVENT_LEVEL or _dimension.startswith("prop."):
        EVENT_VALUES.setdefault(_dimension, []).append(_value)


@st.composite
def visit_segments(draw, known: dict[str, list[str]] = VISIT_VALUES) -> Segment:
    """One or two dimensions of `known`, each with one or two values, each maybe negated."""
    dimensions = draw(st.lists(st.sampled_from(sorted(known)), min_size=1, max_size=2,
                               unique=True))  # fmt: skip
    conditions = []
    for dimension in dimensions:
        values = st.sampled_from(known[dimension])
        chosen = draw(st.lists(values, min_size=1, max_size=2, unique=True))
        conditions.append(Condition(dimension, tuple(chosen), draw(st.booleans())))
    return Segment(tuple(conditions))


def _day_local_rows(sites, events: list[dict]) -> list[dict]:
    """Rows whose visitor and session ids mostly belong to one day (so most visits are stored
    as visit rows), a few kept across days (span events, read raw). Two sessions and two
    visitors a day, drawn apart: a visit has events of several visitors and user agents."""
    rows = _rows(sites, events)
    for e, row in zip(events, rows, strict=True):
        minute = e["minute"]
        if minute % 5:
            day = minute // (24 * 60)
            if row["session_id"] is not None:
                row["session_id"] = f"s{minute % 2}-{day}"
            if row["visitor_id"] is not None:
                row["visitor_id"] = f"v{minute // 2 % 2}-{day}"
    return rows


@HISTORIES
@given(
    first=st.lists(event, min_size=10, max_size=50),
    late=st.lists(event, max_size=12),
    chosen=st.lists(
        st.one_of(visit_segments(), visit_segments(EVENT_VALUES),
                  visit_segments(VISIT_VALUES | EVENT_VALUES)),
        min_size=1, max_size=3,
    ),
    start_hour=st.integers(-24, DAYS * 24),
)
def test_stored_visits_equal_raw_queries(app, make_site, first, late, chosen, start_hour):
    _clear()
    sites = [make_site("A"), make_site("B")]
    store_events(_day_local_rows(sites, first))
    rollups.refresh()
    # Late rows: their days recounted in part (visit rows removed), then split again.
    store_events(_day_local_rows(sites, late + first[:2]))
    rollups.refresh()
    assert count(RollupQueue) == 0
    whole = Filtered(sites[0], DAY0, DAY0 + dt.timedelta(days=DAYS))
    partial = Filtered(sites[0], DAY0 + dt.timedelta(hours=start_hour),
                       DAY0 + dt.timedelta(hours=start_hour + 37), "hour")  # fmt: skip
    for segment in chosen:
        assert visits.answers(segment)
        for period in (whole, partial, replace(whole, bucket="week")):
            assert_filtered_answers(replace(period, segment=segment))


def test_visits_are_read_for_split_days(app, make_site):
    """The visits of ended days are stored, a row per day, and read from there; removed with
    the day's split counts (a partial recount), and written again when it is split again."""
    _clear()
    site = make_site("A")
    base = {"site": 0, "name": "pageview", "path": "/a", "referrer": None, "utm": None,
            "agent": AGENTS[1], "source": "tracker", "dedupe": None, "item": "rsa",
            "position": None, "category": None, "version": 1}  # fmt: skip
    rows = []
    for n in range(6):  # two visits a day, each a page view and a click; 3 from FR, 3 from BE
        minute = (n // 2) * 24 * 60 + 60 * (n % 2 + 1)
        for offset, name in enumerate(("pageview", "click")):
            e = base | {"minute": minute + offset, "name": name, "session": f"s{n}",
                        "visitor": f"v{n}"}  # fmt: skip
            rows.append(_row([site], e) | {"country": "FR" if n % 2 else "BE"})
    store_events(rows)
    rollups.refresh()
    assert count(RollupVisitDay) == 3
    period = Filtered(site, DAY0, DAY0 + dt.timedelta(days=DAYS),
                      segment=Segment((Condition("country", ("FR", "BE")),)))  # fmt: skip
    p = read._split_plan(period)
    stored_visits, stored_pages = visits._decoded(p)
    assert (len(stored_visits), len(stored_pages), p.unbuilt) == (6, 6, ())
    assert stored_visits["visitor_id"].nunique() == 6  # day numbers made unique across days
    stored = visits.stored(METRICS["summary"], period, p)
    assert int(stored["visits"].sum()) == 6
    assert_filtered_answers(period)
    negated = replace(period, segment=Segment((Condition("country", ("FR",), True),)))
    assert int(visits.stored(METRICS["summary"], negated, p)["visits"].sum()) == 3
    assert_filtered_answers(negated)
    day = DAY0.date()
    slices.remove(site.id, day)
    left = db.session.execute(sa.select(RollupVisitDay.day)).scalars().all()
    assert day not in [d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in left]
    assert len(left) == 2
    rollups.split_missing(site.id)
    assert count(RollupVisitDay) == 3
    assert_filtered_answers(period)


def test_an_event_level_filter_enters_at_the_first_kept_page_view(app, make_site):
    """Under an event-level filter a visit's entry is its first page view the filter keeps,
    with that page view's referrer: read from the stored event parts as from raw events."""
    _clear()
    site = make_site("A")
    base = {"site": 0, "utm": None, "agent": AGENTS[1], "source": "tracker", "dedupe": None,
            "item": "rsa", "position": None, "category": None, "version": 1}  # fmt: skip
    steps = [("pageview", "/b", "https://www.google.com/"), ("pageview", "/a", "https://t.co/x"),
             ("click", "/a", None)]  # fmt: skip
    rows = []
    for n in range(2):  # one visit lands on /b then sees /a, the other lands on /a
        for offset, (name, path, referrer) in enumerate(steps[n:]):
            e = base | {"minute": 60 * (n + 1) + offset, "name": name, "path": path,
                        "referrer": referrer, "session": f"s{n}", "visitor": f"v{n}"}  # fmt: skip
            rows.append(_row([site], e))
    store_events(rows)
    rollups.refresh()
    assert count(RollupVisitDay) == 1
    whole = Filtered(site, DAY0, DAY0 + dt.timedelta(days=DAYS))
    for query, entries in (
        (Condition("path", ("/b",), True), {"/a": 2}),
        (Condition("path", ("/a", "/b")), {"/b": 1, "/a": 1}),
        (Condition("name", ("click",), True), {"/b": 1, "/a": 1}),
    ):
        period = replace(whole, segment=Segment((query,)))
        assert visits.answers(period.segment) and not slices.splittable(period.segment)
        found = stats.entry_pages(period)
        assert dict(zip(found["path"], found["visits"], strict=True)) == entries, query
        assert_filtered_answers(period)


def test_decoded_days_are_kept_between_reads_and_read_again_once_rewritten(app, make_site):
    """On PostgreSQL a process keeps the days it decoded, each with its row's version: a
    second read fetches no blob, and a day split again since is fetched again (new version),
    so the answers stay the raw queries'. Beyond ROLLUP_CACHE_MB the oldest read goes first."""
    if db.engine.dialect.name != "postgresql":
        assert app.config["ROLLUP_CACHE_MB"] > 0  # on SQLite each read fetches its blobs
        return
    _clear()
    site = make_site("A")
    rows = []
    for n in range(4):  # a visit a day from FR or BE, a page view and a click each
        for offset, name in enumerate(("pageview", "click")):
            e = {"site": 0, "name": name, "path": "/a", "referrer": None, "utm": None,
                 "agent": AGENTS[1], "source": "tracker", "dedupe": None, "item": "rsa",
                 "position": None, "category": None, "version": 1, "session": f"s{n}",
                 "visitor": f"v{n}", "minute": n * 24 * 60 + 60 + offset}  # fmt: skip
            rows.append(_row([site], e) | {"country": "FR" if n % 2 else "BE"})
    store_events(rows)
    rollups.refresh()
    kept = visits._decoded_days
    kept._kept.clear()
    kept._bytes = 0
    period = Filtered(site, DAY0, DAY0 + dt.timedelta(days=DAYS),
                      segment=Segment((Condition("country", ("FR", "BE")),)))  # fmt: skip
    assert_filtered_answers(period)
    day = DAY0.date()
    before = kept._kept[site.id, day, "visits"]
    fetched: list[str] = []

    def statements(conn, cursor, statement, *args) -> None:
        fetched.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", statements)
    try:
        visits._days(read._split_plan(period), "visits")
        assert not [s for s in fetched if "rollup_visit_days.visits" in s]  # versions only
        slices.remove(site.id, day)
        rollups.split_missing(site.id)
        assert_filtered_answers(period)
        assert kept._kept[site.id, day, "visits"][0] != before[0]
        assert [s for s in fetched if "rollup_visit_days.visits" in s]
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", statements)
    one_day = before[1].nbytes
    app.config["ROLLUP_CACHE_MB"] = 1.5 * one_day / 2**20  # room for one day of visits
    kept._kept.clear()
    kept._bytes = 0
    try:
        visits._days(read._split_plan(period), "visits")
        assert len(kept._kept) == 1 and kept._bytes <= 1.5 * one_day
        assert list(kept._kept)[0][1] == DAY0.date() + dt.timedelta(days=3)  # the last read
    finally:
        app.config["ROLLUP_CACHE_MB"] = 256
