"""The dashboard pages and the CSV behind each chart, against seeded data, on both databases."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.goals import create_funnel, create_goal
from analytics.ingest.writer import event_row, store_events
from analytics.models import Event
from analytics.users import create_user
from analytics.views.dashboard import TABLES
from analytics.vocabulary import DETAIL_NAMES, SHOW_NAMES
from tests.test_stats import END, START, seed_lists, seed_traffic

XSS = "<script>alert(1)</script>"
PAGES = ["/overview", "/actions", "/lists", "/actions/signup"]


@pytest.fixture
def viewer(client):
    create_user("viewer@example.org", "long-password", "viewer")
    res = client.post("/login", data={"email": "viewer@example.org", "password": "long-password"})
    assert res.status_code == 302
    return client


@pytest.fixture
def seeded(site, make_site):
    seed_traffic(site, make_site(name="Other"))
    seed_lists(site)
    return site


def week(site, **extra) -> dict[str, str]:
    """The query string of the seeded week (a custom range; `end` is inclusive)."""
    last = (END - dt.timedelta(days=1)).date().isoformat()
    return {"site": site.public_id, "start": START.date().isoformat(), "end": last, **extra}


def db_count(site, *where) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(Event)
        .where(
            Event.site_id == site.id, Event.occurred_at >= START, Event.occurred_at < END, *where
        )
    )
    return db.session.execute(stmt).scalar_one()


def download(client, table: str, query: dict[str, str]) -> list[dict[str, str]]:
    res = client.get(f"/csv/{table}.csv", query_string=query)
    assert res.status_code == 200, (table, res.status_code)
    assert res.mimetype == "text/csv" and "charset=utf-8" in res.content_type
    assert res.headers["Content-Disposition"].startswith("attachment; filename=")
    assert res.data.endswith(b"\r\n")  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(res.data.decode("utf-8"))))


def total(rows: list[dict[str, str]], column: str) -> int:
    return sum(int(r[column]) for r in rows)


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_login(client, site, path):
    create_user("admin@example.org", "long-password")
    res = client.get(path, query_string={"site": site.public_id})
    assert res.status_code == 302 and "/login" in res.headers["Location"]


def test_csv_needs_a_login(client, seeded):
    create_user("admin@example.org", "long-password")
    assert client.get("/csv/timeseries.csv", query_string=week(seeded)).status_code == 401


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_its_charts_and_csv_links(viewer, seeded, path):
    res = viewer.get(path, query_string=week(seeded))
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert 'type="application/json" data-chart="chart-' in html
    assert "/assets/plotly.min.js" in html and "dashboard.js" in html
    assert "<script>" not in html  # no inline script: the CSP would refuse it
    assert "/csv/" in html


def test_overview_shows_the_hand_counted_numbers(viewer, seeded):
    html = viewer.get("/overview", query_string=week(seeded)).get_data(as_text=True)
    kpis = {
        metric: html.split(f'data-metric="{metric}"')[1].split('class="value">')[1].split("<")[0]
        for metric in ("visitors", "visits", "pageviews", "bounce_rate")
    }
    # seed_traffic: 4 visitors, 6 visits, 7 page views; seed_lists adds 10 benefits visitors
    # (h0..h3 overlap between records) whose records are visits of their own.
    visitors = db.session.execute(
        sa.select(sa.func.count(Event.visitor_id.distinct())).where(
            Event.site_id == seeded.id, Event.occurred_at >= START, Event.occurred_at < END
        )
    ).scalar_one()
    assert kpis["visitors"] == str(visitors)
    assert kpis["pageviews"] == "7"
    for path in ("/blog", "/pricing", "search.example", "spring"):
        assert path in html


# Each CSV whose column sums to a count the database can give directly.
TOTALS = {
    "timeseries": ("pageviews", lambda: (Event.name == "pageview",)),
    "pages": ("pageviews", lambda: (Event.name == "pageview",)),
    "events_over_time": ("events", lambda: ()),
    "categories_over_time": ("events", lambda: ()),
    "event_names": ("events", lambda: ()),
    "track_actions": ("count", lambda: (Event.source == "track",)),
    "behaviour": ("shows", lambda: (Event.name.in_(SHOW_NAMES), Event.item_id.isnot(None))),
    "heatmap": ("details", lambda: (Event.name.in_(DETAIL_NAMES),)),
    "ctr": ("shows", lambda: (Event.name.in_(SHOW_NAMES),)),
}


@pytest.mark.parametrize("table", sorted(TOTALS))
def test_csv_total_equals_the_database_count(viewer, seeded, table):
    column, where = TOTALS[table]
    rows = download(viewer, table, week(seeded))
    assert rows, table
    assert total(rows, column) == db_count(seeded, *where())


def test_every_csv_downloads(viewer, seeded):
    create_goal(seeded, "Pricing", "page", path="/pricing")
    funnel = create_funnel(seeded, "Home to pricing", ["path:/", "Pricing"])
    for table in TABLES:
        rows = download(viewer, table, week(seeded, event="signup", funnel=str(funnel.id)))
        assert rows, table


def test_heatmap_csv_cell_is_details_over_shows(viewer, seeded):
    rows = download(viewer, "heatmap", week(seeded))
    cell = next(r for r in rows if (r["position"], r["list_size"]) == ("2", "10"))
    shows = db_count(
        seeded, Event.item_position == 2, Event.list_size == 10, Event.name.in_(SHOW_NAMES)
    )
    details = db_count(
        seeded, Event.item_position == 2, Event.list_size == 10, Event.name.in_(DETAIL_NAMES)
    )
    assert (int(cell["shows"]), int(cell["details"])) == (shows, details) == (6, 2)
    assert float(cell["rate"]) == pytest.approx(details / shows, abs=1e-4)
    one = download(viewer, "heatmap", week(seeded, item="rsa"))
    assert {(r["position"], r["list_size"], r["rate"]) for r in one} == {
        ("1", "10", str(round(2 / 3, 4))),
        ("2", "10", "0.25"),
    }


def test_csv_holds_every_row_the_page_cuts(viewer, site):
    store_events(
        [
            event_row(
                site_id=site.id,
                occurred_at=START + dt.timedelta(minutes=i),
                name="pageview",
                path=f"/p{i:02d}",
                session_id=f"s{i}",
                source="tracker",
            )
            for i in range(14)
        ],
        [],
    )
    html = viewer.get("/overview", query_string=week(site)).get_data(as_text=True)
    assert "The first 10 of 14 rows" in html
    assert len(download(viewer, "pages", week(site))) == 14


def test_summary_csv_matches_the_kpis(viewer, seeded):
    rows = {r["metric"]: r for r in download(viewer, "summary", week(seeded))}
    assert rows["pageviews"]["value"] == "7"
    assert rows["pageviews"]["previous"] == "1"
    assert rows["pageviews"]["change_pct"] == "600.0"
    assert rows["avg_visit_seconds"]["change_pct"] == ""


def test_behaviour_table_sorts_and_its_csv_follows(viewer, seeded):
    def table(query):
        html = viewer.get("/lists", query_string=query).get_data(as_text=True)
        return html.split('id="card-behaviour"')[1]

    html = table(week(seeded))
    assert html.index(">rsa<") < html.index(">apl<")
    query = week(seeded, sort="details_pct", dir="asc")
    html = table(query)
    assert html.index(">apl<") < html.index(">rsa<")
    assert [r["item_id"] for r in download(viewer, "behaviour", query)] == ["apl", "rsa"]


def test_event_drill_in_shows_properties(viewer, seeded):
    html = viewer.get("/actions/signup", query_string=week(seeded)).get_data(as_text=True)
    assert "coupon.code" in html and ">pro<" in html and ">free<" in html
    assert "/events?" in html and "name=signup" in html  # the explorer, filtered to this name
    rows = download(viewer, "event_properties", week(seeded, event="signup"))
    assert {(r["key"], r["value"]) for r in rows} == {
        ("plan", "pro"),
        ("plan", "free"),
        ("coupon.code", "X1"),
    }


def test_an_event_named_like_a_script_is_only_text(viewer, site):
    store_events(
        [
            event_row(
                site_id=site.id,
                occurred_at=START,
                name=XSS,
                source="api",
                category=XSS,
                path=XSS,
                item_id=XSS,
                item_position=1,
                list_size=2,
                props={XSS: XSS},
            )
        ],
        [],
    )
    query = week(site)
    for path in ("/overview", "/actions", "/lists", f"/actions/{XSS}"):
        html = viewer.get(path, query_string=query).get_data(as_text=True)
        assert XSS not in html, path
    html = viewer.get(f"/actions/{XSS}", query_string=query).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = viewer.get("/actions", query_string=query).get_data(as_text=True)
    assert "\\u003cscript\\u003ealert(1)" in html  # in the chart data, escaped
    rows = download(viewer, "event_names", query)
    assert rows[0]["name"] == XSS  # the CSV holds the name as it is


def test_empty_states(viewer, site, make_site):
    html = viewer.get("/overview", query_string={"site": site.public_id}).get_data(as_text=True)
    assert "No events yet" in html and "tracker.js" in html and site.public_id in html
    assert 'data-chart="' not in html
    store_events(
        [event_row(site_id=site.id, occurred_at=dt.datetime(2020, 1, 1), name="x", source="api")],
        [],
    )
    for path in ("/overview", "/actions"):
        html = viewer.get(path, query_string=week(site)).get_data(as_text=True)
        assert "No events in" in html, path
    html = viewer.get("/lists", query_string=week(site)).get_data(as_text=True)
    assert "No list events" in html and "data-track-list" in html
    html = viewer.get("/actions/nothing", query_string=week(site)).get_data(as_text=True)
    assert "No “nothing” event" in html
    assert download(viewer, "pages", week(site)) == []


def test_unknown_csv_is_a_404(viewer, seeded):
    assert viewer.get("/csv/nope.csv", query_string=week(seeded)).status_code == 404
    assert viewer.get("/csv/event_properties.csv", query_string=week(seeded)).status_code == 404


def test_a_share_link_opens_the_pages_and_csvs(client, seeded):
    create_user("admin@example.org", "long-password")
    seeded.share_token = "t" * 32
    db.session.commit()
    query = week(seeded, share="t" * 32)
    assert client.get("/overview", query_string=query).status_code == 200
    assert total(download(client, "pages", query), "pageviews") == 7


def test_plotly_is_served_by_the_app(client):
    res = client.get("/assets/plotly.min.js?v=1")
    assert res.status_code == 200 and res.mimetype == "text/javascript"
    assert "max-age=31536000" in res.headers["Cache-Control"]
    assert b"plotly" in res.data[:2000].lower() and len(res.data) > 1_000_000
    assert client.get("/static/dashboard.js").status_code == 200
