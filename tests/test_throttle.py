"""Password guessing is capped per account; a good password does not get past the cap."""

from __future__ import annotations

import pytest

from analytics.throttle import LoginThrottle
from tests.accounts import PASSWORD, make_user


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_opens_again_after_the_window():
    clock = Clock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.wait("a") == 0
        throttle.failed("a")
    assert throttle.wait("a") == pytest.approx(60)
    assert throttle.wait("b") == 0  # other accounts are not affected
    clock.now += 61
    assert throttle.wait("a") == 0


def test_success_clears_the_count():
    throttle = LoginThrottle(limit=2, window=60)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.wait("a") == 0


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
