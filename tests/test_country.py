"""Countries: resolved from the client address at ingest, for every source; never the address."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.ingest.country import lookup
from analytics.models import Category, Event
from tests.accounts import logged_in

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
# Addresses whose country is stable in the bundled data (checked against it): a MaxMind test
# network in the United Kingdom, RENATER (the French research network) and Free's IPv6 block.
GB_V4, FR_V4, FR_V6 = "81.2.69.160", "193.51.24.1", "2a01:e0a::1"


@pytest.mark.parametrize(
    "ip, country",
    [
        (GB_V4, "GB"),
        (FR_V4, "FR"),
        (FR_V6, "FR"),
        ("2001:4860:4860::8888", "US"),  # IPv6 again, another country
        ("::ffff:81.2.69.160", "GB"),  # IPv4 as a dual-stack server reports it
        (" 81.2.69.160 ", "GB"),
    ],
)
def test_a_public_address_gives_its_country(ip, country):
    assert lookup(ip) == country


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",  # private ranges
        "172.16.0.9",
        "192.168.1.1",
        "127.0.0.1",  # loopback
        "::1",
        "fe80::1",  # link-local
        "fd00::1",  # unique local
        "2001:db8::1",  # documentation
        "100.64.0.1",  # carrier-grade NAT
        "not an address",
        "",
        "1.2.3.4.5",
    ],
)
def test_a_private_or_invalid_address_gives_none(ip):
    assert lookup(ip) is None


def countries(source: str) -> list[str | None]:
    return list(
        db.session.execute(sa.select(Event.country).where(Event.source == source)).scalars()
    )


def post_from(client, address: str, body: Any, forwarded: str | None = None):
    """POST /api/events from `address` (a proxy's, when `forwarded` names the client's)."""
    headers = {"User-Agent": CHROME} | ({"X-Forwarded-For": forwarded} if forwarded else {})
    return client.post(
        "/api/events", data=json.dumps(body), headers=headers, environ_base={"REMOTE_ADDR": address}
    )


def pageview(site) -> dict[str, str]:
    return {"site": site.public_id, "name": "pageview", "path": "/"}


def test_native_events_get_the_country_of_the_address(client, site):
    body = [
        {"site": site.public_id, "name": "pageview", "path": "/", "eid": f"e{n}"} for n in range(3)
    ]
    res = post_from(client, FR_V6, body)
    assert res.status_code == 202, res.json
    assert countries("api") == ["FR"] * 3
    res = post_from(client, "192.168.0.10", pageview(site))
    assert res.status_code == 202
    assert sorted(countries("api"), key=lambda c: c or "") == [None, "FR", "FR", "FR"]


@pytest.mark.parametrize("app_config", [{"PROXY_COUNT": 1}])
def test_behind_a_proxy_the_forwarded_address_counts(client, site):
    res = post_from(client, "127.0.0.1", pageview(site), forwarded=GB_V4)
    assert res.status_code == 202
    assert countries("api") == ["GB"]


@pytest.mark.parametrize("app_config", [{"COUNTRY_LOOKUP": False}])
def test_the_lookup_can_be_switched_off(client, site):
    res = post_from(client, GB_V4, pageview(site))
    assert res.status_code == 202
    assert countries("api") == [None]


def test_legacy_endpoints_get_a_country_too(app, client):
    db.session.add(Category(name="page interaction"))
    db.session.commit()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    posts = {
        "benefits": (
            "/benefits",
            {"benefit_id": "RSA", "hash_id": "h1", "benefit_index": 1, "page_total": 3,
             "event_type": "show"},
        ),
        "collector": (
            "/collector",
            {"session_id": "s1", "category": "page interaction", "name": "pageview",
             "data": {"path": "/"}, "timestamp": now.isoformat(sep=" ")},
        ),
        "track": (
            "/track",
            {"_v": 1, "timestamp": now.isoformat() + "Z", "order": 0,
             "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423", "page": "/",
             "action": "load", "client_context": {}, "server_context": {}},
        ),
    }  # fmt: skip
    for source, (path, body) in posts.items():
        res = client.post(
            path,
            data=json.dumps(body),
            content_type="application/json",
            headers={"User-Agent": CHROME},
            environ_base={"REMOTE_ADDR": FR_V4},
        )
        assert res.status_code == 200, (source, res.json)
        assert countries(source) == ["FR"], source


def test_no_column_holds_the_address(client, site):
    """The address gives a country and a hashed visitor id; it is stored nowhere."""
    post_from(client, GB_V4, pageview(site))
    row = db.session.execute(sa.select(Event.__table__)).mappings().one()
    assert row["country"] == "GB"
    assert not any(GB_V4 in str(value) for value in row.values())


def test_the_country_shows_in_the_explorer_and_the_raw_export(client, site):
    post_from(client, GB_V4, pageview(site))
    client = logged_in(client)
    rows = list(csv.DictReader(io.StringIO(
        client.get("/export/events.csv", query_string={"site": site.public_id, "period": "all"})
        .get_data(as_text=True)
    )))  # fmt: skip
    assert [row["country"] for row in rows] == ["GB"]
    page = client.get("/events", query_string={"site": site.public_id, "period": "all"})
    assert "GB" in page.get_data(as_text=True)
