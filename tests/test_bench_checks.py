"""The floor with the checks (bench/bare_insert_app.py, BARE_CHECKS) stores what our ingest
stores for the suite's event, and refuses what it refuses: else it would bound nothing."""

from __future__ import annotations

import datetime as dt
import importlib
import json

import pytest

from analytics.ingest import native
from analytics.ingest.country import lookup
from analytics.ingest.sites import SiteRef
from analytics.ingest.useragent import parse_agent
from analytics.ingest.visitor import visitor_hash
from bench.ingest import UA, single_event

ORIGIN = "https://bench.example"
PUBLIC_IP = "8.8.8.8"  # one the bundled country data places


@pytest.fixture
def floor(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never opened
    for name in ("BARE_CHECKS", "BARE_ROLLUPS", "BARE_GROUP_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    module = importlib.import_module("bench.bare_insert_app")
    monkeypatch.setattr(module, "SITE_ID", 7)
    monkeypatch.setattr(module, "SITE", SiteRef(7, "pub123", (ORIGIN,)))
    return module


def environ(origin: str | None = ORIGIN) -> dict:
    env = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": PUBLIC_IP, "HTTP_USER_AGENT": UA}
    if origin:
        env["HTTP_ORIGIN"] = origin
    return env


def test_its_row_is_ours_but_for_the_source_and_the_visitors_key(floor):
    now = dt.datetime(2026, 12, 5, 6, 0, 0)
    item = json.loads(json.dumps(single_event("pub123")))
    row = floor.checked_row(item, environ(), now)
    event = native.EventIn.model_validate(
        item, context={"now": now, "max_age": floor.MAX_AGE, "max_future": floor.MAX_FUTURE}
    )
    site = SiteRef(7, "pub123", (ORIGIN,))
    ours = native._row(event, site, "x" * 32, parse_agent(UA), now, lookup(PUBLIC_IP))
    differ = {key for key in ours if key != "id" and ours[key] != row[key]}
    assert differ == {"source", "visitor_id"}
    assert row["visitor_id"] == visitor_hash(floor.VISITOR_KEY, 7, PUBLIC_IP, UA)
    assert row["browser"] == "Chrome"
    assert row["props"] == {"screen": 1280} and row["path"] == "/a" and row["country"]


@pytest.mark.parametrize(
    "change",
    [
        {"site": "other"},  # an unknown site
        {"name": ""},  # an invalid field
        {"ts": "2020-01-01T00:00:00Z"},  # too old
    ],
)
def test_what_our_ingest_refuses_it_refuses(floor, change):
    item = single_event("pub123") | change
    assert floor.checked_row(item, environ(), dt.datetime(2026, 12, 5)) is None


def test_a_refused_origin_is_refused(floor):
    item, now = single_event("pub123"), dt.datetime(2026, 12, 5)
    assert floor.checked_row(item, environ("https://evil.example"), now) is None
    assert floor.checked_row(item, environ(None), now) is not None  # server to server
