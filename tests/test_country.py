"""Countries: resolved from the client address at ingest, for every source; never the address."""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
import random
from typing import Any

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.ingest.country import _global_text, _reader, lookup
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


def routable(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as Python's `ipaddress` reads and classifies it (the module asked it itself
    until that was found to cost a fifth of a post's instructions for a public IPv4 address):
    None when invalid or not global."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if address.version == 6 and address.scope_id:  # fe80::1%eth0: not one the data can read
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address if address.is_global else None


def by_ipaddress(ip: str) -> str | None:
    """The reference `lookup` is held to: `routable`, then the same country data."""
    address = routable(ip)
    if address is None:
        return None
    code = _reader("geoip2fast-ipv6.dat.gz").lookup(str(address)).country_code
    return code.upper() if len(code) == 2 and code.isalpha() else None


# Every range that is not globally routable, as Python's `ipaddress` lists them, and neighbours.
SPECIAL = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "224.0.0.0/4", "192.88.99.0/24",
    "::/128", "::1/128", "::ffff:0:0/96", "100::/64", "2001::/23", "2001:2::/48",
    "2001:10::/28", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96",
    "2002::/16",
]  # fmt: skip


def test_lookup_answers_as_the_ipaddress_module_reads_addresses():
    """Edges of every special range (first, last and their neighbours), addresses inside them,
    random public ones, IPv4 mapped into IPv6, and strings that are not addresses."""
    rnd = random.Random(9)
    cases = [
        "010.1.1.1", "1.2.3", "1", "134744072", "0x08.8.8.8", "8.8.8.08", "1.2.3.4\x00",
        "::FFFF:81.2.69.160", "::ffff:5145:45a0", "::ffff:10.0.0.1", "::ffff:100.64.0.1",
        "::81.2.69.160", "64:ff9b::81.2.69.160", "fe80::1%eth0", "2a01:e0a::1%eth0", "[::1]",
        "81.2.69.160:80", "\t81.2.69.160\n", "a.b.c.d", ":", "::::",
    ]  # fmt: skip
    for text in SPECIAL:
        network = ipaddress.ip_network(text)
        kind = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
        first, last = int(network.network_address), int(network.broadcast_address)
        for number in (first - 1, first, first + 1, last - 1, last, last + 1):
            if 0 <= number < 2**network.max_prefixlen:
                cases.append(str(kind(number)))
        cases += [str(kind(rnd.randint(first, last))) for _ in range(20)]
    cases += [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(3000)]
    cases += [str(ipaddress.IPv6Address(0x2 << 125 | rnd.getrandbits(125))) for _ in range(1000)]
    # the classification itself (the country data marks most special ranges too, and would
    # hide a range missing from the module's list), then the answer
    classed = [(ip, (_global_text(ip.strip()) is None), routable(ip) is None) for ip in cases]
    assert [c for c in classed if c[1] != c[2]] == []
    differ = [(ip, lookup(ip), by_ipaddress(ip)) for ip in cases if lookup(ip) != by_ipaddress(ip)]
    assert differ == []
    assert sum(lookup(ip) is not None for ip in cases) > 1000  # most public ones have a country


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
