"""The FastAPI tracking demo contract: POST /track answers null, or 422 in FastAPI's shape."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import Event, EventError, utcnow
from tests.conftest import count

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SESSION = "0b4e5e04-63c3-4bd6-9b55-46f0c41a3f5e"


def payload(**changes):
    """What the demo's JS tracker sends on a page load."""
    body = {
        "_v": 1,
        "timestamp": "2024-03-01T10:00:00.000Z",
        "order": 0,
        "session_id": SESSION,
        "page": "/index.html",
        "action": "load",
        "meta": json.dumps({"title": "Demo", "width": 1280}),
        "client_context": {"referer": "https://search.example/?q=demo"},
        "server_context": {},
    }
    body.update(changes)
    return body


def post(client, body, path="/track", **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", headers=headers)


def stored() -> list[Event]:
    return list(db.session.execute(sa.select(Event).order_by(Event.occurred_at)).scalars())


@pytest.mark.parametrize("path", ["/track", "/track/"])
def test_a_load_event_is_stored(client, path):
    res = post(client, payload(), path, **{"User-Agent": FIREFOX})
    assert res.status_code == 200
    assert res.data.strip() == b"null" and res.mimetype == "application/json"
    [event] = stored()
    assert (event.source, event.name, event.path) == ("track", "load", "/index.html")
    assert event.session_id == SESSION
    assert event.occurred_at == dt.datetime(2024, 3, 1, 10, 0)
    assert event.referrer == "https://search.example/"
    assert (event.browser, event.os, event.device) == ("Firefox", "Linux", "desktop")
    assert event.props == {"order": 0, "meta": {"title": "Demo", "width": 1280}, "_v": 1}
    assert event.visitor_id and count(EventError) == 0


def test_missing_user_agent_is_fine(client):
    client.environ_base.pop("HTTP_USER_AGENT", None)  # the test client sends one by default
    res = client.post("/track", data=json.dumps(payload()), content_type="application/json")
    assert res.status_code == 200
    [event] = stored()
    assert (event.browser, event.os, event.device) == (None, None, None)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1709287200, dt.datetime(2024, 3, 1, 10, 0)),  # epoch seconds
        (1709287200123, dt.datetime(2024, 3, 1, 10, 0, 0, 123000)),  # epoch milliseconds
        ("1709287200", dt.datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01T11:00:00+01:00", dt.datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01 10:00:00", dt.datetime(2024, 3, 1, 10, 0)),
    ],
)
def test_timestamps_iso_or_epoch(client, timestamp, expected):
    assert post(client, payload(timestamp=timestamp)).status_code == 200
    assert stored()[0].occurred_at == expected


def test_meta_that_is_not_json_is_kept_as_text(client):
    post(client, payload(meta="not {json", action="click", order=3))
    post(client, payload(meta=None, action="scroll", order=4, page=None, client_context={}))
    click, scroll = sorted(stored(), key=lambda e: e.props["order"])
    assert click.props["meta"] == "not {json" and click.name == "click"
    assert scroll.props["meta"] is None and scroll.path is None and scroll.referrer is None


def test_page_keeps_only_the_path(client):
    post(client, payload(page="https://demo.example/shop?email=a@b.c#top"))
    assert stored()[0].path == "/shop"


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (payload(action="hover"), ["body", "action"], "literal_error"),
        (payload(session_id="not-a-uuid"), ["body", "session_id"], "uuid_parsing"),
        (payload(_v=0), ["body", "_v"], "greater_than"),
        (payload(order="first"), ["body", "order"], "int_parsing"),
        (payload(timestamp="yesterday"), ["body", "timestamp"], "value_error"),
        (payload(timestamp="0001-01-01T00:00:00+01:00"), ["body", "timestamp"], "value_error"),
        ({k: v for k, v in payload().items() if k != "action"}, ["body", "action"], "missing"),
        ([payload()], ["body"], "model_type"),
    ],
)
def test_validation_errors_are_422_in_fastapi_shape(client, body, loc, kind):
    res = post(client, body)
    assert res.status_code == 422
    detail = res.json["detail"]
    assert {"loc": loc, "type": kind} == {k: detail[0][k] for k in ("loc", "type")}
    assert detail[0]["msg"]
    assert count(Event) == 0
    error = db.session.execute(sa.select(EventError)).scalar_one()
    assert error.endpoint == "/track" and loc[-1] in error.reason


def test_invalid_json_is_422(client):
    res = post(client, "{nope")
    assert res.status_code == 422
    assert res.json["detail"][0]["type"] == "json_invalid"
    assert count(EventError) == 1


def test_a_timestamp_far_in_the_future_is_refused(client):
    ahead = (utcnow() + dt.timedelta(days=2)).isoformat()
    assert post(client, payload(timestamp=ahead)).status_code == 422


@pytest.mark.parametrize("moment", ["0999-01-01T09:24:57", "1969-12-31T23:59:59Z", -1])
def test_a_timestamp_before_1970_is_refused_and_kept(client, moment):
    """Found by the fuzz tests: year 999 (strftime writes '999', in which SQLite found no day)
    made the rollup queue's trigger fail, a 503 that a retry could never cure."""
    res = post(client, payload(timestamp=moment))
    assert res.status_code == 422
    assert "1970" in json.dumps(res.json)
    assert count(EventError) == 1


def test_any_origin_may_send(client):
    pre = client.options(
        "/track/",
        headers={
            "Origin": "https://demo.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "content-type" in pre.headers["Access-Control-Allow-Headers"]
    res = post(client, payload(), Origin="https://demo.example")
    assert res.headers["Access-Control-Allow-Origin"] == "*"


def test_the_old_action_count_query_is_reproducible(client):
    actions = ["load"] + ["scroll"] * 5 + ["click"] * 2
    for order, action in enumerate(actions):
        post(client, payload(action=action, order=order))
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.count(), Event.name)
            .where(Event.source == "track")
            .group_by(Event.name)
        ).all()
    assert {name: n for n, name in rows} == {"load": 1, "scroll": 5, "click": 2}


def test_dnt_and_bots_are_stored_as_before(client):
    post(client, payload(), DNT="1", **{"Sec-GPC": "1"})
    post(client, payload(), **{"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"})
    assert count(Event) == 2


def _random_body(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind <= 1:
        body = payload(order=rng.randint(0, 99), action=rng.choice(["load", "scroll", "click"]))
        body["session_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        return json.dumps(body)
    if kind == 2:
        return json.dumps(payload(meta="\x00\ud800" + "{" * rng.randint(0, 2000)))
    if kind == 3:
        return rng.choice(["", "{", "null", "[]", "NaN", "[" * 5000, '{"_v": 1e999}'])
    if kind == 4:
        bad = [10**30, -(10**15), "", True, None, "9999-12-31T23:59:59-01:00"]
        return json.dumps(payload(timestamp=rng.choice(bad)))
    return json.dumps(payload(server_context={"a": ["x" * 3000]}, page="\x00"))


def test_conservation_every_post_is_an_event_or_an_error(client):
    rng = random.Random(11)
    n = 80
    for _ in range(n):
        res = post(client, _random_body(rng), **{"User-Agent": FIREFOX})
        assert res.status_code in (200, 422), res.data
    assert count(Event) + count(EventError) == n


def test_no_user_agent_over_real_http(live_server):
    import requests

    res = requests.post(
        f"{live_server}/track",
        data=json.dumps(payload()),
        headers={"Content-Type": "application/json", "User-Agent": None},
        timeout=10,
    )
    assert res.status_code == 200 and res.text.strip() == "null"
    [event] = stored()
    assert event.browser is None and event.name == "load"
