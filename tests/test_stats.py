"""The stats layer against hand-computed numbers, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import pandas as pd
import pytest

from analytics import stats
from analytics.ingest.writer import event_row, store_events
from analytics.stats.dialect import time_bucket
from analytics.stats.timeline import bucket_start

START = dt.datetime(2026, 3, 2)  # a Monday
END = dt.datetime(2026, 3, 9)


@dataclass(frozen=True)
class Period:
    """The smallest object the stats accept (the dashboard's Filters has the same shape)."""

    site: object
    start: dt.datetime | None = START
    end: dt.datetime | None = END
    bucket: str = "day"

    def previous(self) -> Period:
        length = self.end - self.start
        return replace(self, start=self.start - length, end=self.start)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, second)


def ev(site, when: dt.datetime, name: str = "pageview", **fields) -> dict:
    fields.setdefault("source", "tracker")
    return event_row(site_id=site.id, occurred_at=when, name=name, **fields)


def pv(site, when, path, session, visitor, **fields) -> dict:
    return ev(site, when, "pageview", path=path, session_id=session, visitor_id=visitor, **fields)


CHROME = {"browser": "Chrome", "os": "Windows", "device": "desktop", "country": "FR"}
FIREFOX = {"browser": "Firefox", "os": "Linux", "device": "desktop", "country": "BE"}
SAFARI = {"browser": "Safari", "os": "iOS", "device": "mobile", "country": "FR"}


def seed_traffic(site, other) -> None:
    """Six visits in the week of 2 March 2026, plus events that must not count.

    s1 (v1): / (search, utm) -> /pricing -> signup, 300 s
    s2 (v2): /pricing, a bounce
    s3 (v1): /blog (social) -> scroll, 120 s
    s4 (v3): / (search) -> /blog -> /blog, 45 s
    v4: one API signup without a session (a visit of one event, not a page view)
    t1: four /track events (load, scroll, click, click) over 60 s, no visitor
    """
    rows = [
        pv(
            site,
            at(2, 10),
            "/",
            "s1",
            "v1",
            referrer="https://search.example/q",
            utm_source="news",
            utm_campaign="spring",
            **CHROME,
        ),
        pv(site, at(2, 10, 1), "/pricing", "s1", "v1", **CHROME),
        ev(
            site,
            at(2, 10, 5),
            "signup",
            session_id="s1",
            visitor_id="v1",
            path="/pricing",
            category="conversion",
            props={"plan": "pro"},
            **CHROME,
        ),
        pv(site, at(3, 9), "/pricing", "s2", "v2", **FIREFOX),
        pv(site, at(4, 12), "/blog", "s3", "v1", referrer="https://social.example/p", **CHROME),
        ev(
            site,
            at(4, 12, 2),
            "scroll",
            session_id="s3",
            visitor_id="v1",
            path="/blog",
            props={"depth": 50},
            **CHROME,
        ),
        pv(site, at(4, 13), "/", "s4", "v3", referrer="https://search.example/other", **SAFARI),
        pv(site, at(4, 13, 0, 30), "/blog", "s4", "v3", **SAFARI),
        pv(site, at(4, 13, 0, 45), "/blog", "s4", "v3", **SAFARI),
        ev(
            site,
            at(5, 8),
            "signup",
            source="api",
            visitor_id="v4",
            category="conversion",
            props={"plan": "free", "coupon": {"code": "X1"}},
            **CHROME,
        ),
        ev(site, at(6, 7), "load", source="track", session_id="t1", path="/"),
        ev(site, at(6, 7, 0, 20), "scroll", source="track", session_id="t1", path="/"),
        ev(site, at(6, 7, 0, 40), "click", source="track", session_id="t1", path="/"),
        ev(site, at(6, 7, 1), "click", source="track", session_id="t1", path="/"),
        # Outside the period or the site: never counted in it.
        pv(site, dt.datetime(2026, 3, 1, 23, 59), "/", "p1", "v9", **CHROME),  # previous period
        pv(site, END, "/", "late", "v8", **CHROME),  # the end is exclusive
        pv(other, at(3, 9), "/", "o1", "o1", **CHROME),
    ]
    store_events(rows, [])


@pytest.fixture
def traffic(site, make_site):
    seed_traffic(site, make_site(name="Other"))
    return Period(site)


def by(df: pd.DataFrame, key: str, value: str) -> dict:
    return dict(zip(df[key], df[value], strict=True))


def test_overview_summary_against_hand_counts(traffic):
    summary = stats.overview_summary(traffic).set_index("metric")
    value, previous, change = summary["value"], summary["previous"], summary["change_pct"]
    assert value["visitors"] == 4  # v1, v2, v3, v4 (the /track session has no visitor)
    assert value["visits"] == 6  # s1, s2, s3, s4, v4, t1
    assert value["pageviews"] == 7
    assert value["bounce_rate"] == pytest.approx(round(100 / 6, 1))  # s2 only
    assert value["avg_visit_seconds"] == pytest.approx((300 + 0 + 120 + 45 + 0 + 60) / 6, abs=0.1)
    # The previous week holds one bounced page view of v9.
    assert (previous["visitors"], previous["visits"], previous["pageviews"]) == (1, 1, 1)
    assert previous["bounce_rate"] == 100.0 and previous["avg_visit_seconds"] == 0.0
    assert change["visitors"] == 300.0 and change["pageviews"] == 600.0
    assert change["bounce_rate"] == pytest.approx(round((16.7 - 100) / 100 * 100, 1))
    assert change.isna()["avg_visit_seconds"]  # no change % from a previous 0


def test_pageviews_over_time_has_every_day(traffic):
    series = stats.pageviews_over_time(traffic)
    assert list(series["bucket"]) == list(pd.date_range(START, periods=7, freq="D"))
    assert list(series["pageviews"]) == [2, 1, 4, 0, 0, 0, 0]
    assert list(series["visitors"]) == [1, 1, 2, 1, 0, 0, 0]  # v4's signup on the 5th


def test_hourly_and_weekly_buckets(traffic):
    day = replace(traffic, start=at(4, 0), end=at(5, 0), bucket="hour")
    series = stats.pageviews_over_time(day)
    assert len(series) == 24
    assert by(series, "bucket", "pageviews")[pd.Timestamp(at(4, 12))] == 1
    assert by(series, "bucket", "pageviews")[pd.Timestamp(at(4, 13))] == 3
    weeks = replace(traffic, start=dt.datetime(2026, 2, 23), bucket="week")
    series = stats.pageviews_over_time(weeks)
    assert by(series, "bucket", "pageviews") == {
        pd.Timestamp(2026, 2, 23): 1,  # Sunday 1 March belongs to the week of Monday 23 Feb
        pd.Timestamp(2026, 3, 2): 7,
    }


@pytest.mark.parametrize("unit", ["hour", "day", "week", "month"])
def test_sql_buckets_match_python_buckets(app, site, unit):
    from sqlalchemy import select

    from analytics.extensions import db
    from analytics.models import Event

    moments = [dt.datetime(2026, 3, d, h, 37, 12) for d in (1, 2, 7, 8, 31) for h in (0, 23)]
    store_events([ev(site, m) for m in moments], [])
    got = db.session.execute(
        select(Event.occurred_at, time_bucket(Event.occurred_at, unit)).order_by(Event.occurred_at)
    ).all()
    for moment, bucket in got:
        assert pd.Timestamp(bucket) == pd.Timestamp(bucket_start(moment, unit)), (moment, unit)


def test_pages_and_sources(traffic):
    pages = stats.top_pages(traffic)
    assert list(pages["path"]) == ["/blog", "/", "/pricing"]
    assert by(pages, "path", "pageviews") == {"/blog": 3, "/": 2, "/pricing": 2}
    assert by(pages, "path", "visitors") == {"/blog": 2, "/": 2, "/pricing": 2}
    assert pages["pageviews"].sum() == 7
    assert list(stats.top_pages(traffic, limit=1)["path"]) == ["/blog"]

    entries = stats.entry_pages(traffic)
    assert by(entries, "path", "visits") == {"/": 2, "/blog": 1, "/pricing": 1}
    assert entries["path"].iloc[0] == "/"

    refs = stats.referrers(traffic)
    assert by(refs, "referrer", "visits") == {
        "search.example": 2,
        "(direct)": 1,
        "social.example": 1,
    }
    assert by(refs, "referrer", "share_pct")["search.example"] == 50.0

    utm = stats.utm_campaigns(traffic)
    assert utm[["utm_source", "utm_medium", "utm_campaign", "visits"]].values.tolist() == [
        ["news", "", "spring", 1]
    ]


def test_technology(traffic):
    # A record sent without a user agent says nothing about browsers: it is left out.
    store_events([ev(traffic.site, at(3, 9), "show", source="benefits", visitor_id="h1")], [])
    assert by(stats.browsers(traffic), "browser", "visitors") == {
        "Chrome": 2,  # v1, v4
        "Firefox": 1,
        "Safari": 1,
    }
    assert by(stats.operating_systems(traffic), "os", "visitors") == {
        "Windows": 2,
        "Linux": 1,
        "iOS": 1,
    }
    devices = stats.devices(traffic)
    assert by(devices, "device", "visitors") == {"desktop": 3, "mobile": 1}
    assert by(devices, "device", "share_pct") == {"desktop": 75.0, "mobile": 25.0}


def test_countries(traffic):
    """Distinct visitors per country; events without one (imports, private addresses) left out."""
    store_events(
        [
            ev(traffic.site, at(3, 9), session_id="c1", visitor_id="cv1", country="FR"),
            ev(traffic.site, at(3, 10), session_id="c1", visitor_id="cv1", country="FR"),
            ev(traffic.site, at(4, 9), session_id="c2", visitor_id="cv2", country="FR"),
            ev(traffic.site, at(4, 9), session_id="c3", visitor_id="cv3", country="BE"),
            ev(traffic.site, at(4, 9), session_id="c4", visitor_id="cv4", country="XK"),
        ],
        [],
    )
    found = stats.countries(traffic)
    # The seeded traffic: v1, v3, v4 from France, v2 from Belgium; the /track events have none.
    assert by(found, "country", "visitors") == {"FR": 3 + 2, "BE": 1 + 1, "XK": 1}
    assert list(found["country"])[0] == "FR"
    # The English name; a code ISO 3166 does not list (Kosovo's user-assigned XK) stays a code.
    assert by(found, "country", "name") == {"FR": "France", "BE": "Belgium", "XK": "XK"}
    assert by(found, "country", "share_pct") == {"FR": 62.5, "BE": 25.0, "XK": 12.5}


def test_action_tables(traffic):
    names = stats.event_names(traffic)
    assert by(names, "name", "events") == {
        "pageview": 7,
        "click": 2,
        "scroll": 2,
        "signup": 2,
        "load": 1,
    }
    assert list(names["name"]) == ["pageview", "click", "scroll", "signup", "load"]
    # The old Metabase query: SELECT count(*), action FROM trackers GROUP BY action
    legacy = stats.action_counts(traffic)
    assert legacy.values.tolist() == [["click", 2], ["load", 1], ["scroll", 1]]


def test_events_over_time_groups_the_tail(traffic):
    series = stats.events_over_time(traffic, top=2)
    assert set(series["name"]) == {"pageview", "click", "(other)"}
    assert series["events"].sum() == 14
    assert len(series) == 7 * 3  # every day for every series
    on_the_6th = series[series["bucket"] == pd.Timestamp(at(6, 0))]
    assert by(on_the_6th, "name", "events") == {"click": 2, "(other)": 2, "pageview": 0}

    categories = stats.categories_over_time(traffic)
    assert categories.groupby("category")["events"].sum().to_dict() == {
        "conversion": 2,
        "(none)": 12,
    }


def test_one_event_drill_in(traffic):
    counts = stats.event_over_time(traffic, "signup")
    assert list(counts["events"]) == [1, 0, 0, 1, 0, 0, 0]
    props = stats.event_properties(traffic, "signup")
    assert props.attrs["sampled"] == 2
    assert props[["key", "value", "events"]].values.tolist() == [
        ["coupon.code", "X1", 1],
        ["plan", "free", 1],
        ["plan", "pro", 1],
    ]
    assert list(props["share_pct"]) == [50.0, 50.0, 50.0]
    sample = stats.event_properties(traffic, "signup", sample=1)
    assert sample.attrs["sampled"] == 1  # the latest only: v4's
    assert set(sample["value"]) == {"free", "X1"}
    pages = stats.event_pages(traffic, "click")
    assert pages.values.tolist() == [["/", 2, 100.0]]


def seed_lists(site) -> None:
    """List events from both sources, with counts small enough to check by hand.

    benefits records: rsa at (2, 10): 4 shows, 1 detail, a form and a link; rsa at (1, 10):
    3 shows, 2 details. Tracker list events: apl at (2, 10): 2 impressions, 1 item_click;
    apl at (1, 5): 1 impression.
    """
    rows = []

    def add(n, name, item, position, size, source):
        for i in range(n):
            rows.append(
                ev(
                    site,
                    at(3, 10, len(rows) % 60),
                    name,
                    source=source,
                    item_id=item,
                    item_position=position,
                    list_size=size,
                    visitor_id=f"h{i}",
                )
            )

    add(4, "show", "rsa", 2, 10, "benefits")
    add(1, "showDetails", "rsa", 2, 10, "benefits")
    add(1, "form", "rsa", 2, 10, "benefits")
    add(1, "link", "rsa", 2, 10, "benefits")
    add(3, "show", "rsa", 1, 10, "benefits")
    add(2, "showDetails", "rsa", 1, 10, "benefits")
    add(2, "impression", "apl", 2, 10, "tracker")
    add(1, "item_click", "apl", 2, 10, "tracker")
    add(1, "impression", "apl", 1, 5, "tracker")
    add(1, "show", "old", 2, 10, "benefits")
    rows[-1]["occurred_at"] = dt.datetime(2026, 2, 1)  # outside the period
    store_events(rows, [])


@pytest.fixture
def lists(site):
    seed_lists(site)
    return Period(site)


def test_position_heatmap_cell_equals_details_over_shows(lists):
    cells = stats.position_heatmap(lists).set_index(["position", "list_size"])
    shows, details = 4 + 2, 1 + 1  # rsa's show/showDetails + apl's impression/item_click
    assert cells.loc[(2, 10), "shows"] == shows
    assert cells.loc[(2, 10), "details"] == details
    assert cells.loc[(2, 10), "rate"] == pytest.approx(details / shows, abs=1e-4)
    assert cells.loc[(1, 10), "rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert cells.loc[(1, 5), "rate"] == 0.0
    assert len(cells) == 3

    one = stats.position_heatmap(lists, item="rsa").set_index(["position", "list_size"])
    assert one.loc[(2, 10), "rate"] == pytest.approx(1 / 4)
    assert len(one) == 2


def test_ctr_by_position(lists):
    curve = stats.ctr_by_position(lists)
    assert curve.values.tolist() == [[1, 4, 2, 50.0], [2, 6, 2, round(200 / 6, 1)]]
    assert stats.ctr_by_position(lists, item="apl")["ctr_pct"].tolist() == [0.0, 50.0]


def test_item_behaviour_table(lists):
    table = stats.item_behaviour(lists).set_index("item_id")
    assert list(table.index) == ["rsa", "apl"]  # most shown first
    rsa, apl = table.loc["rsa"], table.loc["apl"]
    assert (rsa["shows"], rsa["details"], rsa["actions"]) == (7, 3, 2)
    assert rsa["details_pct"] == round(300 / 7, 1) and rsa["actions_pct"] == round(200 / 3, 1)
    assert (rsa["form"], rsa["link"]) == (1, 1)
    assert (apl["shows"], apl["details"], apl["actions"], apl["form"]) == (3, 1, 0, 0)
    assert apl["actions_pct"] == 0.0
    ascending = stats.item_behaviour(lists, sort="details_pct", descending=False)
    assert list(ascending["item_id"]) == ["apl", "rsa"]
    assert stats.list_items(lists) == ["apl", "rsa"]


def test_empty_site_gives_empty_frames(site):
    empty = Period(site)
    assert stats.overview_summary(empty)["value"].tolist() == [0, 0, 0, None, None]
    assert stats.pageviews_over_time(empty)["pageviews"].sum() == 0
    for fn in (
        stats.top_pages,
        stats.entry_pages,
        stats.referrers,
        stats.utm_campaigns,
        stats.browsers,
        stats.countries,
        stats.event_names,
        stats.action_counts,
        stats.item_behaviour,
        stats.position_heatmap,
        stats.ctr_by_position,
    ):
        assert fn(empty).empty, fn.__name__
    assert stats.events_over_time(empty).empty
    assert stats.event_properties(empty, "x").empty
    assert stats.overview_summary(empty)["change_pct"].isna().all()


def test_the_dashboard_filters_fit_the_stats(traffic):
    """The real `Filters` (what the pages pass) gives the same numbers as the test's Period."""
    from analytics.filters import parse_filters

    last = (END - dt.timedelta(days=1)).date().isoformat()
    args = {"site": traffic.site.public_id, "start": START.date().isoformat(), "end": last}
    filters = parse_filters(args, [traffic.site])
    assert (filters.start, filters.end, filters.bucket) == (START, END, "day")
    assert stats.overview_summary(filters).equals(stats.overview_summary(traffic))
    assert stats.pageviews_over_time(filters).equals(stats.pageviews_over_time(traffic))
