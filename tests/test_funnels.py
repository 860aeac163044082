"""Funnels: step counts against hand counts (steps out of order, repeated, skipped), under
filters, and the funnel pages and CSVs, on SQLite and PostgreSQL; and one drawn in Chromium."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from analytics import goals
from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.goals import create_funnel, resolve_steps
from analytics.models import Site
from analytics.stats.funnels import funnel
from tests.accounts import PASSWORD, logged_in, make_user
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


def test_funnel_pages_and_csv(client, simulator):
    logged_in(client)
    query = {"site": simulator.public_id, "start": "2026-03-02", "end": "2026-03-08"}
    listing = client.get("/funnels", query_string=query)
    assert listing.status_code == 200 and "Simulator" in listing.text
    found = goals.funnel_named(simulator.id, "Simulator")
    page = client.get(f"/funnels/{found.id}", query_string=query)
    assert page.status_code == 200
    assert 'id="chart-funnel"' in page.text and '"type":"funnel"' in page.text
    res = client.get("/csv/funnel.csv", query_string={**query, "funnel": found.id})
    assert res.status_code == 200
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert [int(r["visits"]) for r in rows] == EXPECTED
    assert [r["label"] for r in rows] == SIMULATOR
    filtered = client.get("/csv/funnel.csv", query_string={**query, "funnel": found.id,
                                                           "country": "!FR"})  # fmt: skip
    assert [int(r["visits"]) for r in csv.DictReader(io.StringIO(filtered.text))] == [
        3, 2, 2, 0, 0,
    ]  # fmt: skip
    assert client.get("/funnels/999999", query_string=query).status_code == 404
    assert client.get("/csv/funnel.csv", query_string=query).status_code == 404


def test_another_sites_funnel_is_not_shown(client, simulator, make_site):
    other = make_site(name="Elsewhere")
    found = goals.funnel_named(simulator.id, "Simulator")
    logged_in(client)
    res = client.get(f"/funnels/{found.id}", query_string={"site": other.public_id})
    assert res.status_code == 404


def test_hostile_funnel_names_are_escaped(client, site, make_site):
    seed_funnel_traffic(site, make_site(name="Other"))
    name = '<img src=x onerror=alert(1)>"'
    create_funnel(site, name, ["path:/<b>", "event:</script><script>alert(2)"])
    found = goals.funnel_named(site.id, name)
    logged_in(client)
    query = {"site": site.public_id}
    for path in ("/funnels", f"/funnels/{found.id}", "/settings"):
        text = client.get(path, query_string=query).text
        assert "<img src=x" not in text and "</script><script>alert(2)" not in text, path


# --- Chromium -------------------------------------------------------------------------------


@pytest.mark.browser
def test_goal_and_funnel_created_in_settings_are_drawn(
    app, live_server, site, make_site, browser
):
    from playwright.sync_api import expect

    seed_funnel_traffic(site, make_site(name="Other"))
    make_user()
    query = f"site={site.public_id}&start=2026-03-02&end=2026-03-08"
    # The session's one Playwright (conftest.browser): a second one in the same process clashes.
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "admin@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/settings")
    form = page.locator(f"form#goal-form-{site.id}")
    form.locator("input[name=name]").fill("Home")
    form.locator("select[name=kind]").select_option("page")
    form.locator("input[name=path]").fill("/")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("Goal 'Home' added")
    form = page.locator(f"form#funnel-form-{site.id}")
    form.locator("input[name=name]").fill("Sim")
    steps = "Home\npath:/simulation\npath:/simulation/resultats"
    form.locator("textarea[name=steps]").fill(steps)
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("Funnel 'Sim' added")

    page.goto(f"{live_server}/overview?{query}")
    row = page.locator("#card-goals tbody tr").first
    expect(row).to_contain_text("Home")
    expect(row).to_contain_text("6")
    page.goto(f"{live_server}/funnels?{query}")
    page.get_by_role("link", name="Sim").click()
    expect(page.locator("#chart-funnel .main-svg").first).to_be_visible()
    drawn = page.locator("#chart-funnel .funnellayer, #chart-funnel g.trace")
    expect(drawn).not_to_have_count(0)
    expect(page.locator("#card-funnel tbody tr")).to_have_count(3)
    assert errors == []
    context.close()


def test_demo_load_gives_the_simulator_funnel(runner):
    result = runner.invoke(args=["demo", "load", "--days", "7", "--events", "6000", "--seed", "2"])
    assert result.exit_code == 0, result.output
    demo = db.session.execute(sa.select(Site).where(Site.public_id == "demo")).scalar_one()
    found = goals.funnel_named(demo.id, "Simulator")
    assert [goals.step_text(s) for s in found.steps] == [
        "Home", "Simulation", "Results", "Benefit details", "Teleservice",
    ]  # fmt: skip
    visits = list(funnel(Period(demo, None, None), resolve_steps(found.steps, demo.id))["visits"])
    assert all(v > 0 for v in visits) and visits == sorted(visits, reverse=True), visits
    again = runner.invoke(args=["demo", "load", "--days", "1", "--events", "10"])
    assert again.exit_code == 0 and len(goals.funnels_of(demo.id)) == 1  # kept, not doubled
