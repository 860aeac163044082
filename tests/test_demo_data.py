"""`flask demo load` fills a site with realistic, dashboard-ready events."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa

from analytics import demo_data
from analytics.extensions import db
from analytics.ingest.legacy.benefits import EVENT_TYPES
from analytics.models import Event, Site
from tests.conftest import count

NOW = dt.datetime(2026, 3, 31, 12, 0)


def test_generate_gives_exactly_the_count_in_the_window():
    rows = list(demo_data.generate(1, 30, 3000, now=NOW, seed=7))
    assert len(rows) == 3000
    times = [r["occurred_at"] for r in rows]
    assert min(times) >= NOW - dt.timedelta(days=31) and max(times) < NOW
    same = [(r["name"], r["occurred_at"]) for r in demo_data.generate(1, 30, 3000, now=NOW, seed=7)]
    assert same == [(r["name"], r["occurred_at"]) for r in rows]  # a seed reproduces the data


def test_generated_data_has_every_kind_of_event():
    rows = list(demo_data.generate(1, 30, 20000, now=NOW, seed=1))
    by_source = Counter(r["source"] for r in rows)
    assert set(by_source) == {"tracker", "benefits", "track", "collector"}
    names = Counter(r["name"] for r in rows)
    for name in ("pageview", "scroll", "form_submit", "impression", "item_click", "download"):
        assert names[name] > 0, name
    assert {r["name"] for r in rows if r["source"] == "benefits"} == set(EVENT_TYPES)
    assert {r["name"] for r in rows if r["source"] == "track"} == {"load", "scroll", "click"}
    pageviews = [r for r in rows if r["name"] == "pageview"]
    assert len({r["session_id"] for r in pageviews}) < len(pageviews)  # visits of several pages
    assert any(r["utm_campaign"] for r in pageviews) and any(r["referrer"] for r in pageviews)
    assert len({(r["browser"], r["os"], r["device"]) for r in rows if r["browser"]}) >= 5
    for row in rows:
        if row["name"] in ("impression", "item_click", "show", "showDetails"):
            assert 1 <= row["item_position"] <= row["list_size"]


def test_lower_positions_get_more_clicks():
    rows = list(demo_data.generate(1, 30, 60000, now=NOW, seed=3))
    shows = Counter(r["item_position"] for r in rows if r["name"] == "impression")
    clicks = Counter(r["item_position"] for r in rows if r["name"] == "item_click")
    ctr = [clicks[p] / shows[p] for p in (1, 2, 3, 5)]
    assert ctr == sorted(ctr, reverse=True), ctr


def test_demo_load_command(runner):
    result = runner.invoke(args=["demo", "load", "--days", "7", "--events", "1200", "--seed", "2"])
    assert result.exit_code == 0, result.output
    site = db.session.execute(sa.select(Site).where(Site.public_id == "demo")).scalar_one()
    assert site.name == "Demo site"
    assert "stored 1200 events over 7 days in site demo" in result.output
    assert count(Event) == 1200
    oldest = db.session.execute(sa.select(sa.func.min(Event.occurred_at))).scalar_one()
    assert oldest >= dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=8)


def test_demo_load_into_a_chosen_site(runner, site):
    result = runner.invoke(args=["demo", "load", "--events", "300", "--site", site.public_id])
    assert result.exit_code == 0, result.output
    stored = db.session.execute(
        sa.select(sa.func.count()).select_from(Event).where(Event.site_id == site.id)
    ).scalar_one()
    assert stored == 300
    result = runner.invoke(args=["demo", "load", "--events", "3", "--site", "nope"])
    assert result.exit_code != 0 and "no site with public id 'nope'" in result.output
