"""No IP address and no full user-agent string anywhere: traffic from known addresses and agents
reaches every ingest endpoint (accepted and refused), then every column of every table is read."""

from __future__ import annotations

import json
import os
import re
import tempfile

import pytest
import requests

from analytics.extensions import db
from analytics.models import Category
from bench.serving import serve, stop

from .conftest import every_cell

ADDRESSES = ("203.0.113.77", "198.51.100.23", "2001:db8:85a3::8a2e:370:7334", "192.0.2.146")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.91 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
)
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


@pytest.fixture
def app_config(database_url: str) -> dict:
    return {"PROXY_COUNT": 1}  # the address comes from X-Forwarded-For, as behind nginx


def send_everything(client, site) -> int:
    """Accepted and refused posts to every ingest endpoint, from each address and agent."""
    db.session.add(Category(name="page interaction"))
    db.session.commit()
    sent = 0
    for n, (address, agent) in enumerate(zip(ADDRESSES, AGENTS * 2, strict=False)):
        headers = {"User-Agent": agent, "X-Forwarded-For": address}
        bodies = [
            ("/api/events", {"site": site.public_id, "name": "pageview",
                             "url": "https://a.example/p?email=x@y.z", "session": f"s{n}"}),
            ("/api/events", {"site": site.public_id}),  # refused: no name
            ("/api/events", "not json"),
            ("/benefits", {"benefit_id": "rsa", "hash_id": f"h{n}xxxxxx", "benefit_index": 1,
                           "page_total": 3, "event_type": "show"}),
            ("/benefits", {"hash_id": "h"}),
            ("/collector", {"session_id": f"c{n}", "category": "page interaction",
                            "name": "pageview", "data": {"path": "/"},
                            "timestamp": "2026-11-30 10:00:00"}),
            ("/collector", {"session_id": f"c{n}"}),
            ("/track", {"_v": 1, "timestamp": "2026-11-30T10:00:00Z", "order": 0,
                        "session_id": f"5c0d2b8e-0000-4000-8000-00000000000{n}",
                        "page": "/", "action": "load", "meta": "{}",
                        "client_context": {}, "server_context": {}}),
            ("/track", {"_v": 1}),
        ]  # fmt: skip
        for path, body in bodies:
            data = body if isinstance(body, str) else json.dumps(body)
            client.post(path, data=data, headers=headers, content_type="application/json")
            sent += 1
        client.post("/login", data={"email": "nobody@example.org", "password": "x" * 12},
                    headers=headers)  # fmt: skip
    return sent


def test_no_address_and_no_user_agent_is_stored_anywhere(client, site) -> None:
    send_everything(client, site)
    cells = every_cell()
    tables = {table for table, _, _ in cells}
    assert {"events", "event_errors"} <= tables, "the traffic was stored (else this proves nothing)"
    found = [
        (table, column)
        for table, column, text in cells
        for secret in (*ADDRESSES, *AGENTS)
        if secret in text or secret.replace("/", "\\/") in text
    ]
    assert found == [], f"an address or a user agent is stored in {sorted(set(found))}"
    dotted = [(t, c, m) for t, c, text in cells for m in IPV4.findall(text)]
    assert dotted == [], f"something shaped like an IPv4 address is stored: {dotted}"


def test_the_access_log_leaves_the_address_out(database_url: str, site) -> None:
    """gunicorn as `make run` runs it (gunicorn.conf.py, an access log on)."""
    with tempfile.TemporaryDirectory() as directory:
        log = os.path.join(directory, "access.log")
        env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "t",
               "ROLLUP_PROCESS": "0", "PROXY_COUNT": "1"}  # fmt: skip
        proc, base = serve("wsgi:app", env, extra=("--access-logfile", log))
        try:
            answer = requests.post(
                base + "/api/events",
                data=json.dumps({"site": site.public_id, "name": "pageview"}),
                headers={"User-Agent": AGENTS[0], "X-Forwarded-For": ADDRESSES[0],
                         "Referer": "https://a.example/private?token=1"},  # fmt: skip
                timeout=10,
            )
            assert answer.status_code == 202
        finally:
            stop(proc)
        with open(log) as f:
            written = f.read()
    assert "POST /api/events" in written, "the request was logged"
    for secret in (ADDRESSES[0], "127.0.0.1", AGENTS[0], "token=1"):
        assert secret not in written, f"{secret!r} in the access log: {written!r}"
