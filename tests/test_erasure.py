"""The right to erasure: `flask forget ID` leaves nothing with that id in any table, and the
dashboards equal a recount of what remains."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import Category, Event, EventError, Site, utcnow
from analytics.rollups import refresh as rollups
from analytics.stats.base import reference

from .conftest import every_cell
from .test_rollups import OVERVIEW, Period

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
TAB = "tab8k2j3h4x"  # a tracker session id, as sessionStorage holds it
HASH = "8e7b1c9a0f3d2e11"  # a benefits-recorder hash_id
COLLECTOR = "e2085be5-9137-4e4e-80b5-f1ffddc25423"
TRACK = "0b4e5e04-63c3-4bd6-9b55-46f0c41a3f5e"
PEOPLE = (TAB, HASH, COLLECTOR, TRACK)


def post(client, path: str, body: Any, content_type: str = "application/json") -> int:
    return client.post(
        path, data=json.dumps(body), content_type=content_type, headers={"User-Agent": CHROME}
    ).status_code


@pytest.fixture
def traffic(app, client, make_site) -> Site:
    """The four kinds of person, someone else on each endpoint, and rejected payloads."""
    site = make_site(public_id="shop")
    for name in ("page interaction",):
        db.session.add(Category(name=name))
    db.session.commit()
    now = utcnow()
    for person in (TAB, "someone-else-1"):
        batch = [
            {"site": "shop", "name": "pageview", "url": f"https://shop.example/{n}",
             "session": person, "eid": f"{person}.{n}",
             "ts": (now - dt.timedelta(days=n, minutes=5)).isoformat() + "Z"}  # fmt: skip
            for n in range(3)
        ]
        assert post(client, "/api/events", batch, "text/plain") == 202
    # Rejected, with the id inside: a payload that names the person must go too.
    assert post(client, "/api/events", {"site": "shop", "session": TAB}, "text/plain") == 400
    assert post(client, "/api/events", {"site": "shop", "session": "someone-else-1"}) == 400
    for hash_id in (HASH, "other-hash-22"):
        record = {"benefit_id": "rsa", "hash_id": hash_id, "benefit_index": 2,
                  "page_total": 9, "event_type": "show"}  # fmt: skip
        assert post(client, "/benefits", record) == 200
    assert post(client, "/benefits", {"hash_id": HASH, "benefit_index": "x"}) == 422
    for session in (COLLECTOR, "5c0d2b8e-0000-4000-8000-000000000001"):
        when = (now - dt.timedelta(hours=2)).isoformat()
        event = {"session_id": session, "category": "page interaction", "name": "pageview",
                 "data": {"path": "/"}, "timestamp": when}  # fmt: skip
        assert post(client, "/collector", event) == 200
    for session in (TRACK, "7f1e0c2a-1111-4111-8111-111111111111"):
        event = {"_v": 1, "timestamp": (now - dt.timedelta(hours=1)).isoformat() + "Z",
                 "order": 0, "session_id": session, "page": "/index.html", "action": "load",
                 "meta": "{}", "client_context": {}, "server_context": {}}  # fmt: skip
        assert post(client, "/track", event) == 200
    rollups.refresh(max_rounds=50)
    return site


def holding(person: str) -> list[tuple[str, str]]:
    return sorted({(t, c) for t, c, text in every_cell() if person in text})


def test_forget_leaves_nothing_of_the_person_anywhere(traffic: Site, runner) -> None:
    for person in PEOPLE:
        assert holding(person), f"{person} is stored before (else the test proves nothing)"
    others_before = len(holding("someone-else-1"))

    for person in PEOPLE:
        result = runner.invoke(args=["forget", person])
        assert result.exit_code == 0, result.output
        assert "removed " in result.output and "days touched (recounted)" in result.output
        assert holding(person) == [], f"{person} is still stored"

    assert len(holding("someone-else-1")) == others_before, "nobody else was touched"
    kept = db.session.execute(sa.select(Event.visitor_id)).scalars().all()
    assert "other-hash-22" in kept

    # The dashboards read from the rollups equal a recount from the remaining events.
    db.session.expire_all()
    now = dt.datetime.combine(utcnow().date(), dt.time()) + dt.timedelta(days=1)
    period = Period(traffic, now - dt.timedelta(days=7), now, "day")
    for name, fn in OVERVIEW.items():
        fast = fn(period).reset_index(drop=True)
        with reference():
            raw = fn(period).reset_index(drop=True)
        pd.testing.assert_frame_equal(fast, raw, check_dtype=False, obj=name)


def test_forget_prints_what_it_removed_and_refuses_a_short_id(traffic: Site, runner) -> None:
    result = runner.invoke(args=["forget", TAB, "--site", "shop"])
    assert "removed 3 events" in result.output
    assert "1 rejected payloads" in result.output
    assert runner.invoke(args=["forget", TAB]).output.startswith("removed 0 events")
    assert runner.invoke(args=["forget", "abc"]).exit_code != 0, "too short: would match anything"
    assert runner.invoke(args=["forget", HASH, "--site", "nope"]).exit_code != 0
    assert db.session.execute(sa.select(sa.func.count()).select_from(EventError)).scalar() >= 2
