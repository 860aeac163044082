"""The Django collector contract: POST /collector answers {"task": id}; every post is kept."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.ingest.legacy.collector import Caller, allowed
from analytics.models import Category, Event, EventError
from tests.conftest import count

# The old README's website events.
PAGEVIEW = {
    "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
    "category": "page interaction",
    "name": "pageview",
    "data": {"host": "www.consumeraffairs.com", "path": "/"},
    "timestamp": "2021-01-01 09:15:27.243860",
}
SUBMIT = {
    "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
    "category": "form interaction",
    "name": "submit",
    "data": {
        "host": "www.consumeraffairs.com",
        "path": "/",
        "form": {"first_name": "John", "last_name": "Doe"},
    },
    "timestamp": "2021-01-01 09:15:29.000000",
}


@pytest.fixture
def categories(app):
    for name in ("page interaction", "form interaction"):
        db.session.add(Category(name=name))
    db.session.commit()


def post(client, body, path="/collector", **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", headers=headers)


def reasons() -> list[str]:
    return list(db.session.execute(sa.select(EventError.reason).order_by(EventError.id)).scalars())


@pytest.mark.parametrize("path", ["/collector", "/collector/"])
def test_valid_events_are_stored(client, categories, path):
    for body in (PAGEVIEW, SUBMIT):
        res = post(client, body, path)
        assert res.status_code == 200 and set(res.json) == {"task"}
    stored = list(db.session.execute(sa.select(Event).order_by(Event.occurred_at)).scalars())
    assert [(e.source, e.category, e.name) for e in stored] == [
        ("collector", "page interaction", "pageview"),
        ("collector", "form interaction", "submit"),
    ]
    assert stored[0].session_id == PAGEVIEW["session_id"]
    assert stored[0].occurred_at == dt.datetime(2021, 1, 1, 9, 15, 27, 243860)
    assert stored[1].props == SUBMIT["data"]
    assert str(stored[1].id) == res.json["task"]
    assert count(EventError) == 0


def test_a_zone_is_converted_to_utc(client, categories):
    post(client, {**PAGEVIEW, "timestamp": "2021-01-01T10:15:27+01:00"})
    event = db.session.execute(sa.select(Event)).scalar_one()
    assert event.occurred_at == dt.datetime(2021, 1, 1, 9, 15, 27)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**PAGEVIEW, "category": "unknown"}, "Category not found"),
        ({**PAGEVIEW, "timestamp": "01/01/2021 9h"}, "invalid timestamp format"),
        ({**PAGEVIEW, "timestamp": "0001-01-01T00:00:00+01:00"}, "invalid timestamp format"),
        ({k: v for k, v in PAGEVIEW.items() if k != "name"}, "name: Field required"),
        ({**PAGEVIEW, "data": "not an object"}, "data:"),
        ({**PAGEVIEW, "session_id": "s" * 65}, "session_id:"),
        ({}, "session_id: Field required"),
    ],
)
def test_invalid_events_get_200_and_an_error_row(client, categories, body, reason):
    res = post(client, body)
    assert res.status_code == 200 and set(res.json) == {"task"}
    assert count(Event) == 0
    [stored_reason] = reasons()
    assert reason in stored_reason
    error = db.session.execute(sa.select(EventError)).scalar_one()
    assert error.endpoint == "/collector" and error.payload == body


def test_duplicate_session_and_timestamp_is_stored_once(client, categories):
    post(client, PAGEVIEW)
    res = post(client, {**PAGEVIEW, "name": "again"})
    assert res.status_code == 200
    assert count(Event) == 1
    [reason] = reasons()
    assert reason.startswith("duplicate")
    post(client, {**PAGEVIEW, "timestamp": "2021-01-01 09:15:28"})  # other time: a new event
    post(client, {**PAGEVIEW, "session_id": "other"})  # other session: a new event
    assert count(Event) == 3


def test_long_reasons_are_kept_whole(client, categories):
    body = {"session_id": 1, "category": 2, "name": 3, "data": 4, "timestamp": "x" * 60}
    post(client, body)
    [reason] = reasons()
    assert len(reason) > 255 and reason.count(":") >= 5


@pytest.mark.parametrize(("body", "needle"), [("{oops", "not valid JSON"), ("[1, 2]", "object")])
def test_not_json_or_not_an_object_is_400(client, body, needle):
    res = post(client, body)
    assert res.status_code == 400 and needle in res.json["error"]
    [reason] = reasons()
    assert needle in reason


def test_too_large_is_413_and_kept_by_size(app, client):
    app.config["MAX_BODY_BYTES"] = 1000
    body = json.dumps({**PAGEVIEW, "data": {"x": "y" * 2000}})
    res = post(client, body)
    assert res.status_code == 413
    error = db.session.execute(sa.select(EventError)).scalar_one()
    assert error.body_size == len(body) and error.raw_body is None and error.payload is None


def test_get_is_405_with_allow_post(client):
    for path in ("/collector", "/collector/"):
        for method in ("GET", "PUT", "DELETE"):
            res = client.open(path, method=method)
            assert res.status_code == 405 and res.headers["Allow"] == "POST"
    assert count(EventError) == 0 and count(Event) == 0


def test_untrusted_clients_get_403(app, client, categories):
    app.config["COLLECTOR_ALLOWED_HOSTS"] = ["www.consumeraffairs.com", ".example.org"]
    assert post(client, PAGEVIEW, Origin="https://evil.example").status_code == 403
    assert post(client, PAGEVIEW).status_code == 403  # Host: localhost
    assert count(Event) == 0 and len(reasons()) == 2
    assert post(client, PAGEVIEW, Origin="https://www.consumeraffairs.com").status_code == 200
    other = {**PAGEVIEW, "session_id": "s2"}
    assert post(client, other, Origin="https://shop.example.org:8443").status_code == 200
    assert count(Event) == 2


@pytest.mark.parametrize(
    ("patterns", "origin", "host", "ok"),
    [
        (["*"], "https://any.example", None, True),
        (["example.org"], "https://example.org", None, True),
        (["example.org"], "https://www.example.org", None, False),
        ([".example.org"], "https://www.example.org", None, True),
        ([".example.org"], "https://example.org", None, True),
        (["https://example.org"], "https://example.org", None, True),
        (["analytics.example"], None, "analytics.example:5000", True),
        (["analytics.example"], "https://other.example", "analytics.example", False),
        (["analytics.example"], None, None, False),
    ],
)
def test_allowed_hosts_rule(patterns, origin, host, ok):
    assert allowed(patterns, Caller(origin=origin, host=host)) is ok


def _random_body(rng: random.Random, n: int) -> str:
    kind = rng.randrange(7)
    good = {**PAGEVIEW, "timestamp": f"2021-01-01 09:{n // 60:02d}:{n % 60:02d}"}
    if kind <= 1:
        return json.dumps(good)
    if kind == 2:
        return json.dumps({**good, "category": rng.choice(["nope", "", None, 5])})
    if kind == 3:
        return json.dumps(PAGEVIEW)  # a duplicate after the first one
    if kind == 4:
        return rng.choice(["", "{", "null", "[]", '"x"', "NaN", "[" * 5000])
    if kind == 5:
        return json.dumps({**good, "data": {"a": "\x00\ud800", "deep": [[[[[[[[[[[1]]]]]]]]]]]}})
    bad_times = ["9999-99-99", 1, "", "2021-13-01", "0001-01-01T00:00:00+01:00"]
    return json.dumps({**good, "timestamp": rng.choice(bad_times)})


def test_conservation_every_post_is_an_event_or_an_error(client, categories):
    rng = random.Random(7)
    n = 80
    for i in range(n):
        res = post(client, _random_body(rng, i))
        assert res.status_code in (200, 400), res.data
    assert count(Event) + count(EventError) == n


def test_allowed_browser_origins_get_cors(app, client, categories):
    app.config["COLLECTOR_ALLOWED_HOSTS"] = [".consumeraffairs.com"]
    origin = "https://www.consumeraffairs.com"
    pre = client.options("/collector/", headers={"Origin": origin})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == origin
    res = post(client, PAGEVIEW, Origin=origin)
    assert res.headers["Access-Control-Allow-Origin"] == origin
    pre = client.options("/collector", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in pre.headers
