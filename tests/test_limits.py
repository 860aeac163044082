"""Limits that hold across nodes: the per-client ingest limit and the login throttle live in the
database, so two app instances over one database enforce one limit."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator

import pytest
import requests

from analytics.models import Event, EventError, RateCount
from bench.serving import serve, stop

from .accounts import PASSWORD, make_user
from .conftest import DESKTOP_CHROME, count


def fresh_minute() -> None:
    """Counts are per clock minute: start a test far from the next one, so it cannot reset
    the count in the middle."""
    second = dt.datetime.now(dt.UTC).second
    if second > 45:
        time.sleep(61 - second)


@pytest.fixture
def app_config(database_url: str) -> dict:
    return {"INGEST_RATE_LIMIT": 10, "PROXY_COUNT": 1}


def post(client, site, n: int, address: str = "203.0.113.5"):
    batch = [
        {"site": site.public_id, "name": "pageview", "eid": f"{address}-{i}"} for i in range(n)
    ]
    return client.post(
        "/api/events",
        data=json.dumps(batch),
        content_type="text/plain",
        headers={
            "User-Agent": DESKTOP_CHROME,
            "X-Forwarded-For": address,
            "Origin": "https://shop.example",
        },
    )


def test_a_client_over_the_limit_gets_429_and_nothing_is_stored(client, make_site) -> None:
    site, other_site = make_site(), make_site()
    fresh_minute()
    assert post(client, site, 6).status_code == 202
    over = post(client, site, 6)
    assert over.status_code == 429
    assert 0 < int(over.headers["Retry-After"]) <= 60
    assert over.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert over.headers["Access-Control-Expose-Headers"] == "Retry-After"
    assert "rate limit" in over.json["error"]
    assert count(Event) == 6, "nothing of the refused request was stored"
    assert post(client, site, 1).status_code == 429
    assert count(EventError) == 1, "the first refusal of the minute is recorded, not each"
    assert post(client, site, 3, address="198.51.100.9").status_code == 202, "another client"
    assert post(client, other_site, 3).status_code == 202, "another site"


def test_the_limit_is_off_by_default(app, client, site) -> None:
    app.config["INGEST_RATE_LIMIT"] = 0
    for _ in range(5):
        assert post(client, site, 50).status_code == 202
    assert count(RateCount) == 0, "no count is even kept"


@pytest.fixture
def two_nodes(database_url: str, make_site) -> Iterator[tuple[str, str, str]]:
    """Two gunicorn instances over the same database: (base A, base B, site public id)."""
    url = database_url
    site = make_site()
    make_user()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "t", "ROLLUP_PROCESS": "0",
           "PROXY_COUNT": "1", "INGEST_RATE_LIMIT": "20", "LOGIN_MAX_FAILURES": "10"}  # fmt: skip
    first, a = serve("bench.served_app:app", env, workers=1)  # CSRF off: logins by POST
    try:
        second, b = serve("bench.served_app:app", env, workers=1)
        try:
            yield a, b, site.public_id
        finally:
            stop(second)
    finally:
        stop(first)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_nodes_share_one_ingest_limit_and_one_login_throttle(two_nodes) -> None:
    a, b, public_id = two_nodes
    headers = {"User-Agent": DESKTOP_CHROME, "X-Forwarded-For": "203.0.113.5"}

    def send(base: str, n: int, tag: str) -> int:
        batch = [{"site": public_id, "name": "pv", "eid": f"{tag}{i}"} for i in range(n)]
        answer = requests.post(base + "/api/events", data=json.dumps(batch), headers=headers)
        return answer.status_code

    fresh_minute()
    assert send(a, 15, "a") == 202
    assert send(b, 10, "b") == 429, "15 on one node + 10 on the other is over 20"
    assert send(a, 1, "c") == 429, "refused attempts count too: the client waits for Retry-After"

    def login(base: str, password: str) -> int:
        return requests.post(
            base + "/login",
            data={"email": "admin@example.org", "password": password},
            allow_redirects=False,
        ).status_code

    for _ in range(6):
        assert login(a, "wrong-password") == 401
    for _ in range(4):
        assert login(b, "wrong-password") == 401
    assert login(a, PASSWORD) == 429, "10 failures across two nodes lock the account"
    assert login(b, PASSWORD) == 429
