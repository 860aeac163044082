"""The benefits recorder contract: POST /benefits, GET /benefits, GET /statistics, CORS."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.ingest.legacy.benefits import EVENT_TYPES
from analytics.models import Event, EventError, Site, utcnow
from tests.conftest import count

# Exactly what the recorder's README sends (its curl examples).
README_ONE = {
    "benefit_id": "RSA",
    "hash_id": "xxxxxxxxx",
    "benefit_index": 4,
    "page_total": 10,
    "event_type": "show",
}
README_BATCH = [
    {
        "benefit_id": "RSA",
        "hash_id": "xxxxxxxxx",
        "benefit_index": 1,
        "page_total": 2,
        "event_type": "show",
    },
    {
        "benefit_id": "Livret d’épargne populaire",
        "hash_id": "xxxxxxxxx",
        "benefit_index": 2,
        "page_total": 2,
        "event_type": "show",
    },
]
# What the real simulator sends: numbers as strings, a version, A/B test variants.
REAL_CLIENT = {
    "benefit_id": "aide_logement",
    "hash_id": "8e7b1c9a0f3d2e11",
    "benefit_index": "3",
    "page_total": "12",
    "event_type": "showDetails",
    "version": "2",
    "abtesting": {"aides_locales": "B"},
}


def post(client, body, path="/benefits", content_type="application/json"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type)


def events() -> list[Event]:
    return list(db.session.execute(sa.select(Event).order_by(Event.item_position)).scalars())


def error_rows() -> list[EventError]:
    return list(db.session.execute(sa.select(EventError).order_by(EventError.id)).scalars())


@pytest.mark.parametrize("path", ["/benefits", "/benefits/"])
def test_readme_single_record_is_stored(client, path):
    res = post(client, README_ONE, path)
    assert res.status_code == 200
    assert res.json == {"response": "Record created"}
    [event] = events()
    assert (event.source, event.name, event.item_id) == ("benefits", "show", "RSA")
    assert (event.item_position, event.list_size, event.visitor_id) == (4, 10, "xxxxxxxxx")
    assert event.schema_version == 2  # no version given: the current one
    assert set(event.props) == {"group_id"}
    assert abs(event.occurred_at - utcnow()) < dt.timedelta(seconds=10)
    site = db.session.get(Site, event.site_id)
    assert (site.public_id, site.name) == ("legacy", "Legacy clients")
    assert count(EventError) == 0


def test_readme_batch_shares_one_group_id(client):
    res = post(client, README_BATCH)
    assert (res.status_code, res.json) == (200, {"response": "Record created"})
    first, second = events()
    assert (first.item_id, second.item_id) == ("RSA", "Livret d’épargne populaire")
    assert first.props["group_id"] == second.props["group_id"]
    post(client, README_ONE)
    groups = {e.props["group_id"] for e in events()}
    assert len(groups) == 2


def test_real_client_numeric_strings_and_abtesting(client):
    res = post(client, {**REAL_CLIENT, "created_at": "2001-01-01", "unknown": 1})
    assert res.status_code == 200, res.json
    [event] = events()
    assert (event.item_position, event.list_size, event.schema_version) == (3, 12, 2)
    assert event.name == "showDetails"
    assert event.props["abtesting"] == {"aides_locales": "B"}
    assert event.occurred_at.year == utcnow().year  # a client created_at is ignored


def test_default_event_type_is_show(client):
    body = {k: v for k, v in README_ONE.items() if k != "event_type"}
    assert post(client, body).status_code == 200
    assert events()[0].name == "show"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_is_accepted(client, event_type):
    assert post(client, {**README_ONE, "event_type": event_type}).status_code == 200
    assert events()[0].name == event_type


def test_there_are_exactly_seventeen_event_types():
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES)) == 17


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        ({**README_ONE, "event_type": "hover"}, "application/json", "event_type"),
        ({k: v for k, v in README_ONE.items() if k != "hash_id"}, "application/json", "hash_id"),
        ({**README_ONE, "benefit_index": "four"}, "application/json", "benefit_index"),
        ({**README_ONE, "benefit_index": 0}, "application/json", "benefit_index"),
        ({**README_ONE, "page_total": True}, "application/json", "page_total"),
        ({**README_ONE, "hash_id": "h" * 65}, "application/json", "hash_id"),
        ({**README_ONE, "version": "two"}, "application/json", "version"),
        ({**README_ONE, "benefit_id": 7}, "application/json", "benefit_id"),
        ("{not json", "application/json", "not valid JSON"),
        ('"a string"', "application/json", "record object or an array"),
        ("42", "application/json", "record object or an array"),
        (json.dumps(README_ONE), "text/plain", "Content-Type"),
        ("", "application/json", "not valid JSON"),
    ],
)
def test_errors_are_422_with_a_message_and_kept(client, body, content_type, needle):
    res = post(client, body, content_type=content_type)
    assert res.status_code == 422
    assert set(res.json) == {"message"} and needle in res.json["message"]
    assert count(Event) == 0
    [error] = error_rows()
    assert error.endpoint == "/benefits" and needle in error.reason


def test_a_batch_is_all_or_nothing(client):
    bad = {**README_BATCH[1], "page_total": None}
    res = post(client, [README_BATCH[0], bad])
    assert res.status_code == 422
    assert "record 1" in res.json["message"] and "page_total" in res.json["message"]
    assert count(Event) == 0
    [error] = error_rows()  # one row for the whole rejected batch
    assert error.payload == [README_BATCH[0], bad]


def test_empty_array_is_ok_and_stores_nothing(client):
    res = post(client, [])
    assert (res.status_code, res.json) == (200, {"response": "Record created"})
    assert count(Event) == 0 and count(EventError) == 0


def test_body_over_100_kb_is_422_and_kept_by_size(client):
    body = json.dumps([README_ONE] * 1200)
    assert len(body) > 100 * 1024
    res = post(client, body)
    assert res.status_code == 422 and "too large" in res.json["message"]
    [error] = error_rows()
    assert error.body_size == len(body) and error.payload is None and error.raw_body is None
    assert count(Event) == 0


def test_get_benefits_counts_by_type_since_start_at(client):
    post(client, README_BATCH)
    post(client, {**README_ONE, "event_type": "showDetails", "version": 1})
    res = client.get("/benefits")
    assert res.status_code == 200
    assert sorted(res.json, key=lambda r: r["id"]) == [
        {"id": "Livret d’épargne populaire", "events": {"show": 1}},
        {"id": "RSA", "events": {"show": 1, "showDetails": 1}},
    ]
    # Backdate one record: a later start_at leaves it out.
    with db.engine.begin() as conn:
        conn.execute(
            sa.update(Event)
            .where(Event.name == "showDetails")
            .values(occurred_at=dt.datetime(2020, 1, 1))
        )
    res = client.get("/benefits/?start_at=2021-06-01")
    assert {r["id"]: r["events"] for r in res.json}["RSA"] == {"show": 1}
    assert len(client.get("/benefits?start_at=2019-12-31T23:00:00Z").json) == 2


@pytest.mark.parametrize("value", ["yesterday", "2024-02-30", "0001-01-01T00:00:00+01:00"])
def test_get_benefits_refuses_a_bad_start_at(client, value):
    res = client.get("/benefits", query_string={"start_at": value})
    assert res.status_code == 400 and "start_at" in res.json["message"]


def test_statistics_nest_counts_and_rank_benefits(client):
    assert client.get("/statistics").json == []
    records = [
        {**README_ONE, "benefit_id": "A", "benefit_index": 1, "page_total": 2},
        {**README_ONE, "benefit_id": "A", "benefit_index": 1, "page_total": 2},
        {**README_ONE, "benefit_id": "A", "benefit_index": 2, "page_total": 3},
        {**README_ONE, "benefit_id": "A", "event_type": "showDetails", "benefit_index": 2},
        {**README_ONE, "benefit_id": "B", "version": "2"},
        {**README_ONE, "benefit_id": "C"},
        {**README_ONE, "benefit_id": "D", "version": 1},  # an older version: left out
    ]
    assert post(client, records).status_code == 200
    res = client.get("/statistics/")
    assert res.status_code == 200
    assert res.json == [
        {
            "benefit": "A",
            "events": {
                "show": {"2": {"1": 2}, "3": {"2": 1}},
                "showDetails": {"10": {"2": 1}},
            },
            "events_count": 4,
        },
        {"benefit": "B", "events": {"show": {"10": {"4": 1}}}, "events_count": 1},
        {"benefit": "C", "events": {"show": {"10": {"4": 1}}}, "events_count": 1},
    ]


def test_reads_ignore_other_sources_and_sites(client, site):
    post(client, README_ONE)
    client.post(
        "/api/events",
        data=json.dumps(
            {
                "site": site.public_id,
                "name": "show",
                "item": {"id": "X", "position": 1, "list_size": 2},
            }
        ),
        content_type="text/plain",
    )
    assert [r["id"] for r in client.get("/benefits").json] == ["RSA"]
    assert [r["benefit"] for r in client.get("/statistics").json] == ["RSA"]


def test_legacy_site_setting_chooses_the_site(app, client, make_site):
    chosen = make_site(public_id="aidesjeunes")
    app.config["LEGACY_SITE"] = "aidesjeunes"
    post(client, README_ONE)
    assert events()[0].site_id == chosen.id


@pytest.mark.parametrize("domain", ["", "*", "https://simulator.example"])
def test_cors_domain_and_preflight(app, client, domain):
    app.config["CORS_DOMAIN"] = domain
    for path in ("/benefits", "/statistics/"):
        pre = client.options(path, headers={"Origin": "https://simulator.example"})
        assert pre.status_code == 204
        assert pre.headers.get("Access-Control-Allow-Origin") == (domain or None)
    res = post(client, README_ONE)
    assert res.headers.get("Access-Control-Allow-Origin") == (domain or None)
    res = client.get("/statistics")
    assert res.headers.get("Access-Control-Allow-Origin") == (domain or None)


def _random_post(rng: random.Random) -> tuple[object, int]:
    """A random body and how many rows it must leave (events, or 1 error row)."""
    good = dict(README_ONE, benefit_index=rng.randint(1, 9), event_type=rng.choice(EVENT_TYPES))
    kind = rng.randrange(8)
    if kind == 0:
        return good, 1
    if kind == 1:
        batch = [dict(good, benefit_index=i + 1) for i in range(rng.randint(1, 5))]
        return batch, len(batch)
    if kind == 2:
        return [good, dict(good, hash_id=None)], 1
    if kind == 3:
        return "[" * rng.randint(1, 3000), 1
    if kind == 4:
        return dict(good, benefit_id="\x00\ud800" + "é" * rng.randint(0, 300)), 1
    if kind == 5:
        return rng.choice([None, 3.5, "x", [1], {"abtesting": [1]}]), 1
    if kind == 6:
        return dict(good, abtesting={"k": "\x00", "n": 1e308}), 1
    return dict(good, page_total=rng.choice(["1e3", "", -1, 10**20, "12"])), 1


def test_conservation_every_post_is_an_event_or_an_error(client):
    rng = random.Random(3)
    expected = 0
    for _ in range(60):
        body, rows = _random_post(rng)
        res = post(client, body if isinstance(body, str) else json.dumps(body))
        assert res.status_code in (200, 422), res.data
        expected += rows
    assert count(Event) + count(EventError) == expected


def test_openapi_describes_the_compatible_endpoints(client):
    spec = client.get("/api/openapi.json").json
    assert {"post", "get"} <= set(spec["paths"]["/benefits"])
    assert "get" in spec["paths"]["/statistics"] and "post" in spec["paths"]["/track"]
    schemas = spec["components"]["schemas"]
    record = schemas["BenefitRecord"]
    assert set(record["required"]) == {"benefit_id", "hash_id", "benefit_index", "page_total"}
    assert record["properties"]["event_type"]["enum"] == list(EVENT_TYPES)
    assert (
        "_v" in schemas["TrackIn"]["properties"] and "data" in schemas["CollectorEvent"]["required"]
    )


def test_readme_curl_batch_over_real_http(live_server):
    import requests

    res = requests.post(
        f"{live_server}/benefits",
        data=json.dumps(README_BATCH).encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert (res.status_code, res.json()) == (200, {"response": "Record created"})
    assert count(Event) == 2
    stats = requests.get(f"{live_server}/statistics", timeout=10).json()
    assert sorted(s["benefit"] for s in stats) == ["Livret d’épargne populaire", "RSA"]
