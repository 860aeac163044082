"""Password guessing is capped per account; a good password does not get past the cap."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics import throttle
from analytics.throttle import LoginThrottle
from tests.accounts import PASSWORD, make_user

T0 = dt.datetime(2026, 5, 1, 12, 0, 30)


def test_throttle_opens_again_after_the_window(app):
    throttle = LoginThrottle(limit=3, window=60)
    for _ in range(3):
        assert throttle.wait("a", T0) == 0
        throttle.failed("a", T0)
    assert 60 <= throttle.wait("a", T0) <= 120
    assert throttle.wait("b", T0) == 0  # other accounts are not affected
    assert throttle.wait("a", T0 + dt.timedelta(seconds=121)) == 0


def test_success_clears_the_count(app):
    throttle = LoginThrottle(limit=2, window=60)
    throttle.failed("a", T0)
    throttle.succeeded("a")
    throttle.failed("a", T0)
    assert throttle.wait("a", T0) == 0


def test_counts_add_up_per_minute_and_old_ones_are_pruned(app):
    assert throttle.add("ingest", "1:v", 5, T0) == 5
    assert throttle.add("ingest", "1:v", 2, T0 + dt.timedelta(seconds=20)) == 7
    assert throttle.add("ingest", "1:v", 1, T0 + dt.timedelta(seconds=40)) == 1  # next minute
    assert throttle.prune(T0 + dt.timedelta(hours=2)) == 2


@pytest.fixture
def app_config():
    return {"LOGIN_MAX_FAILURES": 3}


def test_login_answers_429_after_too_many_failures(client):
    make_user()
    for _ in range(3):
        wrong = client.post("/login", data={"email": "admin@example.org", "password": "nope-nope"})
        assert wrong.status_code == 401
    blocked = client.post("/login", data={"email": "Admin@Example.org", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed logins" in blocked.get_data(as_text=True)
    assert blocked.mimetype == "text/html" and "Content-Security-Policy" in blocked.headers
