"""parse_filters and Filters, without HTTP (a Site needs no database to be read here)."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.filters import DAY, Filters, parse_filters
from analytics.models import Site

NOW = dt.datetime(2024, 5, 15, 13, 30)
TODAY = dt.datetime(2024, 5, 15)
TOMORROW = TODAY + DAY


def make_sites() -> list[Site]:
    return [
        Site(id=1, public_id="aaa", name="A", created_at=dt.datetime(2023, 1, 10, 8)),
        Site(id=2, public_id="bbb", name="B", created_at=dt.datetime(2024, 4, 1, 8)),
    ]


def first_event(site: Site) -> dt.datetime | None:
    return {1: dt.datetime(2022, 3, 4, 5, 6)}.get(site.id)


def parse(**args: str) -> Filters:
    return parse_filters(args, make_sites(), now=NOW, earliest=first_event)


def test_defaults_are_first_site_and_last_30_days():
    f = parse()
    assert f.site.public_id == "aaa"
    assert (f.period, f.start, f.end) == ("30d", TOMORROW - 30 * DAY, TOMORROW)
    assert f.bucket == "day"
    assert f.query_args() == {"site": "aaa", "period": "30d"}


@pytest.mark.parametrize(
    ("period", "days", "bucket"),
    [("today", 1, "hour"), ("7d", 7, "day"), ("30d", 30, "day"), ("12m", 365, "week")],
)
def test_presets_are_whole_days_ending_today(period, days, bucket):
    f = parse(period=period)
    assert f.period == period
    assert f.end == TOMORROW
    assert f.end - f.start == days * DAY
    assert f.bucket == bucket


def test_all_starts_on_the_day_of_the_first_event_else_the_site_creation():
    f = parse(period="all")
    assert f.start == dt.datetime(2022, 3, 4)
    assert f.bucket == "month"  # over two years of history
    g = parse(period="all", site="bbb")
    assert g.start == dt.datetime(2024, 4, 1)
    assert g.bucket == "day"


def test_all_over_long_history_is_monthly():
    sites = [Site(id=9, public_id="old", name="Old", created_at=dt.datetime(2019, 1, 1))]
    f = parse_filters({"period": "all"}, sites, now=NOW, earliest=lambda s: None)
    assert f.start == dt.datetime(2019, 1, 1)
    assert f.bucket == "month"


def test_custom_range_is_inclusive_of_end_day_and_round_trips():
    f = parse(period="custom", start="2024-02-01", end="2024-02-29")
    assert (f.start, f.end) == (dt.datetime(2024, 2, 1), dt.datetime(2024, 3, 1))
    assert f.query_args() == {
        "site": "aaa",
        "period": "custom",
        "start": "2024-02-01",
        "end": "2024-02-29",
    }
    again = parse(**f.query_args())
    assert (again.start, again.end, again.period) == (f.start, f.end, f.period)


def test_dates_without_period_make_a_custom_range():
    f = parse(start="2024-05-01", end="2024-05-01")
    assert f.period == "custom"
    assert (f.start, f.end) == (dt.datetime(2024, 5, 1), dt.datetime(2024, 5, 2))
    assert f.bucket == "hour"


def test_preset_with_its_own_dates_stays_preset_but_edited_dates_win():
    same = parse(period="7d", start="2024-05-09", end="2024-05-15")
    assert same.period == "7d"
    edited = parse(period="7d", start="2024-05-01", end="2024-05-15")
    assert edited.period == "custom"
    assert edited.start == dt.datetime(2024, 5, 1)


def test_only_start_runs_to_today_and_reversed_dates_are_swapped():
    f = parse(start="2024-05-10")
    assert (f.start, f.end) == (dt.datetime(2024, 5, 10), TOMORROW)
    g = parse(start="2024-05-10", end="2024-05-03")
    assert (g.start, g.end) == (dt.datetime(2024, 5, 3), dt.datetime(2024, 5, 11))


@pytest.mark.parametrize(
    "args",
    [
        {"site": "nope"},
        {"period": "forever"},
        {"period": "custom"},
        {"period": "custom", "start": "yesterday", "end": "2024-13-45"},
        {"start": "0001-01-01"},
        {"end": "9999-12-31"},
        {"site": "", "period": ""},
    ],
)
def test_bad_values_fall_back_to_defaults(args):
    f = parse(**args)
    assert f.site.public_id == "aaa"
    assert (f.period, f.start, f.end) == ("30d", TOMORROW - 30 * DAY, TOMORROW)
    f.previous()  # never overflows


def test_previous_is_the_same_length_just_before():
    f = parse(period="7d")
    p = f.previous()
    assert (p.start, p.end) == (f.start - 7 * DAY, f.start)
    assert p.site is f.site
    assert p.bucket == f.bucket


def test_explorer_filters_are_trimmed_capped_and_carried():
    f = parse(site="bbb", name=" signup ", source="", path="/x" * 1000, session="s1")
    assert f.site.public_id == "bbb"
    assert (f.name, f.source, f.session) == ("signup", None, "s1")
    assert len(f.path or "") == 1024
    args = f.query_args()
    assert args["name"] == "signup" and "source" not in args and args["session"] == "s1"
    assert f.query_args(name=None, period="7d") == {
        "site": "bbb",
        "period": "7d",
        "session": "s1",
        "path": f.path,
    }


def test_no_sites_is_an_error_the_views_turn_into_an_empty_state():
    with pytest.raises(LookupError):
        parse_filters({}, [], now=NOW)


def test_first_event_time_reads_the_database(app, site):
    from analytics.extensions import db
    from analytics.filters import first_event_time
    from analytics.ingest.writer import event_row, insert_events

    assert first_event_time(site) is None
    times = [dt.datetime(2024, 1, 2, 3), dt.datetime(2023, 6, 7, 8)]
    with db.engine.begin() as conn:
        insert_events(
            conn,
            [event_row(site_id=site.id, source="api", name="x", occurred_at=t) for t in times],
        )
    assert first_event_time(site) == min(times)
    f = parse_filters({"period": "all"}, [site], now=NOW)
    assert f.start == dt.datetime(2023, 6, 7)
