"""POST /api/events: validation, storage, batches, CORS, privacy headers, size limits."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import Event, EventError, utcnow
from tests.conftest import count

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def post(client, body, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers.setdefault("User-Agent", CHROME)
    return client.post("/api/events", data=data, headers=headers, content_type="text/plain")


def stored() -> list[Event]:
    return list(db.session.execute(sa.select(Event)).scalars())


def errors() -> list[EventError]:
    return list(db.session.execute(sa.select(EventError).order_by(EventError.id)).scalars())


def test_valid_event_is_stored_with_derived_fields(client, site):
    res = post(
        client,
        {
            "site": site.public_id,
            "name": "pageview",
            "session": "s1",
            "eid": "e1",
            "url": "https://example.org/pricing?utm_source=news&utm_campaign=nov&email=x@y.z",
            "referrer": "https://search.example/q?secret=1",
            "screen": 1440,
            "lang": "fr-FR",
        },
    )
    assert res.status_code == 202, res.json
    assert res.json == {"accepted": 1}
    [event] = stored()
    assert (event.site_id, event.name, event.source) == (site.id, "pageview", "tracker")
    assert event.path == "/pricing"
    assert (event.utm_source, event.utm_campaign, event.utm_medium) == ("news", "nov", None)
    assert event.referrer == "https://search.example/q"  # query dropped
    assert (event.browser, event.os, event.device) == ("Chrome", "Windows", "desktop")
    assert event.props == {"screen": 1440, "lang": "fr-FR"}
    assert len(event.visitor_id) == 32
    assert abs(event.occurred_at - utcnow()) < dt.timedelta(seconds=10)
    assert count(EventError) == 0


def test_no_ip_address_is_stored(client, site):
    post(client, {"site": site.public_id, "name": "pageview"}, **{"X-Forwarded-For": "203.0.113.9"})
    with db.engine.connect() as conn:
        dump = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(Event.__table__))])
    assert "127.0.0.1" not in dump and "203.0.113.9" not in dump


def test_visitor_id_is_stable_within_a_day_and_differs_by_agent(client, site):
    body = {"site": site.public_id, "name": "pageview"}
    post(client, body)
    post(client, body)
    post(client, body, **{"User-Agent": CHROME.replace("120", "121")})
    ids = [e.visitor_id for e in stored()]
    assert len(set(ids)) == 2


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"name": "pageview"}, "site"),
        ({"site": "SITE"}, "name"),
        ({"site": "SITE", "name": 12}, "name"),
        ({"site": "SITE", "name": "x" * 101}, "name"),
        ({"site": "SITE", "name": "pv", "ts": "yesterday-ish"}, "ts"),
        ({"site": "SITE", "name": "pv", "ts": "2001-01-01T00:00:00Z"}, "ts"),
        ({"site": "SITE", "name": "pv", "ts": True}, "ts"),
        (
            {"site": "SITE", "name": "pv", "item": {"id": "a", "position": 3, "list_size": 2}},
            "item",
        ),
        (
            {"site": "SITE", "name": "pv", "item": {"id": "a", "position": "1", "list_size": 2}},
            "item.position",
        ),
        ({"site": "SITE", "name": "pv", "props": {f"k{i}": i for i in range(40)}}, "props"),
        ({"site": "SITE", "name": "pv", "props": {"a": {"b": {"c": {"d": 1}}}}}, "props"),
        ({"site": "SITE", "name": "pv", "props": {"a": "x" * 501}}, "props"),
        ({"site": "SITE", "name": "pv", "unknown": 1}, "unknown"),
        ({"site": "nope", "name": "pv"}, "site"),
    ],
)
def test_invalid_event_is_rejected_naming_the_field(client, site, event, field):
    if event.get("site") == "SITE":
        event["site"] = site.public_id
    res = post(client, event)
    assert res.status_code == 400
    fields = [e["field"] for e in res.json["rejected"][0]["errors"]]
    assert field in fields
    assert res.json["error"].startswith(field)
    assert count(Event) == 0
    [error] = errors()
    assert error.endpoint == "/api/events" and field in error.reason
    assert error.payload == event


def test_event_time_window(client, site, app):
    now = utcnow()
    ok = [now - dt.timedelta(days=6), now + dt.timedelta(minutes=4)]
    bad = [now - dt.timedelta(days=8), now + dt.timedelta(minutes=6)]
    for moment in ok:
        assert (
            post(
                client, {"site": site.public_id, "name": "pv", "ts": moment.isoformat() + "Z"}
            ).status_code
            == 202
        )
    epoch_ms = int((now - dt.timedelta(hours=1)).replace(tzinfo=dt.UTC).timestamp() * 1000)
    assert post(client, {"site": site.public_id, "name": "pv", "ts": epoch_ms}).status_code == 202
    for moment in bad:
        assert (
            post(
                client, {"site": site.public_id, "name": "pv", "ts": moment.isoformat()}
            ).status_code
            == 400
        )
    times = sorted(e.occurred_at for e in stored())
    assert abs(times[0] - ok[0]) < dt.timedelta(seconds=1)
    assert abs(times[1] - (now - dt.timedelta(hours=1))) < dt.timedelta(seconds=1)


def test_max_age_is_configurable(client, site, app):
    app.config["MAX_EVENT_AGE_DAYS"] = 30
    old = (utcnow() - dt.timedelta(days=20)).isoformat()
    assert post(client, {"site": site.public_id, "name": "pv", "ts": old}).status_code == 202


def epoch_ms(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)


def test_an_age_alone_dates_the_event_by_the_server_clock(client, site):
    res = post(client, {"site": site.public_id, "name": "pv", "age": 90_000})
    assert res.status_code == 202, res.json
    [event] = stored()
    assert abs(event.occurred_at - (utcnow() - dt.timedelta(seconds=90))) < dt.timedelta(seconds=5)


@pytest.mark.parametrize("offset_minutes", [60, 6, -60, -6])
def test_a_wrong_visitor_clock_is_corrected_by_the_age(client, site, offset_minutes):
    """The tracker sends `ts` by the visitor's clock and `age`: a clock an hour (or 6 minutes)
    ahead or behind would put the event outside the accepted window; corrected, it lands now."""
    wrong = utcnow() + dt.timedelta(minutes=offset_minutes)
    body = {"site": site.public_id, "name": "pv", "eid": "p.1", "ts": epoch_ms(wrong), "age": 0}
    assert post(client, body).status_code == 202
    [event] = stored()
    assert abs(event.occurred_at - utcnow()) < dt.timedelta(seconds=35)


def test_a_resend_with_a_later_age_keeps_the_time_and_is_stored_once(client, site):
    """Later, the same event comes again: same ts, a larger age, and another network delay. Its
    time must be the same to the microsecond, or the database would store it twice."""
    made = utcnow() - dt.timedelta(milliseconds=1234)
    first = {"site": site.public_id, "name": "pv", "eid": "p.2", "ts": epoch_ms(made), "age": 1234}
    assert post(client, first).json == {"accepted": 1}
    waited = int((utcnow() - made).total_seconds() * 1000)
    again = dict(first, age=waited - 700)  # this time the request took 0.7 s to arrive
    assert post(client, again).json == {"accepted": 1, "duplicates": 1}
    [event] = stored()
    assert event.occurred_at == dt.datetime.fromtimestamp(
        epoch_ms(made) / 1000, dt.UTC
    ).replace(tzinfo=None), "a right clock (off by a network delay) is not moved"


def test_sender_time_rounds_the_clock_error_to_the_minute():
    from analytics.ingest.schema import sender_time

    now = dt.datetime(2026, 5, 1, 12, 0, 0)
    ts = dt.datetime(2026, 5, 1, 13, 0, 10)  # an hour and 10 s ahead, made 2 s ago
    assert sender_time(ts, 2000, now) == dt.datetime(2026, 5, 1, 12, 0, 10)
    assert sender_time(None, 2000, now) == dt.datetime(2026, 5, 1, 11, 59, 58)
    assert sender_time(now, 29_000, now) == now  # 29 s: a delay, not a clock error
    # The same event resent 4 minutes later by an hour-fast clock: the same time again.
    later = now + dt.timedelta(minutes=4, milliseconds=350)
    assert sender_time(ts, 2000 + 240_000, later) == dt.datetime(2026, 5, 1, 12, 0, 10)


def test_a_negative_age_counts_as_zero(client, site):
    """A clock set back between two pages of a tab makes a negative age: the event is kept."""
    assert post(client, {"site": site.public_id, "name": "pv", "age": -1500}).status_code == 202
    [event] = stored()
    assert abs(event.occurred_at - utcnow()) < dt.timedelta(seconds=5)


@pytest.mark.parametrize("age", [-8 * 24 * 3600 * 1000, "5", True, [1], 8 * 24 * 3600 * 1000])
def test_a_bad_age_is_refused_on_its_field(client, site, age):
    res = post(client, {"site": site.public_id, "name": "pv", "age": age})
    assert res.status_code == 400
    assert res.json["rejected"][0]["errors"][0]["field"] == "age"


def test_an_age_older_than_the_window_is_refused_on_ts(client, site, app):
    app.config["MAX_EVENT_AGE_DAYS"] = 1
    res = post(client, {"site": site.public_id, "name": "pv", "age": 2 * 24 * 3600 * 1000})
    assert res.status_code == 400
    assert res.json["rejected"][0]["errors"][0]["field"] == "ts"


def test_batch_reports_rejected_items_and_stores_the_rest(client, site):
    batch = [
        {"site": site.public_id, "name": "a"},
        {"site": site.public_id},
        {"site": site.public_id, "name": "c", "screen": "wide"},
        {"site": site.public_id, "name": "d"},
    ]
    res = post(client, batch)
    assert res.status_code == 202
    assert res.json["accepted"] == 2
    assert [r["index"] for r in res.json["rejected"]] == [1, 2]
    assert sorted(e.name for e in stored()) == ["a", "d"]
    assert [e.payload for e in errors()] == [batch[1], batch[2]]


def test_batch_over_the_limit_is_413(client, site):
    batch = [{"site": site.public_id, "name": "x"}] * 501
    res = post(client, batch)
    assert res.status_code == 413
    assert count(Event) == 0 and count(EventError) == 1


def test_resent_event_id_is_stored_once(client, site):
    body = {"site": site.public_id, "name": "pv", "eid": "abc-1", "ts": utcnow().isoformat()}
    assert post(client, body).json == {"accepted": 1}
    assert post(client, body).json == {"accepted": 1, "duplicates": 1}
    assert count(Event) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"site": ', 400),
        (b"42", 400),
        (b'"text"', 400),
        (b"\xff\xfe", 400),
    ],
)
def test_bodies_that_are_not_events(client, site, body, status):
    res = post(client, body)
    assert res.status_code == status
    assert "error" in res.json
    [error] = errors()
    assert error.body_size == len(body)
    assert count(Event) == 0


def test_oversized_body_is_413_and_recorded_by_size(client, site, app):
    app.config["MAX_BODY_BYTES"] = 1000
    res = post(client, b"x" * 5000)
    assert res.status_code == 413
    [error] = errors()
    assert error.body_size == 5000 and error.raw_body is None


@pytest.mark.parametrize("header", [{"DNT": "1"}, {"Sec-GPC": "1"}])
def test_do_not_track_and_gpc_store_nothing(client, site, header):
    res = post(client, {"site": site.public_id, "name": "pv"}, **header)
    assert res.status_code == 200
    assert res.json["stored"] is False and "nothing was stored" in res.json["reason"]
    assert count(Event) == 0 and count(EventError) == 0


def test_bots_are_dropped_and_told_so(client, site):
    res = post(
        client,
        {"site": site.public_id, "name": "pv"},
        **{"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
    )
    assert res.status_code == 202 and res.json["reason"] == "bot user agent ignored"
    assert count(Event) == 0


def test_cors_allows_listed_origins_only(client, make_site):
    site = make_site(origins=["https://shop.example"])
    ok = post(client, {"site": site.public_id, "name": "pv"}, Origin="https://shop.example")
    assert ok.status_code == 202
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    bad = post(client, {"site": site.public_id, "name": "pv"}, Origin="https://evil.example")
    assert bad.status_code == 403
    assert "Access-Control-Allow-Origin" not in bad.headers
    assert "not allowed" in bad.json["error"]
    assert count(Event) == 1 and count(EventError) == 1
    pre = client.options("/api/events", headers={"Origin": "https://shop.example"})
    assert pre.status_code == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]


def test_mixed_thousand_events_conserve_every_one(client, site):
    """1,000 sends, a random third malformed: exactly the valid ones stored, the rest recorded."""
    rng = random.Random(7)
    malformed = [
        lambda: b"{not json",
        lambda: json.dumps({"site": site.public_id}),
        lambda: json.dumps({"site": site.public_id, "name": ["list"]}),
        lambda: json.dumps({"site": site.public_id, "name": "pv", "screen": "x"}),
        lambda: json.dumps({"site": site.public_id, "name": "pv", "props": {"a": "x" * 600}}),
        lambda: json.dumps({"site": site.public_id, "name": "n" * 300}),
        lambda: json.dumps([1, 2]),
    ]
    valid = bad = 0
    for i in range(1000):
        if rng.random() < 1 / 3:
            body = rng.choice(malformed)()
            bad += (
                len(json.loads(body))
                if body.startswith(b"[" if isinstance(body, bytes) else "[")
                else 1
            )
        else:
            body = json.dumps({"site": site.public_id, "name": f"e{i % 5}", "eid": f"id{i}"})
            valid += 1
        res = post(client, body)
        assert res.status_code < 500
    assert count(Event) == valid
    assert count(EventError) == bad


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_write_survives_a_dropped_database_connection(client, site, database_url):
    """After the server drops pooled connections (as on a restart), the next event still lands."""
    public_id = site.public_id
    assert post(client, {"site": public_id, "name": "before"}).status_code == 202
    db.session.close()  # every connection is now idle in the pool, as between requests
    killer = sa.create_engine(database_url)
    with killer.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert killed >= 1
    res = post(client, {"site": public_id, "name": "after"})
    assert res.status_code == 202, res.json
    with killer.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM events ORDER BY name")).scalars().all()
    killer.dispose()
    assert names == ["after", "before"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b'{"site": "x", "name": NaN}',
        b'{"site": "x", "name": "pv", "ts": "0001-01-01T00:00:00+01:00"}',
    ],
)
def test_hostile_bodies_get_a_4xx_never_a_500(client, site, body):
    res = post(client, body)
    assert res.status_code == 400, res.json
    assert count(EventError) == 1


def test_nul_characters_are_stored_safely(client, site):
    res = post(client, {"site": site.public_id, "name": "a\x00b", "props": {"k\x00": "v\x00"}})
    assert res.status_code == 202
    [event] = stored()
    assert event.name == "a\ufffdb" and event.props == {"k\ufffd": "v\ufffd"}


def test_store_events_batch_without_rejections(app, site):
    from analytics.ingest.writer import event_row, store_events

    rows = [event_row(site_id=site.id, source="api", name=f"n{i}") for i in range(3)]
    assert store_events(rows) == 3


def test_unparsable_body_with_nul_is_recorded(client, site):
    res = post(client, b"\x00garbage\x00")
    assert res.status_code == 400
    [error] = errors()
    assert error.raw_body == "\ufffdgarbage\ufffd" and error.body_size == 9


def test_longest_allowed_urls_fit_their_columns(client, site):
    long = "https://ref.example/" + "p" * 2000
    res = post(client, {"site": site.public_id, "name": "pv", "url": long, "referrer": long})
    assert res.status_code == 202
    [event] = stored()
    assert len(event.referrer) == 1024 and len(event.path) == 1024


BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"site": "SITE", "name": "pv"}, {"User-Agent": BOT}, 202),  # the bug: no header
        ({"site": "SITE", "name": "pv"}, {"DNT": "1"}, 200),
        ({"site": "SITE"}, {}, 400),
        ("not json", {}, 400),
        ([], {}, 202),
        ([{"site": "SITE", "name": "x"}] * 501, {}, 413),
    ],
)
def test_every_answer_to_an_allowed_origin_carries_the_cors_header(
    client, make_site, body, headers, status
):
    site = make_site(origins=["https://shop.example"])
    if not isinstance(body, str):
        body = json.loads(json.dumps(body).replace("SITE", site.public_id))
    res = post(client, body, Origin="https://shop.example", **headers)
    assert res.status_code == status
    assert res.headers.get("Access-Control-Allow-Origin") == "https://shop.example"


def test_a_refused_origin_gets_no_cors_header(client, make_site):
    site = make_site(origins=["https://shop.example"])
    res = post(client, {"site": site.public_id, "name": "pv"}, Origin="https://evil.example")
    assert res.status_code == 403
    assert "Access-Control-Allow-Origin" not in res.headers


def test_a_body_over_the_limit_is_readable_by_the_page(client, site, app):
    app.config["MAX_BODY_BYTES"] = 100
    res = post(client, "x" * 500, Origin="https://shop.example")
    assert res.status_code == 413
    assert res.headers.get("Access-Control-Allow-Origin") == "https://shop.example"
