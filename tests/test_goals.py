"""Goals: definitions, the Goals card's numbers and the `goal=` filter against hand counts, the
CLI and the Settings forms, on SQLite and PostgreSQL.

The fixed data set (`seed_funnel_traffic`, also read by tests/test_funnels.py) is a week of
visits to a benefits simulator, each written out below with what it does.
"""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
import sqlalchemy as sa

from analytics import goals
from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.goals import create_funnel, create_goal
from analytics.ingest.writer import store_events
from analytics.models import AuditEntry, Funnel, Goal
from analytics.sites import InvalidInput
from analytics.stats.goals import goal_conversions
from tests.accounts import logged_in
from tests.test_stats import CHROME, END, FIREFOX, SAFARI, Period, at, ev, pv

HOME, SIM, RESULTS = "/", "/simulation", "/simulation/resultats"


def tele(site, when, session, visitor, item, **fields) -> dict:
    """A click on a benefit's online service (the tracker's `teleservice` event)."""
    return ev(site, when, "teleservice", session_id=session, visitor_id=visitor, item_id=item,
              **fields)  # fmt: skip


def seed_funnel_traffic(site, other) -> None:
    """Eight visits in the week of 2 March 2026, and events that must not count.

    a (FR): / -> /simulation -> /simulation/resultats -> /aides/rsa -> teleservice rsa; signup pro
    b (BE): / -> /simulation -> /simulation/resultats -> teleservice apl (skips the details);
            signup free
    c (BE): /simulation -> / -> /simulation -> /simulation/resultats (simulation before home)
    d (FR): / -> / -> / -> /simulation -> /simulation -> /aides/apl (repeats; skips results)
    e (FR): /aides/rsa -> teleservice rsa (never home)
    g (FR): / -> /simulation/resultats -> /simulation -> /simulation/resultats -> /aides/css
            -> teleservice css (results before simulation, then again after it)
    h (BE): / only
    r1: a teleservice rsa record of the benefits recorder: no session, its own visit, no country
    """
    rows = [
        pv(site, at(2, 10), HOME, "a", "va", **CHROME),
        pv(site, at(2, 10, 1), SIM, "a", "va", **CHROME),
        pv(site, at(2, 10, 3), RESULTS, "a", "va", **CHROME),
        pv(site, at(2, 10, 4), "/aides/rsa", "a", "va", **CHROME),
        tele(site, at(2, 10, 5), "a", "va", "rsa", path="/aides/rsa", **CHROME),
        ev(site, at(2, 10, 6), "signup", session_id="a", visitor_id="va",
           props={"plan": "pro", "n": 2}, **CHROME),  # fmt: skip
        pv(site, at(3, 9), HOME, "b", "vb", **FIREFOX),
        pv(site, at(3, 9, 1), SIM, "b", "vb", **FIREFOX),
        pv(site, at(3, 9, 2), RESULTS, "b", "vb", **FIREFOX),
        tele(site, at(3, 9, 3), "b", "vb", "apl", path=RESULTS, **FIREFOX),
        ev(site, at(3, 9, 4), "signup", session_id="b", visitor_id="vb",
           props={"plan": "free"}, **FIREFOX),  # fmt: skip
        pv(site, at(3, 11), SIM, "c", "vc", **FIREFOX),
        pv(site, at(3, 11, 1), HOME, "c", "vc", **FIREFOX),
        pv(site, at(3, 11, 2), SIM, "c", "vc", **FIREFOX),
        pv(site, at(3, 11, 3), RESULTS, "c", "vc", **FIREFOX),
        pv(site, at(4, 8), HOME, "d", "vd", **CHROME),
        pv(site, at(4, 8, 1), HOME, "d", "vd", **CHROME),
        pv(site, at(4, 8, 2), HOME, "d", "vd", **CHROME),
        pv(site, at(4, 8, 3), SIM, "d", "vd", **CHROME),
        pv(site, at(4, 8, 4), SIM, "d", "vd", **CHROME),
        pv(site, at(4, 8, 5), "/aides/apl", "d", "vd", **CHROME),
        pv(site, at(5, 14), "/aides/rsa", "e", "ve", **SAFARI),
        tele(site, at(5, 14, 1), "e", "ve", "rsa", path="/aides/rsa", **SAFARI),
        pv(site, at(6, 16), HOME, "g", "vg", **SAFARI),
        pv(site, at(6, 16, 1), RESULTS, "g", "vg", **SAFARI),
        pv(site, at(6, 16, 2), SIM, "g", "vg", **SAFARI),
        pv(site, at(6, 16, 3), RESULTS, "g", "vg", **SAFARI),
        pv(site, at(6, 16, 4), "/aides/css", "g", "vg", **SAFARI),
        tele(site, at(6, 16, 5), "g", "vg", "css", path="/aides/css", **SAFARI),
        pv(site, at(7, 20), HOME, "h", "vh", **FIREFOX),
        ev(site, at(7, 21), "teleservice", source="benefits", visitor_id="r1", item_id="rsa"),
        # Never counted: before the period, at its (exclusive) end, another site.
        pv(site, at(1, 23, 59), HOME, "p", "vp", **CHROME),
        pv(site, END, HOME, "late", "vl", **CHROME),
        pv(other, at(3, 9), HOME, "o", "vo", **CHROME),
        tele(other, at(3, 9, 1), "o", "vo", "rsa", **CHROME),
    ]
    store_events(rows, [])


def define_goals(site) -> None:
    create_goal(site, "Home", "page", path=HOME)
    create_goal(site, "Simulation", "page", path=SIM)
    create_goal(site, "Results", "page", path=RESULTS)
    create_goal(site, "Details", "page", path="/aides/*")
    create_goal(site, "Teleservice", "benefit", event_name="teleservice", item_id="*")
    create_goal(site, "Teleservice RSA", "benefit", event_name="teleservice", item_id="rsa")
    create_goal(site, "Pro signup", "event", event_name="signup", props={"plan": "pro"})


@pytest.fixture
def simulator(site, make_site):
    """The site with its goals and the seeded week (`Period` over it)."""
    define_goals(site)
    seed_funnel_traffic(site, make_site(name="Other"))
    return site


ALL_VISITS = 8  # a b c d e g h r1
# goal -> (visits, events), by hand from seed_funnel_traffic's docstring
EXPECTED = {
    "Home": (6, 8),  # a b c d(3) g h
    "Simulation": (5, 7),  # a b c(2) d(2) g
    "Results": (4, 5),  # a b c g(2)
    "Details": (4, 4),  # a d e g
    "Teleservice": (5, 5),  # a b e g r1
    "Teleservice RSA": (3, 3),  # a e r1
    "Pro signup": (1, 1),  # a
}


def _table(df) -> dict:
    return {r.goal: (r.visits, r.events, r.conversion_rate) for r in df.itertuples()}


def test_goal_conversions_equal_hand_counts(simulator):
    df = goal_conversions(Period(simulator))
    assert list(df.columns) == ["goal", "visits", "conversion_rate", "events"]
    found = _table(df)
    assert found == {
        g: (v, e, round(v * 100 / ALL_VISITS, 1)) for g, (v, e) in EXPECTED.items()
    }
    # most converted first, then by name
    assert list(df["goal"])[:3] == ["Home", "Simulation", "Teleservice"]


def _filtered(site, **args):
    return parse_filters(
        {"site": site.public_id, "start": "2026-03-02", "end": "2026-03-08", **args}, [site]
    )


def test_goal_conversions_under_a_visit_filter_and_its_negation(simulator):
    fr = _table(goal_conversions(_filtered(simulator, country="FR")))  # a d e g
    assert fr["Home"] == (3, 5, 75.0)  # a d(3) g of 4 visits
    assert fr["Teleservice"] == (3, 3, 75.0)  # a e g
    assert fr["Pro signup"] == (1, 1, 25.0)
    not_fr = _table(goal_conversions(_filtered(simulator, country="!FR")))  # b c h r1
    assert not_fr["Home"] == (3, 3, 75.0)
    assert not_fr["Teleservice"] == (2, 2, 50.0)  # b r1 (no country: kept by a negation)
    assert not_fr["Details"] == (0, 0, 0.0)


def test_goal_conversions_under_an_event_filter(simulator):
    # An event-level filter keeps events: only the teleservice clicks on a benefit's page.
    found = _table(goal_conversions(_filtered(simulator, path="/aides/rsa,/aides/css")))
    assert found["Teleservice"] == (3, 3, 100.0)  # a e g, of the 3 visits with such events
    assert found["Home"] == (0, 0, 0.0)


def test_goal_filter_keeps_the_converted_visits(simulator, client):
    def visits(**args) -> int:
        from analytics.stats.overview import overview_summary

        summary = overview_summary(_filtered(simulator, **args)).set_index("metric")
        return summary.loc["visits", "value"]

    assert visits() == ALL_VISITS
    assert visits(goal="Teleservice") == 5  # a b e g r1
    assert visits(goal="!Teleservice") == 3  # c d h
    assert visits(goal="Home,Details") == 7  # every visit but r1
    assert visits(goal="Teleservice", country="FR") == 3  # a e g
    assert visits(goal="!Teleservice", country="!FR") == 2  # c h
    assert visits(goal="No such goal") == 0
    assert visits(goal="!No such goal") == ALL_VISITS
    # A goal filter and the Goals card agree: every kept visit converted.
    card = _table(goal_conversions(_filtered(simulator, goal="Details")))
    assert card["Details"] == (4, 4, 100.0)


def test_a_goal_filtered_page_reads_the_goals_once(simulator, client):
    """Every metric of the Overview builds its statement with the segment; the goals behind
    `goal=` are read once per request for all of them, not once per metric."""
    logged_in(client)

    def goal_reads(query: str) -> int:
        reads: list[str] = []

        def count(conn, cursor, statement, *args) -> None:
            if "FROM goals" in statement:
                reads.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            page = client.get(f"/overview?site={simulator.public_id}&period=all{query}")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert page.status_code == 200
        return len(reads)

    assert goal_reads("&goal=Teleservice") == goal_reads("") + 1


def test_a_goal_redefined_between_requests_is_read_again(simulator, client):
    """The per-request copy of the goals lives on the request: the tests' app context, like a
    script's, outlives many requests, and a copy kept in `g` would go stale."""
    logged_in(client)

    def visits() -> int:
        week = "start=2026-03-02&end=2026-03-08"  # the seeded week, as `_filtered`
        url = f"/csv/summary.csv?site={simulator.public_id}&{week}&goal=Teleservice"
        rows = list(csv.DictReader(io.StringIO(client.get(url).get_data(as_text=True))))
        return int(next(r for r in rows if r["metric"] == "visits")["value"])

    assert visits() == 5  # a b e g r1: a teleservice on any benefit
    goals.delete_goal(simulator, "Teleservice")
    create_goal(simulator, "Teleservice", "page", path=HOME)  # the same name, now a page goal
    assert visits() == 6  # a b c d g h: the visits with a home page view


def test_path_patterns_are_literal_but_for_the_star(app, site, make_site):
    rows = [
        pv(site, at(2, 10), "/a_b", "s1", "v1"),
        pv(site, at(2, 10), "/axb", "s2", "v2"),
        pv(site, at(2, 10), "/A_b", "s3", "v3"),
        pv(site, at(2, 10), "/100%", "s4", "v4"),
        pv(site, at(2, 10), "/1000", "s5", "v5"),
        pv(site, at(2, 10), "/x?y[1]", "s6", "v6"),
        pv(site, at(2, 10), "/xzy1", "s7", "v7"),
    ]
    store_events(rows, [])
    create_goal(site, "underscore", "page", path="/a_b")
    create_goal(site, "percent", "page", path="/100%")
    create_goal(site, "brackets", "page", path="/x?y[1]")
    create_goal(site, "star", "page", path="/*0*")
    found = _table(goal_conversions(Period(site)))
    assert {k: v[0] for k, v in found.items()} == {
        "underscore": 1, "percent": 1, "brackets": 1, "star": 2,
    }  # fmt: skip


def test_goal_validation(app, site):
    with pytest.raises(InvalidInput, match="starts with /"):
        create_goal(site, "x", "page", path="simulation")
    with pytest.raises(InvalidInput, match="one of"):
        create_goal(site, "x", "visit", path="/")
    with pytest.raises(InvalidInput, match="event name"):
        create_goal(site, "x", "event")
    with pytest.raises(InvalidInput, match="goal name"):
        create_goal(site, " ", "page", path="/")
    create_goal(site, "x", "page", path="/")
    with pytest.raises(InvalidInput, match="already exists"):
        create_goal(site, "x", "page", path="/other")
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        goals.parse_props(["plan"])
    assert goals.parse_props(["plan=pro", "a=b=c"]) == {"plan": "pro", "a": "b=c"}


def test_a_goal_used_by_a_funnel_cannot_be_deleted(app, site):
    create_goal(site, "Home", "page", path="/")
    create_funnel(site, "F", ["Home", "path:/x"])
    with pytest.raises(InvalidInput, match="funnel"):
        goals.delete_goal(site, "Home")
    goals.delete_funnel(site, "F")
    goals.delete_goal(site, "Home")
    assert goals.goals_of(site.id) == []


# --- CLI ----------------------------------------------------------------------------------


def test_goals_cli(runner, site):
    sid = site.public_id
    for args in (
        ["--page", "/simulation*"],
        ["--event", "signup", "--prop", "plan=pro", "--prop", "n=2"],
        ["--benefit", "*", "--type", "teleservice"],
    ):
        name = args[1].strip("/*") or "any"
        result = runner.invoke(args=["goals", "add", sid, name, *args])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(args=["goals", "list", sid]).output
    assert "simulation\tpage\tpage view of /simulation*" in listed
    assert "event signup with n=2, plan=pro" in listed
    assert "teleservice on any benefit" in listed
    goal = db.session.execute(sa.select(Goal).where(Goal.name == "signup")).scalar_one()
    assert goal.props == {"plan": "pro", "n": "2"}
    bad = runner.invoke(args=["goals", "add", sid, "x", "--page", "/a", "--event", "b"])
    assert bad.exit_code != 0 and "exactly one of" in bad.output
    bad = runner.invoke(args=["goals", "add", sid, "x", "--benefit", "rsa"])
    assert bad.exit_code != 0 and "--type" in bad.output
    assert runner.invoke(args=["goals", "add", "nope", "x", "--page", "/"]).exit_code != 0
    deleted = runner.invoke(args=["goals", "delete", sid, "simulation"])
    assert deleted.exit_code == 0 and "deleted goal simulation" in deleted.output
    assert runner.invoke(args=["goals", "delete", sid, "simulation"]).exit_code != 0


def test_funnels_cli(runner, site):
    sid = site.public_id
    runner.invoke(args=["goals", "add", sid, "Results", "--page", "/simulation/resultats"])
    result = runner.invoke(
        args=["funnels", "add", sid, "Sim", "path:/", "event:form_submit", "Results"]
    )
    assert result.exit_code == 0, result.output
    funnel = db.session.execute(sa.select(Funnel)).scalar_one()
    assert funnel.steps == [{"path": "/"}, {"event": "form_submit"}, {"goal": "Results"}]
    listed = runner.invoke(args=["funnels", "list", sid]).output
    assert "Sim\tpath:/ → event:form_submit → Results" in listed
    short = runner.invoke(args=["funnels", "add", sid, "One", "path:/"])
    assert short.exit_code != 0 and "2 to 8 steps" in short.output
    unknown = runner.invoke(args=["funnels", "add", sid, "U", "path:/", "Nope"])
    assert unknown.exit_code != 0 and "no goal 'Nope'" in unknown.output
    deleted = runner.invoke(args=["funnels", "delete", sid, "Sim"])
    assert deleted.exit_code == 0, deleted.output


# --- Settings -----------------------------------------------------------------------------


def test_settings_add_and_delete_goals_and_funnels(client, site):
    logged_in(client)
    res = client.post(f"/settings/sites/{site.id}/goals", data={
        "name": "Teleservice", "kind": "benefit", "event_name": "teleservice", "item_id": "",
    }, follow_redirects=True)  # fmt: skip
    assert res.status_code == 200 and "Goal &#39;Teleservice&#39; added" in res.text
    client.post(f"/settings/sites/{site.id}/goals", data={
        "name": "Signup", "kind": "event", "event_name": "signup", "props": "plan=pro\nn=2",
    })  # fmt: skip
    client.post(f"/settings/sites/{site.id}/goals",
                data={"name": "Home", "kind": "page", "path": "/"})  # fmt: skip
    bad = client.post(f"/settings/sites/{site.id}/goals",
                      data={"name": "Bad", "kind": "page", "path": "nope"}, follow_redirects=True)
    assert "starts with /" in bad.text
    assert [g.name for g in goals.goals_of(site.id)] == ["Home", "Signup", "Teleservice"]
    assert goals.goal_named(site.id, "Signup").props == {"plan": "pro", "n": "2"}
    res = client.post(f"/settings/sites/{site.id}/funnels",
                      data={"name": "F", "steps": "Home\nevent:signup\n\nTeleservice"})
    assert res.status_code == 302
    page = client.get("/settings").text
    assert "Home → event:signup → Teleservice" in page
    funnel = goals.funnel_named(site.id, "F")
    client.post(f"/settings/sites/{site.id}/funnels/{funnel.id}/delete")
    goal = goals.goal_named(site.id, "Home")
    client.post(f"/settings/sites/{site.id}/goals/{goal.id}/delete")
    assert goals.funnels_of(site.id) == []
    assert [g.name for g in goals.goals_of(site.id)] == ["Signup", "Teleservice"]
    actions = db.session.execute(sa.select(AuditEntry.action)).scalars().all()
    assert actions.count("goal.add") == 3 and "funnel.add" in actions
    assert "funnel.delete" in actions and "goal.delete" in actions


def test_settings_goal_forms_are_for_admins(client, site):
    logged_in(client, "viewer")
    res = client.post(f"/settings/sites/{site.id}/goals",
                      data={"name": "Home", "kind": "page", "path": "/"})  # fmt: skip
    assert res.status_code in (302, 403)
    assert goals.goals_of(site.id) == []


# --- the Overview's card ------------------------------------------------------------------


def test_overview_goals_card_and_csv(client, simulator):
    logged_in(client)
    query = {"site": simulator.public_id, "start": "2026-03-02", "end": "2026-03-08"}
    page = client.get("/overview", query_string=query)
    assert page.status_code == 200
    # The card comes apart (dashboard.js fetches it), with the page's own period and filters.
    [fragment] = re.findall(r'id="card-goals" data-fragment="([^"]+)"', page.text)
    assert fragment.startswith("/overview/goals?") and "start=2026-03-02" in fragment
    card = client.get(html.unescape(fragment))
    assert card.status_code == 200 and 'id="card-goals"' in card.text
    assert "goal=Teleservice+RSA" in card.text  # a row's link adds its goal filter
    assert "<html" not in card.text
    res = client.get("/csv/goals.csv", query_string=query)
    assert res.status_code == 200
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert {r["goal"]: (int(r["visits"]), int(r["events"])) for r in rows} == EXPECTED
    filtered = client.get("/csv/goals.csv", query_string={**query, "goal": "Details"})
    rows = {r["goal"]: r for r in csv.DictReader(io.StringIO(filtered.text))}
    assert rows["Details"]["visits"] == "4" and rows["Details"]["conversion_rate"] == "100.0"
    assert rows["Home"]["visits"] == "3"  # a d g


def test_hostile_goal_names_are_escaped(client, site, make_site):
    seed_funnel_traffic(site, make_site(name="Other"))
    name = '<script>alert(1)</script>"&'
    create_goal(site, name, "page", path="/")
    logged_in(client)
    query = {"site": site.public_id, "start": "2026-03-02", "end": "2026-03-08"}
    for path in ("/overview/goals", "/settings"):
        page = client.get(path, query_string=query).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    filtered = client.get("/overview", query_string={**query, "goal": name})
    assert filtered.status_code == 200 and "<script>alert(1)" not in filtered.text
