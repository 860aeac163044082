"""The refresher-cost benchmark (bench/refresh_cost.py) measures what it says: a first round
that builds the day, then rounds that count the added rows, each charged its own CPU and its
database backend's, beside the database's cost of storing the same events."""

from __future__ import annotations

import os
import uuid

import pytest

from analytics.rollups import delta
from bench import refresh_cost


def test_each_round_counts_its_added_events_and_is_charged_for_them(monkeypatch):
    admin = os.environ.get("TEST_POSTGRES_URL")
    if not admin:
        pytest.skip("needs TEST_POSTGRES_URL (a server on this machine)")
    monkeypatch.setenv("BENCH_DATABASE_URL", admin)
    monkeypatch.setattr(refresh_cost, "DATABASE", f"analytics_bench_refresh_{uuid.uuid4().hex[:6]}")
    # The rounds after the first must be what the suite calls them: recounts of the added rows.
    partial = []
    real = delta.recount_added
    monkeypatch.setattr(delta, "recount_added", lambda *a: partial.append(a[2]) or real(*a))
    # Enough events that each CPU figure spans many of /proc's 10 ms ticks.
    rounds = refresh_cost.measure(per_round=3000, rounds=1)
    assert [(r.whole, r.added, r.day) for r in rounds] == [(True, 3000, 3000), (False, 3000, 6000)]
    assert partial == [3000]
    for found in rounds:
        assert found.wall > 0 and found.python_us > 0 and found.store_us > 0
        assert found.database_us > 0  # its backend's CPU, read from /proc
