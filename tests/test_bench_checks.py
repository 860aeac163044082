"""The floors with the checks (bench/bare_insert_app.py, BARE_CHECKS) store what our ingest
stores for the suite's bodies, and refuse what it refuses: else they would bound nothing."""

from __future__ import annotations

import datetime as dt
import importlib
import json

import pytest

from analytics.ingest import native
from analytics.ingest.country import lookup
from analytics.ingest.legacy import benefits, collector, track
from analytics.ingest.sites import SiteRef
from analytics.ingest.useragent import parse_agent
from analytics.ingest.visitor import visitor_hash
from bench.ingest import BATCH_CHECKS_FLOOR, UA, cases, single_event

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


def test_the_batch_floor_checks_each_event_of_the_suites_batch(floor, monkeypatch):
    """The batches' p99 floor (BATCH_CHECKS_FLOOR) posts the suite's 50-event batch: all of it
    passes, one row per event; one bad event refuses the batch, as ours does."""
    monkeypatch.setattr(floor, "CHECKS", "1")
    case = next(c for c in cases("pub123", 7) if c.label == BATCH_CHECKS_FLOOR)
    batch = json.loads(case.body.replace("SEQ", "1-1"))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = floor.checked_rows(batch, environ(), now)
    assert len(rows) == case.per == 50
    assert all(row["visitor_id"] and row["browser"] == "Chrome" for row in rows)
    assert floor.checked_rows([*batch[:49], batch[0] | {"name": ""}], environ(), now) is None


# --- the legacy contracts' floors (BARE_CHECKS=benefits, collector, track) --------------------


def legacy_body(path: str) -> dict:
    """The suite's body for `path`, as wrk sends it (its per-request marks filled in)."""
    case = next(case for case in cases("pub123", 7) if case.path == path and case.source != "bare")
    body = case.body.replace("SEQ", "1-1").replace("HEX12", "000100000001")
    return json.loads(body.replace("USEC6", "000016").replace("RUN8", "abcd1234"))


def test_its_collector_row_is_ours_but_for_the_source_and_the_visitors_key(floor, monkeypatch):
    monkeypatch.setattr(floor, "CATEGORIES", frozenset({"page interaction"}))
    data, now = legacy_body("/collector"), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = floor.checked_collector_row(data, environ(), now)
    event = collector.CollectorEvent.model_validate(data)
    ours = collector.event_from(
        event, 7, received_at=now, visitor="x" * 32, country=lookup(PUBLIC_IP)
    )
    differ = {key for key in ours if key != "id" and ours[key] != row[key]}
    assert differ == {"source", "visitor_id"}
    assert row["visitor_id"] == visitor_hash(floor.VISITOR_KEY, 7, PUBLIC_IP, UA)
    assert row["dedupe_key"] and row["country"] and row["props"] == data["data"]


@pytest.mark.parametrize(
    "change",
    [
        {"category": "not added"},  # ours keeps it as an error: "Category not found"
        {"timestamp": "yesterday"},
        {"session_id": ""},
        {"data": "not an object"},
    ],
)
def test_what_our_collector_refuses_it_refuses(floor, monkeypatch, change):
    monkeypatch.setattr(floor, "CATEGORIES", frozenset({"page interaction"}))
    data = legacy_body("/collector") | change
    assert floor.checked_collector_row(data, environ(), dt.datetime(2026, 12, 5)) is None
    assert floor.checked_collector_row([data], environ(), dt.datetime(2026, 12, 5)) is None


def test_its_track_row_is_ours_but_for_the_source_and_the_visitors_key(floor):
    data, now = legacy_body("/track"), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = floor.checked_track_row(data, environ(), now)
    context = {"now": now, "max_future": floor.MAX_FUTURE}
    payload = track.TrackIn.model_validate(data, context=context)
    ours = track.track_row(
        payload, 7, user_agent=UA, received_at=now, visitor="x" * 32, country=lookup(PUBLIC_IP)
    )
    differ = {key for key in ours if key != "id" and ours[key] != row[key]}
    assert differ == {"source", "visitor_id"}
    assert row["browser"] == "Chrome" and row["path"] == "/index.html" and row["country"]


@pytest.mark.parametrize(
    "change",
    [
        {"action": "hover"},  # not one of the demo's three
        {"timestamp": "2099-01-01T00:00:00Z"},  # too far ahead
        {"session_id": "not a uuid"},
    ],
)
def test_what_our_track_refuses_it_refuses(floor, change):
    data = legacy_body("/track") | change
    assert floor.checked_track_row(data, environ(), dt.datetime(2026, 12, 5)) is None


def test_its_benefits_rows_are_ours_but_for_the_source_and_the_group(floor):
    data, now = legacy_body("/benefits"), dt.datetime(2026, 12, 5, 6)
    json_type = environ() | {"CONTENT_TYPE": "application/json"}
    (row,) = floor.checked_benefits_rows(data, json_type, now)
    record = benefits.BenefitRecord.model_validate(data)
    ours = benefits.record_row(record, 7, "g" * 32, created_at=now, country=lookup(PUBLIC_IP))
    differ = {key for key in ours if key != "id" and ours[key] != row[key]}
    assert differ == {"source", "props"}  # props: the batch's group id, made per request
    assert row["item_id"] == "RSA" and row["item_position"] == 3 and row["country"]
    two = floor.checked_benefits_rows([data, data], json_type, now)
    assert len(two) == 2 and two[0]["props"] == two[1]["props"]  # one group per batch


@pytest.mark.parametrize(
    "body, content_type",
    [
        ({"benefit_index": "three"}, "application/json"),
        ({}, "text/plain"),  # the recorder refuses any other content type
        ({"event_type": ""}, "application/json"),
    ],
)
def test_what_our_recorder_refuses_it_refuses(floor, body, content_type):
    data = legacy_body("/benefits") | body
    env = environ() | {"CONTENT_TYPE": content_type}
    now = dt.datetime(2026, 12, 5)
    assert floor.checked_benefits_rows(data, env, now) is None
    assert floor.checked_benefits_rows([legacy_body("/benefits"), data], env, now) is None


@pytest.mark.parametrize("contract", ["1", "benefits", "collector", "track"])
def test_each_contract_reads_its_own_body(floor, monkeypatch, contract):
    """`BARE_CHECKS` picks the contract: its body gives one row; another contract's, none."""
    monkeypatch.setattr(floor, "CHECKS", contract)
    monkeypatch.setattr(floor, "CATEGORIES", frozenset({"page interaction"}))
    bodies = {
        "1": single_event("pub123"),
        "benefits": legacy_body("/benefits"),
        "collector": legacy_body("/collector"),
        "track": legacy_body("/track"),
    }
    env = environ() | {"CONTENT_TYPE": "application/json"}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert len(floor.checked_rows(bodies[contract], env, now)) == 1
    for other in bodies.keys() - {contract}:
        assert floor.checked_rows(bodies[other], env, now) is None
