"""Segments: the filter syntax, and every filter's numbers against an independent count.

The syntax tests need no database. The counting tests run on SQLite and PostgreSQL over the
stats tests' seeded week: the summary and the pages table under each filter (and under
negation, OR and AND) must equal what a plain Python pass over the same events gives, and a
few cases are also checked against hand-written SQL.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import io
from collections import Counter
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import request
from hypothesis import given
from hypothesis import strategies as st

from analytics import stats
from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.models import Event
from analytics.rollups import slices, visits
from analytics.segments import (
    Condition,
    Segment,
    escape,
    parse_segment,
    split_values,
)
from analytics.stats.base import EVENTS, reference
from analytics.stats.dialect import dialect
from tests.accounts import logged_in
from tests.test_stats import END, START, seed_traffic

# --- the syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, negated, values",
    [
        ("www.google.com", False, ("www.google.com",)),
        ("FR,BE", False, ("FR", "BE")),
        ("!www.google.com", True, ("www.google.com",)),
        ("!FR,BE", True, ("FR", "BE")),
        ("a\\,b", False, ("a,b",)),  # an escaped comma is part of the value
        ("a\\,b,c", False, ("a,b", "c")),
        ("back\\\\slash", False, ("back\\slash",)),
        ("\\!important", False, ("!important",)),  # a value that begins with "!"
        ("!\\!x", True, ("!x",)),
        (",,a,,", False, ("a",)),  # empty values are dropped
        ("a,a", False, ("a",)),
        ("", False, ()),
        ("!", True, ()),
        ("trailing\\", False, ("trailing\\",)),
    ],
)
def test_values_split_on_unescaped_commas(text, negated, values):
    assert split_values(text) == (negated, values)


value = st.text(min_size=1, max_size=12).map(str.strip).filter(bool)
values = st.lists(value, min_size=1, max_size=5, unique=True)


@given(values, st.booleans())
def test_any_values_survive_the_round_trip(found, negated):
    condition = Condition("name", tuple(found), negated)
    assert split_values(condition.query_value()) == (negated, tuple(found))


def test_escape_writes_what_split_reads():
    assert escape("a,b\\c") == "a\\,b\\\\c"
    assert escape("!x") == "\\!x"


def test_parse_segment_keeps_known_dimensions_only():
    segment = parse_segment(
        {
            "referrer": "!www.google.com",
            "country": "fr,be",
            "prop.plan": "pro",
            "prop.": "x",
            "period": "30d",
            "bogus": "1",
            "path": "",
        }
    )
    assert segment.conditions == (
        Condition("referrer", ("www.google.com",), True),
        Condition("country", ("FR", "BE")),
        Condition("prop.plan", ("pro",)),
    )
    assert [c.dimension for c in segment.visit_conditions] == ["referrer", "country"]
    assert segment.event_conditions[0].prop_key == "plan"
    assert not parse_segment({"site": "x"})


def test_filters_carry_the_segment_into_every_link(site):
    filters = parse_filters({"site": site.public_id, "referrer": "a\\,b,c", "name": "!x"}, [site])
    args = filters.query_args()
    assert args["referrer"] == "a\\,b,c" and args["name"] == "!x"
    assert parse_segment(args) == filters.segment
    assert filters.previous().segment == filters.segment


def test_adding_and_removing_a_filter():
    segment = Segment((Condition("country", ("FR",)),))
    assert segment.adding("country", "BE").query_args() == {"country": "BE"}
    assert segment.adding("path", "/a").query_args() == {"country": "FR", "path": "/a"}
    assert segment.adding("path", "/a") == parse_segment({"path": "/a", "country": "FR"})
    assert not segment.without("country")


# --- the numbers --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class View:
    site: object
    segment: Segment
    start: dt.datetime = START
    end: dt.datetime = END
    bucket: str = "day"

    def previous(self) -> View:
        return dataclasses.replace(self, start=self.start - (self.end - self.start), end=self.start)


@pytest.fixture
def seeded(site, make_site):
    seed_traffic(site, make_site(name="Other"))
    return site


def visit_key(e: Event) -> str | None:
    return e.session_id or e.visitor_id


def host(referrer: str | None) -> str:
    return urlsplit(referrer).netloc if referrer else "(direct)"


def oracle(site, segment: Segment) -> tuple[dict[str, int], Counter]:
    """(visitors, visits, pageviews) and page views per path, counted in Python."""
    events = list(
        db.session.execute(
            sa.select(Event)
            .where(Event.site_id == site.id, Event.occurred_at >= START, Event.occurred_at < END)
            .order_by(Event.occurred_at, Event.id)
        ).scalars()
    )
    first: dict[str, Event] = {}
    entry: dict[str, Event] = {}
    for e in events:
        key = visit_key(e)
        if key is None:
            continue
        first.setdefault(key, e)
        if e.name == "pageview":
            entry.setdefault(key, e)

    def visit_value(key: str, dimension: str):
        if dimension in ("browser", "os", "device", "country"):
            return getattr(first[key], dimension)
        landing = entry.get(key)
        if landing is None:
            return None
        return {
            "entry": landing.path,
            "referrer": host(landing.referrer),
            "utm_source": landing.utm_source,
            "utm_medium": landing.utm_medium,
            "utm_campaign": landing.utm_campaign,
        }[dimension]

    def event_value(e: Event, c: Condition):
        if c.prop_key is not None:
            value = (e.props or {}).get(c.prop_key)
            return None if value is None else str(value)
        return getattr(e, {"item": "item_id"}.get(c.dimension, c.dimension))

    def keeps(value, c: Condition) -> bool:
        return (value not in c.values) if c.negated else (value in c.values)

    kept = []
    for e in events:
        key = visit_key(e)
        if segment.visit_conditions and key is None:
            continue
        if all(keeps(visit_value(key, c.dimension), c) for c in segment.visit_conditions) and all(
            keeps(event_value(e, c), c) for c in segment.event_conditions
        ):
            kept.append(e)
    numbers = {
        "visitors": len({e.visitor_id for e in kept if e.visitor_id}),
        "visits": len({visit_key(e) for e in kept if visit_key(e)}),
        "pageviews": sum(e.name == "pageview" for e in kept),
        "events": len(kept),
    }
    pages = Counter(e.path for e in kept if e.name == "pageview")
    return numbers, pages


CASES = [
    "referrer=search.example",
    "referrer=(direct)",
    "referrer=!search.example",
    "referrer=search.example,social.example",
    "entry=/",
    "entry=!/",
    "utm_source=news",
    "utm_campaign=!spring",
    "browser=Chrome",
    "browser=!Chrome",
    "os=iOS,Linux",
    "device=mobile",
    "country=FR",
    "country=be",
    "country=!FR",
    "path=/blog",
    "path=!/blog",
    "path=/blog,/pricing",
    "name=signup",
    "name=!pageview",
    "source=track",
    "source=tracker,api",
    "category=conversion",
    "prop.plan=pro",
    "prop.plan=!pro",
    "prop.depth=50",
    "item=none",
    "referrer=search.example&path=/blog",
    "country=FR&browser=!Safari&name=pageview",
    "entry=/&utm_source=!news",
]


@pytest.mark.parametrize("in_request", [False, True], ids=["script", "request"])
@pytest.mark.parametrize("query", CASES)
def test_each_filter_counts_what_a_plain_pass_counts(app, seeded, query, in_request):
    """Outside a request the metrics test each event against the segment; inside one on
    PostgreSQL they read the request's copy of the kept events (of the period, or, when
    rollups answer, of the rest of a rollup read under a visit-level filter: split rollups for
    one value of one dimension, stored visits for the others). All equal the oracle."""
    segment = parse_segment(dict(part.split("=", 1) for part in query.split("&")))
    assert segment, query
    expected, pages = oracle(seeded, segment)
    with app.test_request_context("/") if in_request else contextlib.nullcontext():
        summary = stats.overview_summary(View(seeded, segment)).set_index("metric")["value"]
        table = stats.top_pages(View(seeded, segment))
        copies = request.__dict__.get("segment_events", {}) if in_request else {}
        rolled = slices.splittable(segment) or visits.answers(segment)
        copied = (
            in_request
            and dialect() == "postgresql"
            and (not rolled or bool(segment.visit_conditions))
        )
        assert len(copies) == (2 if copied else 0)
    found = {name: int(summary[name]) for name in ("visitors", "visits", "pageviews")}
    assert found == {k: v for k, v in expected.items() if k != "events"}, query
    assert dict(zip(table["path"], table["pageviews"], strict=True)) == dict(pages), query


def test_the_filters_narrow_something_and_not_everything(seeded):
    """The cases above are not vacuous: most keep some events, and most drop some."""
    everything, _ = oracle(seeded, Segment())
    kept = [oracle(seeded, parse_segment(dict(p.split("=", 1) for p in q.split("&"))))[0]
            for q in CASES]  # fmt: skip
    assert sum(k["events"] > 0 for k in kept) == len(CASES) - 1  # all but item=none
    assert sum(k["events"] < everything["events"] for k in kept) == len(CASES)


def test_a_referrer_filter_against_hand_written_sql(seeded):
    visits = db.session.execute(
        sa.text(
            "SELECT count(*) FROM (SELECT session_id, referrer, row_number() OVER "
            "(PARTITION BY session_id ORDER BY occurred_at, id) AS nth FROM events "
            "WHERE site_id = :site AND name = 'pageview' AND session_id IS NOT NULL "
            "AND occurred_at >= :start AND occurred_at < :end) AS e "
            "WHERE nth = 1 AND referrer LIKE 'https://search.example/%'"
        ),
        {"site": seeded.id, "start": START, "end": END},
    ).scalar_one()
    view = View(seeded, parse_segment({"referrer": "search.example"}))
    summary = stats.overview_summary(view).set_index("metric")["value"]
    assert int(summary["visits"]) == visits == 2  # s1 and s4
    referrers = stats.referrers(view)
    assert dict(zip(referrers["referrer"], referrers["visits"], strict=True)) == {
        "search.example": 2
    }


def test_an_event_filter_against_hand_written_sql(seeded):
    pageviews = db.session.execute(
        sa.text(
            "SELECT count(*) FROM events WHERE site_id = :site AND name = 'pageview' "
            "AND path = '/blog' AND occurred_at >= :start AND occurred_at < :end"
        ),
        {"site": seeded.id, "start": START, "end": END},
    ).scalar_one()
    view = View(seeded, parse_segment({"path": "/blog"}))
    summary = stats.overview_summary(view).set_index("metric")["value"]
    assert int(summary["pageviews"]) == pageviews == 3


def test_the_pages_and_csvs_take_the_filters(client, seeded):
    """One query parameter filters the Overview and its CSVs."""
    client = logged_in(client)
    res = client.get("/csv/summary.csv", query_string={
        "site": seeded.public_id, "start": "2026-03-02", "end": "2026-03-08",
        "country": "BE"})  # fmt: skip
    assert res.status_code == 200
    rows = {row["metric"]: row for row in csv.DictReader(io.StringIO(res.data.decode()))}
    assert rows["visitors"]["value"] == "1"  # v2, the one visitor from Belgium
    assert rows["pageviews"]["value"] == "1"
    page = client.get("/overview", query_string={"site": seeded.public_id, "country": "BE"})
    assert page.status_code == 200


def test_a_page_finds_the_visits_once_and_counts_the_same(app, seeded):
    """Inside a request on PostgreSQL the matching visits are found once per period and reused;
    the numbers equal those of the embedded query. (From raw events: with rollups, stored
    visits answer this segment for the days they hold.)"""
    segment = parse_segment({"referrer": "search.example", "country": "!BE", "path": "/"})
    plain = stats.overview_summary(View(seeded, segment))
    pages = stats.top_pages(View(seeded, segment))
    with app.test_request_context("/overview"), reference():
        assert stats.overview_summary(View(seeded, segment)).equals(plain)
        assert stats.top_pages(View(seeded, segment)).equals(pages)
        cached = request.__dict__.get("segment_visits", {})
        if dialect() == "postgresql":
            assert len(cached) == 2  # this week and the week before, each found once
            assert sorted(cached[(segment, seeded.id, START, END, EVENTS)]) == ["s1", "s4"]
        else:
            assert cached == {}
    assert int(plain.set_index("metric")["value"]["pageviews"]) == 2  # "/" of s1 and s4


@pytest.mark.parametrize(
    "query",
    [
        {"referrer": "search.example", "name": "pageview"},
        {"country": "!FR", "prop.plan": "pro", "path": "/,/blog"},
        {"entry": "/", "utm_source": "!news", "item": "rsa", "source": "tracker"},
        {"goal": "Pricing", "country": "!FR"},
        {"goal": "!Pricing,Nope", "path": "/"},
    ],
)
def test_every_page_and_csv_answers_under_filters(client, seeded, query):
    """No page or CSV breaks under visit-level, event-level and property filters together."""
    from analytics.goals import create_funnel, create_goal
    from analytics.views.dashboard import NEEDS_EVENT, NEEDS_FUNNEL, TABLES

    create_goal(seeded, "Pricing", "page", path="/pricing")
    funnel = create_funnel(seeded, "Home to pricing", ["path:/", "Pricing"])
    client = logged_in(client)
    base = {"site": seeded.public_id, "start": "2026-03-02", "end": "2026-03-08", **query}
    pages = ("/overview", "/live", "/actions", "/actions/pageview", "/lists", "/events")
    for path in (*pages, "/funnels", f"/funnels/{funnel.id}"):
        res = client.get(path, query_string=base)
        assert res.status_code == 200, (path, res.status_code)
    for table in TABLES:
        extra = {"event": "pageview"} if table in NEEDS_EVENT else {}
        extra |= {"funnel": funnel.id} if table in NEEDS_FUNNEL else {}
        res = client.get(f"/csv/{table}.csv", query_string={**base, **extra})
        assert res.status_code == 200, (table, res.status_code)
    assert client.get("/live.json", query_string=base).status_code == 200
