"""Many app nodes over one database: nothing two nodes must agree on lives in a process.

Two gunicorn instances on different ports share one PostgreSQL database. Visitors post to both
(the same visitor to both, and some events to both), then every Overview table is read from
each: they are identical, each visitor is one visitor on both (the day's salt is in the
database), and every event is stored once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from analytics.models import Event
from analytics.rollups import refresh as rollups
from bench.serving import serve, stop

from .accounts import PASSWORD, make_user
from .conftest import DESKTOP_CHROME

OVERVIEW_TABLES = ("summary", "timeseries", "pages", "entry_pages", "referrers", "browsers",
                   "devices", "countries")  # fmt: skip


@pytest.fixture
def nodes(database_url: str, make_site) -> Iterator[tuple[list[str], str]]:
    site = make_site()
    make_user()
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "shared-by-the-nodes",
           "ROLLUP_PROCESS": "0", "PROXY_COUNT": "1"}  # fmt: skip
    started = []
    try:
        for _ in range(2):
            started.append(serve("bench.served_app:app", env, workers=1))
        yield [base for _, base in started], site.public_id
    finally:
        for proc, _ in started:
            stop(proc)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_nodes_store_once_and_show_the_same_dashboards(nodes, app) -> None:
    bases, public_id = nodes
    sent: set[str] = set()
    for visitor in range(6):
        headers = {"User-Agent": DESKTOP_CHROME, "X-Forwarded-For": f"203.0.113.{10 + visitor}"}
        for n in range(4):
            made = int(time.time() * 1000) - 60_000 + visitor * 1000 + n  # a resend repeats it
            event = {"site": public_id, "name": "pageview", "eid": f"v{visitor}-{n}", "ts": made,
                     "url": f"https://shop.example/p{n % 3}", "session": f"tab{visitor}",
                     "referrer": "https://search.example/" if n == 0 else ""}  # fmt: skip
            sent.add(event["eid"])
            node = bases[(visitor + n) % 2]  # one visitor's events reach both nodes
            answer = requests.post(node + "/api/events", data=json.dumps(event), headers=headers)
            assert answer.status_code == 202
            if n == 3:  # the same event again, to the other node: stored once
                other = bases[(visitor + n + 1) % 2]
                again = requests.post(other + "/api/events", data=json.dumps(event),
                                      headers=headers)  # fmt: skip
                assert again.json().get("duplicates") == 1

    with app.app_context():
        rollups.refresh(max_rounds=10)
        engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.connect() as conn:
            keys = conn.execute(sa.select(Event.dedupe_key)).scalars().all()
            visitors = conn.execute(sa.select(sa.func.count(Event.visitor_id.distinct()))).scalar()
        engine.dispose()
    assert sorted(keys) == sorted(sent), "every event once, none lost"
    assert visitors == 6, "a visitor is the same visitor on both nodes (the salt is shared)"

    tables = []
    for base in bases:
        session = requests.Session()
        login = session.post(base + "/login", data={"email": "admin@example.org",
                                                    "password": PASSWORD})  # fmt: skip
        assert login.status_code == 200 or login.history, login.status_code
        tables.append({
            name: session.get(f"{base}/csv/{name}.csv",
                              params={"site": public_id, "period": "today"}).text
            for name in OVERVIEW_TABLES
        })  # fmt: skip
    assert tables[0] == tables[1], "the two nodes show the same numbers"
    assert "6" in tables[0]["summary"].splitlines()[1], tables[0]["summary"]
