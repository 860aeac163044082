"""Funnels: step counts against hand counts (steps out of order, repeated, skipped) and under
filters, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from analytics import goals
from analytics.filters import parse_filters
from analytics.goals import create_funnel, resolve_steps
from analytics.stats.funnels import funnel
from tests.test_goals import define_goals, seed_funnel_traffic
from tests.test_stats import Period

SIMULATOR = ["Home", "Simulation", "Results", "Details", "Teleservice"]
# By hand from seed_funnel_traffic's docstring:
#   Home: a b c d g h; Simulation after it: a b c d g (c's first /simulation came before home);
#   Results after that: a b c g (d skipped it; g's first results page came before /simulation);
#   Details after that: a g (b skipped it, d's came without results, e never started);
#   Teleservice after that: a g (b's came without details).
EXPECTED = [6, 5, 4, 2, 2]


@pytest.fixture
def simulator(site, make_site):
    define_goals(site)
    seed_funnel_traffic(site, make_site(name="Other"))
    create_funnel(site, "Simulator", SIMULATOR)
    return site


def steps(site, names=SIMULATOR):
    return resolve_steps([{"goal": n} for n in names], site.id)


def _filtered(site, **args):
    query = {"site": site.public_id, "start": "2026-03-02", "end": "2026-03-08", **args}
    return parse_filters(query, [site])


def test_funnel_equals_hand_counts(simulator):
    df = funnel(Period(simulator), steps(simulator))
    assert list(df.columns) == [
        "step", "label", "visits", "from_previous_pct", "from_first_pct", "dropoff",
    ]  # fmt: skip
    assert list(df["step"]) == [1, 2, 3, 4, 5]
    assert list(df["label"]) == SIMULATOR
    assert list(df["visits"]) == EXPECTED
    assert list(df["from_previous_pct"]) == [100.0, 83.3, 80.0, 50.0, 100.0]
    assert list(df["from_first_pct"]) == [100.0, 83.3, 66.7, 33.3, 33.3]
    assert list(df["dropoff"]) == [0, 1, 1, 2, 0]


def test_inline_steps_and_one_event_makes_one_step(simulator, site):
    parsed = [goals.parse_step(t, site.id) for t in ("path:/", "path:/", "path:/simulation")]
    assert parsed == [{"path": "/"}, {"path": "/"}, {"path": "/simulation"}]
    # Two steps on the home page need two home page views: only d viewed it twice (3 times).
    df = funnel(Period(site), resolve_steps(parsed, site.id))
    assert list(df["visits"]) == [6, 1, 1]
    events = resolve_steps([{"event": "teleservice"}, {"path": "/aides/*"}], site.id)
    assert list(funnel(Period(site), events)["visits"]) == [5, 0]  # never a page after it


def test_funnel_under_filters(simulator):
    count = lambda **args: list(  # noqa: E731
        funnel(_filtered(simulator, **args), steps(simulator))["visits"]
    )
    assert count() == EXPECTED
    assert count(country="FR") == [3, 3, 2, 2, 2]  # a d g (e never starts)
    assert count(country="!FR") == [3, 2, 2, 0, 0]  # b c h
    assert count(goal="Details") == [3, 3, 2, 2, 2]  # a d g
    assert count(goal="!Details") == [3, 2, 2, 0, 0]  # b c h
    # An event-level filter keeps events: without the results pages, nobody gets past step 2.
    assert count(path="!/simulation/resultats") == [6, 5, 0, 0, 0]
    # A period that misses the first days: a b c are gone.
    later = parse_filters(
        {"site": simulator.public_id, "start": "2026-03-04", "end": "2026-03-08"}, [simulator]
    )
    assert list(funnel(later, steps(simulator))["visits"]) == [3, 2, 1, 1, 1]  # d g h


def test_an_empty_period_gives_zeros(simulator):
    empty = parse_filters(
        {"site": simulator.public_id, "start": "2025-01-01", "end": "2025-01-02"}, [simulator]
    )
    df = funnel(empty, steps(simulator))
    assert list(df["visits"]) == [0] * 5 and df["from_first_pct"].isna().all()
