"""The COPY loader (PostgreSQL): the demo's rows, exactly as many as asked, valid and new."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
import sqlalchemy as sa

from analytics import demo_copy, demo_data
from analytics.extensions import db
from analytics.ingest.legacy.benefits import EVENT_TYPES
from analytics.models import Event

from .conftest import _truncate

NOW = dt.datetime(2026, 3, 31, 12, 0)
SHAPE = ("occurred_at", "received_at", "source", "name", "category", "session_id", "visitor_id",
         "path", "referrer", "utm_source", "utm_medium", "utm_campaign", "browser", "os", "device",
         "item_id", "item_position", "list_size", "schema_version", "props")  # fmt: skip


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: COPY is its protocol."""
    _truncate(postgres_url)
    return postgres_url


def _libpq() -> str:
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _stored(site_id: int) -> list[dict]:
    """The site's rows as another connection sees them, oldest first."""
    query = (
        sa.select(*Event.__table__.c)
        .where(Event.site_id == site_id)
        .order_by(Event.occurred_at, Event.name)
    )
    with db.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


@pytest.mark.parametrize("background", [True, False])
def test_load_writes_exactly_the_demo_rows(make_site, background: bool) -> None:
    site = make_site()
    stored = demo_copy.load(_libpq(), site.id, 30, 4000, seed=3, now=NOW, background=background)
    assert stored == 4000
    rows = _stored(site.id)
    assert len(rows) == 4000
    expected = list(demo_data.generate(site.id, 30, 4000, seed=3, now=NOW))

    def key(r: dict) -> tuple:
        return tuple(json.dumps(r[c], sort_keys=True, default=str) for c in SHAPE)

    assert sorted(map(key, rows)) == sorted(map(key, expected)), "the same events as generate"


def test_loaded_rows_have_the_demo_shape(make_site) -> None:
    main, other = make_site("Main"), make_site("Other")
    assert demo_copy.load(_libpq(), main.id, 395, 20000, seed=1) == 20000
    assert demo_copy.load(_libpq(), other.id, 90, 1500, seed=2) == 1500
    rows = _stored(main.id)
    assert len(rows) == 20000 and len(_stored(other.id)) == 1500
    assert len({r["id"] for r in rows}) == 20000
    times = [r["occurred_at"] for r in rows]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert now - dt.timedelta(days=396) < min(times) and max(times) < now
    assert max(times) - min(times) > dt.timedelta(days=380), "spread over 13 months"
    assert set(Counter(r["source"] for r in rows)) == {"tracker", "benefits", "track", "collector"}
    records = [r for r in rows if r["source"] == "benefits"]
    assert {r["name"] for r in records} == set(EVENT_TYPES)
    for record in records:
        assert record["session_id"] is None and record["schema_version"] == 2
        assert len(record["visitor_id"]) == 16 and int(record["visitor_id"], 16) >= 0
        assert 1 <= record["item_position"] <= record["list_size"]
    lists = [r for r in rows if r["name"] in ("impression", "item_click")]
    assert lists and all(1 <= r["item_position"] <= r["list_size"] for r in lists)
    pageviews = [r for r in rows if r["name"] == "pageview"]
    assert len({r["session_id"] for r in pageviews}) < len(pageviews)
    assert all(r["props"]["screen"] in (390, 1440) for r in pageviews)
    assert any(r["utm_campaign"] for r in pageviews) and any(r["referrer"] for r in pageviews)


def test_loading_a_seed_twice_stores_it_twice(make_site) -> None:
    site = make_site()
    for _ in range(2):
        assert demo_copy.load(_libpq(), site.id, 7, 500, seed=9, now=NOW) == 500
    assert len(_stored(site.id)) == 1000  # new ids each time: no key clash


def test_large_loads_are_split_into_statements(make_site) -> None:
    site = make_site()
    source = demo_copy.blocks(site.id, 7, 2500, now=NOW, seed=1, chunk=500)
    seen: list[int] = []
    stored = demo_copy.copy_blocks(_libpq(), source, statement_rows=1000, progress=seen.append)
    assert stored == 2500 and sum(seen) == 2500 and len(_stored(site.id)) == 2500
