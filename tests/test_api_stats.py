"""The stats API on both databases: each endpoint's numbers equal its page's CSV (or the stats
function behind its card) under the same period and filters; tokens (none, wrong, revoked, a
viewer's, a cookie instead of a token); sites (unknown: 404); bad parameters (400 naming them);
hostile values anywhere (never a 5xx)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.goals import create_goal, resolve_steps
from analytics.models import ApiToken, utcnow
from analytics.stats.funnels import funnel
from analytics.stats.goals import goal_conversions
from analytics.tokens import create_token, revoke_token
from analytics.users import delete_user

from .accounts import logged_in, make_user
from .test_dashboard import week
from .test_injection import HOSTILE, state
from .test_stats import seed_lists, seed_traffic

API = "/api/v1/stats"
# The same views through the API and through the pages: unfiltered, and one of each kind of
# filter (visit-level, event-level, property, negated, OR).
SEGMENTS = [
    {},
    {"country": "FR"},
    {"referrer": "search.example"},
    {"path": "/blog"},
    {"name": "!scroll"},
    {"prop.plan": "pro,free"},
    {"browser": "Chrome", "utm_campaign": "spring"},
]
# breakdown `by` -> (its CSV, the CSV's key column, the CSV's columns the API repeats)
BY_CSV = {
    "path": ("pages", "path", ["pageviews", "visitors", "share_pct"]),
    "entry": ("entry_pages", "path", ["visits", "visitors", "share_pct"]),
    "referrer": ("referrers", "referrer", ["visits", "visitors", "share_pct"]),
    "browser": ("browsers", "browser", ["visitors", "share_pct"]),
    "os": ("os", "os", ["visitors", "share_pct"]),
    "device": ("devices", "device", ["visitors", "share_pct"]),
    "country": ("countries", "country", ["name", "visitors", "share_pct"]),
    "name": ("event_names", "name", ["events", "visitors", "share_pct"]),
    "item": (
        "behaviour",
        "item_id",
        ["shows", "details", "details_pct", "actions", "actions_pct"],
    ),
}


@pytest.fixture
def seeded(site, make_site):
    seed_traffic(site, make_site(name="Other"))
    seed_lists(site)
    return site


@pytest.fixture
def token(app) -> str:
    """A viewer's token: the API only reads, so a viewer's does everything."""
    return create_token(make_user("reader@example.org", "viewer").id, "tests")[1]


@pytest.fixture
def api(app, token):
    """GET an API endpoint with the viewer's token, from a client that has no cookie."""
    anonymous = app.test_client()

    def get(endpoint: str, query: dict[str, str], bearer: str | None = token, **headers):
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return anonymous.get(f"{API}/{endpoint}", query_string=query, headers=headers)

    return get


@pytest.fixture
def pages(client):
    """A logged-in admin's client for the pages and their CSVs."""
    return logged_in(client, "admin")


def ok(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    return response.get_json()


def download(client, table: str, query: dict[str, str]) -> list[dict[str, str]]:
    res = client.get(f"/csv/{table}.csv", query_string=query)
    assert res.status_code == 200, (table, res.status_code)
    return list(csv.DictReader(io.StringIO(res.data.decode("utf-8"))))


def cell(value) -> str:
    """A JSON value as the CSV writes it (None empty, numbers as Python prints them)."""
    return "" if value is None else str(value)


# --- the numbers equal the pages' ---------------------------------------------------------


@pytest.mark.parametrize("segment", SEGMENTS, ids=str)
def test_summary_equals_the_overview(api, pages, seeded, segment):
    query = week(seeded, **segment)
    body = ok(api("summary", query))
    rows = download(pages, "summary", query)
    assert {r["metric"] for r in rows} == set(body["results"])
    for row in rows:
        got = body["results"][row["metric"]]
        assert [cell(got[k]) for k in ("value", "previous", "change_pct")] == [
            row["value"], row["previous"], row["change_pct"],
        ], row["metric"]  # fmt: skip
    assert body["site"] == seeded.public_id and body["filters"] == segment
    assert body["period"] == {"name": "custom", "start": "2026-03-02", "end": "2026-03-08"}
    html = pages.get("/overview", query_string=query).get_data(as_text=True)
    if body["results"]["pageviews"]["value"]:
        shown = html.split('data-metric="pageviews"')[1].split('class="value">')[1].split("<")[0]
        assert shown == f"{body['results']['pageviews']['value']:,}"


def test_summary_numbers_are_numbers(api, seeded):
    results = ok(api("summary", week(seeded)))["results"]
    assert results["pageviews"] == {"value": 7, "previous": 1, "change_pct": 600.0}
    assert isinstance(results["bounce_rate"]["value"], float)
    assert isinstance(results["visitors"]["value"], int)


@pytest.mark.parametrize("segment", SEGMENTS, ids=str)
def test_timeseries_equals_the_chart_csv(api, pages, seeded, segment):
    query = week(seeded, **segment)
    body = ok(api("timeseries", query))
    rows = download(pages, "timeseries", query)
    assert body["interval"] == "day" and len(body["results"]) == 7
    assert [(r["time"], r["pageviews"], r["visitors"]) for r in body["results"]] == [
        (r["bucket"].replace(" ", "T") + "Z", int(r["pageviews"]), int(r["visitors"])) for r in rows
    ]


def test_timeseries_hours_equal_a_two_day_page(api, pages, seeded):
    query = {"site": seeded.public_id, "start": "2026-03-04", "end": "2026-03-05"}
    rows = download(pages, "timeseries", query)  # two days: the page counts by hour
    body = ok(api("timeseries", {**query, "interval": "hour"}))
    assert len(body["results"]) == 48 == len(rows)
    assert [r["pageviews"] for r in body["results"]] == [int(r["pageviews"]) for r in rows]
    assert ok(api("timeseries", query))["results"] == body["results"]  # the page's own choice


@pytest.mark.parametrize("interval, first", [("week", "2026-03-02"), ("month", "2026-03-01")])
def test_timeseries_weeks_and_months_add_up_the_days(api, seeded, interval, first):
    days = ok(api("timeseries", week(seeded, interval="day")))["results"]
    body = ok(api("timeseries", week(seeded, interval=interval)))
    assert body["interval"] == interval
    assert body["results"][0]["time"] == f"{first}T00:00:00Z"
    assert sum(r["pageviews"] for r in body["results"]) == sum(r["pageviews"] for r in days) == 7


@pytest.mark.parametrize("by", sorted(BY_CSV))
@pytest.mark.parametrize("segment", SEGMENTS[:4], ids=str)
def test_breakdown_equals_its_card_csv(api, pages, seeded, by, segment):
    table, key, columns = BY_CSV[by]
    query = week(seeded, **segment)
    body = ok(api("breakdown", {**query, "by": by}))
    rows = download(pages, table, query)
    assert body["by"] == by and body["total_rows"] == len(rows)
    assert [[cell(r["value"]), *(cell(r[c]) for c in columns)] for r in body["results"]] == [
        [r[key], *(r[c] for c in columns)] for r in rows
    ]


@pytest.mark.parametrize("by", ["utm_source", "utm_medium", "utm_campaign"])
def test_utm_breakdowns_add_up_the_utm_table(api, pages, seeded, by):
    query = week(seeded)
    added: dict[str, int] = {}
    for row in download(pages, "utm_campaigns", query):
        added[row[by]] = added.get(row[by], 0) + int(row["visits"])
    body = ok(api("breakdown", {**query, "by": by}))
    assert {r["value"]: r["visits"] for r in body["results"]} == added
    assert sum(r["share_pct"] for r in body["results"]) == pytest.approx(100, abs=0.2)


def test_category_and_source_breakdowns_add_up_the_actions_tables(api, pages, seeded):
    query = week(seeded)
    added: dict[str, int] = {}
    for row in download(pages, "categories_over_time", query):
        added[row["category"]] = added.get(row["category"], 0) + int(row["events"])
    body = ok(api("breakdown", {**query, "by": "category"}))
    assert {r["value"]: r["events"] for r in body["results"]} == added
    sources = {
        r["value"]: r["events"] for r in ok(api("breakdown", {**query, "by": "source"}))["results"]
    }
    track = sum(int(r["count"]) for r in download(pages, "track_actions", query))
    assert sources["track"] == track == 4
    total = sum(int(r["events"]) for r in download(pages, "event_names", query))
    assert sum(sources.values()) == total


def test_property_breakdown_equals_the_event_page(api, pages, seeded):
    query = week(seeded, name="signup")
    body = ok(api("breakdown", {**query, "by": "prop.plan"}))
    rows = download(pages, "event_properties", {**week(seeded), "event": "signup"})
    expected = {r["value"]: int(r["events"]) for r in rows if r["key"] == "plan"}
    assert {r["value"]: r["events"] for r in body["results"]} == expected == {"pro": 1, "free": 1}
    everywhere = ok(api("breakdown", {**week(seeded), "by": "prop.plan"}))
    assert everywhere["results"] == body["results"]  # only signups carry a plan
    assert ok(api("breakdown", {**week(seeded), "by": "prop.nothing"}))["results"] == []


def test_breakdown_limit_cuts_the_rows_not_the_shares(api, pages, seeded):
    query = week(seeded)
    rows = download(pages, "event_names", query)
    body = ok(api("breakdown", {**query, "by": "name", "limit": "2"}))
    assert body["limit"] == 2 and body["total_rows"] == len(rows) > 2
    assert [r["value"] for r in body["results"]] == [r["name"] for r in rows[:2]]
    assert body["results"][0]["share_pct"] == float(rows[0]["share_pct"])


def goals_and_query(site) -> dict[str, str]:
    create_goal(site, "Signed up", "event", event_name="signup")
    create_goal(site, "Read the blog", "page", path="/blog*")
    create_goal(site, "Pro plan", "event", event_name="signup", props={"plan": "pro"})
    return week(site)


def test_goals_equal_the_goals_card(api, seeded):
    query = goals_and_query(seeded)
    for segment in SEGMENTS[:3]:
        body = ok(api("goals", {**query, **segment}))
        card = goal_conversions(parse_filters({**query, **segment}, [seeded]))
        assert body["results"] == card.to_dict("records")
    results = {r["goal"]: r for r in ok(api("goals", query))["results"]}
    assert results["Read the blog"]["visits"] == 2 and results["Signed up"]["events"] == 2
    by_goal = ok(api("breakdown", {**query, "by": "goal"}))["results"]
    assert [(r["value"], r["visits"]) for r in by_goal] == [
        (r["goal"], r["visits"]) for r in ok(api("goals", query))["results"]
    ]


def test_goal_filter_needs_a_goal_of_the_site(api, seeded):
    query = goals_and_query(seeded)
    body = ok(api("summary", {**query, "goal": "Read the blog"}))
    assert body["filters"] == {"goal": "Read the blog"}
    assert body["results"]["visits"]["value"] == 2
    res = api("summary", {**query, "goal": "Nope"})
    assert res.status_code == 400 and res.get_json()["parameter"] == "goal"


def test_funnel_equals_the_funnel_table(api, seeded):
    query = goals_and_query(seeded)
    steps = ["path:/", "path:/pricing", "Signed up"]
    body = ok(api("funnel", {**query, "steps": ",".join(steps)}))
    filters = parse_filters(query, [seeded])
    parsed = [{"path": "/"}, {"path": "/pricing"}, {"goal": "Signed up"}]
    table = funnel(filters, resolve_steps(parsed, seeded.id))
    assert body["results"] == [
        {k: (None if v != v else v) for k, v in row.items()} for row in table.to_dict("records")
    ]
    assert body["steps"] == ["/", "/pricing", "Signed up"]
    assert [r["visits"] for r in body["results"]] == [2, 1, 1]
    repeated = ok(api("funnel", [("site", seeded.public_id), ("start", "2026-03-02"),
                                 ("end", "2026-03-08"), ("steps", "path:/"),
                                 ("steps", "event:signup")]))  # fmt: skip
    assert [r["visits"] for r in repeated["results"]] == [2, 1]


# --- tokens -------------------------------------------------------------------------------


def test_no_token_is_a_401_that_says_how(api, seeded):
    res = api("summary", week(seeded), bearer=None)
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in res.get_json()["error"]


@pytest.mark.parametrize(
    "header",
    ["Bearer an_wrong", "Bearer ", "Basic dXNlcjpwYXNz", "an_x", "Bearer " + "a" * 5000],
)
def test_a_wrong_token_is_a_401(app, seeded, header):
    res = app.test_client().get(f"{API}/summary", query_string=week(seeded),
                                headers={"Authorization": header})  # fmt: skip
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"].startswith("Bearer")
    assert res.get_json()["error"]


def test_a_revoked_token_or_a_deleted_users_is_a_401(api, seeded, token):
    assert ok(api("summary", week(seeded)))
    row = db.session.execute(db.select(ApiToken)).scalar_one()
    revoke_token(row.id, row.user_id, acting_is_admin=False)
    res = api("summary", week(seeded))
    assert res.status_code == 401 and 'error="invalid_token"' in res.headers["WWW-Authenticate"]

    admin = make_user()
    _, other = create_token(make_user("gone@example.org", "viewer").id)
    assert api("summary", week(seeded), bearer=other).status_code == 200
    gone = db.session.execute(db.select(ApiToken).where(ApiToken.id != row.id)).scalar_one()
    delete_user(gone.user_id, admin.id)
    assert api("summary", week(seeded), bearer=other).status_code == 401


def test_a_login_cookie_is_no_token(pages, seeded):
    """A browser logged in to the dashboards gets nothing from the API without a token."""
    res = pages.get(f"{API}/summary", query_string=week(seeded))
    assert res.status_code == 401


def test_answers_set_no_cookie_and_are_never_cached(api, seeded):
    res = api("summary", week(seeded))
    assert res.status_code == 200 and "Set-Cookie" not in res.headers
    assert res.headers["Cache-Control"] == "no-store"
    assert "Cookie" not in res.headers.get("Vary", "")


def test_an_admins_token_reads_too(api, seeded):
    _, admins = create_token(make_user().id)
    assert api("summary", week(seeded), bearer=admins).status_code == 200


def test_a_token_reads_every_site_its_user_sees_and_no_other(api, seeded, make_site):
    """Every user sees every site today, so another site is readable; an unknown one is 404."""
    other = make_site(name="Second")
    assert api("summary", {"site": other.public_id}).status_code == 200
    for public_id in ("nope", seeded.public_id.upper(), seeded.public_id + "x"):
        res = api("summary", {"site": public_id})
        assert res.status_code == 404, public_id
        assert res.get_json()["parameter"] == "site"


def test_the_api_only_reads(app, seeded, token):
    client = app.test_client()
    for method in (client.post, client.put, client.delete):
        res = method(f"{API}/summary", query_string=week(seeded),
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert res.status_code == 405 and res.mimetype == "application/json"


# --- bad parameters -----------------------------------------------------------------------


BAD = [
    ("summary", {"period": "yesterday"}, "period"),
    ("summary", {"period": "custom"}, "period"),
    ("summary", {"start": "2026-13-01"}, "start"),
    ("summary", {"end": "1969-12-31"}, "end"),
    ("summary", {"start": "2026-03-08", "end": "2026-03-02"}, "end"),
    ("summary", {"bogus": "1"}, "bogus"),
    ("summary", {"limit": "5"}, "limit"),
    ("summary", {"share": "x"}, "share"),
    ("summary", {f"prop.k{i}": "v" for i in range(6)}, "prop.k5"),
    ("timeseries", {"interval": "minute"}, "interval"),
    ("timeseries", {"interval": "Day"}, "interval"),
    ("timeseries", {"interval": "hour", "period": "12m"}, "interval"),
    ("breakdown", {}, "by"),
    ("breakdown", {"by": "bogus"}, "by"),
    ("breakdown", {"by": "prop."}, "by"),
    ("breakdown", {"by": "path", "limit": "0"}, "limit"),
    ("breakdown", {"by": "path", "limit": "1001"}, "limit"),
    ("breakdown", {"by": "path", "limit": "-1"}, "limit"),
    ("breakdown", {"by": "path", "limit": "1.5"}, "limit"),
    ("breakdown", {"by": "path", "limit": "ten"}, "limit"),
    ("breakdown", {"by": "path", "limit": "\uff11"}, "limit"),  # a fullwidth digit one
    ("funnel", {}, "steps"),
    ("funnel", {"steps": "path:/"}, "steps"),
    ("funnel", {"steps": "path:/,No such goal"}, "steps"),
    ("funnel", {"steps": ",".join(["path:/"] * 9)}, "steps"),
    ("goals", {"goal": "No such goal"}, "goal"),
]


@pytest.mark.parametrize("endpoint, params, parameter", BAD, ids=[f"{e}-{p}" for e, p, _ in BAD])
def test_a_bad_parameter_is_a_400_that_names_it(api, seeded, endpoint, params, parameter):
    res = api(endpoint, {"site": seeded.public_id, **params})
    assert res.status_code == 400, res.get_data(as_text=True)
    body = res.get_json()
    assert body["parameter"] == parameter and body["error"].startswith(parameter)


def test_a_missing_site_is_a_400(api, seeded):
    res = api("summary", {"period": "7d"})
    assert res.status_code == 400 and res.get_json()["parameter"] == "site"


def test_limits_and_presets_that_are_fine(api, seeded):
    for limit in ("1", "1000", " 7 "):
        assert ok(api("breakdown", {"site": seeded.public_id, "by": "path", "limit": limit}))
    for period in ("today", "7d", "30d", "12m", "all"):
        body = ok(api("summary", {"site": seeded.public_id, "period": period}))
        assert body["period"]["name"] == period
    only_start = ok(api("summary", {"site": seeded.public_id, "start": "2026-03-04"}))
    assert only_start["period"]["start"] == "2026-03-04"


def test_unknown_endpoint_is_a_json_404(api, seeded):
    res = api("nothing", week(seeded))
    assert res.status_code == 404 and res.mimetype == "application/json"


# --- hostile values -----------------------------------------------------------------------

PARAMETERS = ("site", "period", "start", "end", "interval", "by", "limit", "steps", "goal",
              "path", "referrer", "country", "prop.plan", "prop.' OR 1=1")  # fmt: skip


def test_hostile_values_in_every_parameter_are_harmless(api, seeded):
    goals_and_query(seeded)
    before = state()
    base = week(seeded)
    for value in HOSTILE:
        for endpoint, own in (("summary", {}), ("timeseries", {}), ("goals", {}),
                              ("breakdown", {"by": "path"}),
                              ("funnel", {"steps": "path:/,event:signup"})):  # fmt: skip
            for name in PARAMETERS:
                res = api(endpoint, {**base, **own, name: value})
                assert res.status_code in (200, 400, 404), (endpoint, name, value[:40])
                assert res.mimetype == "application/json"
        res = api("breakdown", {**base, "by": "prop." + value[:100]})
        assert res.status_code in (200, 400), value[:40]
    assert state() == before


def test_a_hostile_property_key_is_data(api, seeded):
    for key in ("' OR 1=1 --", 'a"b', "a\\b", "$.x", "{}"):
        body = ok(api("breakdown", {**week(seeded), "by": "prop." + key}))
        assert body["results"] == []


def test_hostile_tokens_are_401s(app, seeded):
    client = app.test_client()
    for value in HOSTILE:
        header = "Bearer an_" + value.replace("\x00", "")
        res = client.get(
            f"{API}/summary", query_string=week(seeded), headers={"Authorization": header}
        )
        assert res.status_code == 401


def test_last_use_is_noted(api, seeded, token):
    ok(api("summary", week(seeded)))
    db.session.expire_all()
    row = db.session.execute(db.select(ApiToken)).scalar_one()
    assert row.last_used_at is not None
    assert row.last_used_at > utcnow() - dt.timedelta(minutes=5)


# --- the description ----------------------------------------------------------------------


def test_openapi_describes_the_stats_api_with_its_bearer_scheme(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "/api/events" in spec["paths"]  # next to the ingest endpoints
    for name in ("summary", "timeseries", "breakdown", "goals", "funnel"):
        operation = spec["paths"][f"{API}/{name}"]["get"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"200", "400", "401", "404"} <= set(operation["responses"])
        names = {p["name"] for p in operation["parameters"]}
        assert {"site", "period", "start", "end", "country", "goal", "prop.KEY"} - names == {
            "prop.KEY"
        }
    docs = client.get("/api/docs").get_data(as_text=True)
    assert f"GET {API}/breakdown" in docs and "Authorization: Bearer" in docs


def test_openapi_document_loads_in_schemathesis(app):
    import schemathesis

    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    paths = {result.ok().path for result in loaded.get_all_operations()}
    assert {f"{API}/summary", f"{API}/funnel"} <= paths


def test_goals_and_funnel_equal_their_csvs(api, pages, seeded):
    from analytics.goals import create_funnel

    query = goals_and_query(seeded)
    for segment in ({}, {"country": "FR"}):
        body = ok(api("goals", {**query, **segment}))
        rows = download(pages, "goals", {**query, **segment})
        columns = ["goal", "visits", "conversion_rate", "events"]
        assert [[cell(r[c]) for c in columns] for r in body["results"]] == [
            [r[c] for c in columns] for r in rows
        ]
    saved = create_funnel(seeded, "Signup", ["path:/", "path:/pricing", "Signed up"])
    body = ok(api("funnel", {**query, "steps": "path:/,path:/pricing,Signed up"}))
    rows = download(pages, "funnel", {**query, "funnel": str(saved.id)})
    columns = ["step", "label", "visits", "from_previous_pct", "from_first_pct", "dropoff"]
    assert [[cell(r[c]) for c in columns] for r in body["results"]] == [
        [r[c] for c in columns] for r in rows
    ]
