"""The events explorer and rejected payloads: filters, keyset pages, escaping, empty states."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from analytics.explorer import PAGE_SIZE, decode_cursor, events_page, events_select
from analytics.extensions import db
from analytics.filters import parse_filters
from analytics.ingest.writer import error_row, event_row, store_events
from analytics.models import utcnow
from tests.accounts import logged_in

XSS = "<script>alert(1)</script>"


def seed_events(site, n: int, start: dt.datetime, step: dt.timedelta, **fields) -> list[dict]:
    rows = [
        event_row(site_id=site.id, source="api", name="pageview", occurred_at=start + i * step)
        | fields
        for i in range(n)
    ]
    store_events(rows)
    return rows


def test_keyset_pages_walk_every_event_once_newest_first(app, site):
    now = utcnow().replace(microsecond=0)
    # 2 * PAGE_SIZE + 7 events, with ties on occurred_at so the id breaks them.
    rows = seed_events(site, 2 * PAGE_SIZE + 7, now - dt.timedelta(hours=5), dt.timedelta(0))
    rows += seed_events(site, 3, now - dt.timedelta(hours=1), dt.timedelta(minutes=1))
    filters = parse_filters({"period": "7d"}, [site])
    seen, cursor, pages = [], None, 0
    while True:
        page = events_page(filters, cursor)
        pages += 1
        seen += [r.id for r in page.rows]
        assert len(page.rows) <= PAGE_SIZE
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == len(rows)
    expected = sorted(rows, key=lambda r: (r["occurred_at"], r["id"].hex), reverse=True)
    assert seen == [r["id"] for r in expected]


@pytest.mark.parametrize("cursor", ["", "junk", "2024-01-01~not-a-uuid", "x~y", "~"])
def test_bad_cursors_start_at_the_newest(cursor):
    import uuid

    assert decode_cursor(cursor, uuid.UUID) is None


def test_filters_narrow_the_events(app, site, make_site):
    now = utcnow()
    other = make_site("Other")
    store_events(
        [
            event_row(
                site_id=site.id,
                source="tracker",
                name="pageview",
                path="/a",
                session_id="s1",
                occurred_at=now,
            ),
            event_row(
                site_id=site.id,
                source="tracker",
                name="click",
                path="/a",
                category="cta",
                session_id="s1",
                occurred_at=now,
            ),
            event_row(
                site_id=site.id,
                source="api",
                name="click",
                path="/b",
                category="cta",
                session_id="s2",
                occurred_at=now,
            ),
            event_row(
                site_id=site.id, source="api", name="click", occurred_at=now - dt.timedelta(days=40)
            ),
            event_row(site_id=other.id, source="api", name="click", occurred_at=now),
        ]
    )

    def total(**args) -> int:
        f = parse_filters({"site": site.public_id, **args}, [site, other])
        return len(db.session.execute(events_select(f)).all())

    assert total() == 3
    assert total(period="all") == 4
    assert total(name="click") == 2
    assert total(name="click", source="tracker") == 1
    assert total(category="cta") == 2
    assert total(session="s1") == 2
    assert total(path="/b") == 1
    assert total(path="/nowhere") == 0


def test_events_page_shows_escaped_values_and_props_as_json(client, site):
    logged_in(client, "viewer")
    store_events(
        [
            event_row(
                site_id=site.id, source="api", name=XSS, path="/p?<b>", props={"label": XSS, "n": 3}
            ),
        ]
    )
    page = client.get(f"/events?site={site.public_id}").get_data(as_text=True)
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;label&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page
    assert "&#34;n&#34;: 3" in page
    # Only the app's own script files, never an inline script.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))


def test_events_page_paginates_with_an_older_link(client, site):
    logged_in(client)
    now = utcnow()
    seed_events(
        site, PAGE_SIZE + 5, now - dt.timedelta(hours=3), dt.timedelta(seconds=10), name="tick"
    )
    first = client.get(f"/events?site={site.public_id}").get_data(as_text=True)
    assert first.count("<tr>") == PAGE_SIZE + 1  # header row + a page
    older = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert second.count("<tr>") == 5 + 1
    assert 'rel="next"' not in second
    assert "Newest" in second


def test_events_page_empty_states_say_what_to_do(client, site):
    logged_in(client)
    page = client.get(f"/events?site={site.public_id}").get_data(as_text=True)
    assert "No events for" in page and "script tag" in page
    filtered = client.get(f"/events?site={site.public_id}&name=nothing").get_data(as_text=True)
    assert "No event matches these filters" in filtered


def test_pages_without_any_site_explain_how_to_create_one(client):
    logged_in(client)
    for path in ("/events", "/errors"):
        response = client.get(path)
        assert response.status_code == 200
        assert "No site to show yet" in response.get_data(as_text=True)
    for path in ("/export/events.csv", "/export/errors.csv"):
        assert client.get(path).status_code == 404


def test_errors_page_lists_rejections_escaped_and_filters_by_endpoint(client, site, make_site):
    logged_in(client, "viewer")
    other = make_site("Other")
    store_events(
        [],
        [
            error_row(
                "/api/events", f"unknown event {XSS}", payload={"name": XSS}, site_id=site.id
            ),
            error_row("/collector", "not JSON", raw=b"<img src=x onerror=alert(2)>"),
            error_row("/track", "other site", payload={"a": 1}, site_id=other.id),
        ],
    )
    page = client.get(f"/errors?site={site.public_id}").get_data(as_text=True)
    assert XSS not in page and "<img src=x" not in page
    assert "unknown event &lt;script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "other site" not in page  # another site's rejection
    assert page.count('<td class="payload">') == 2
    only = client.get(f"/errors?site={site.public_id}&endpoint=/collector").get_data(as_text=True)
    assert only.count('<td class="payload">') == 1 and "not JSON" in only
    assert "28 B" in only  # the body's size


def test_errors_page_empty_state(client, site):
    logged_in(client)
    page = client.get(f"/errors?site={site.public_id}").get_data(as_text=True)
    assert "Nothing was rejected" in page


def test_errors_page_paginates_keeping_the_endpoint_filter(client, site):
    logged_in(client)
    rows = [error_row("/benefits", f"bad {i}", payload={"i": i}) for i in range(PAGE_SIZE + 3)]
    rows.append(error_row("/track", "elsewhere", payload={}))
    store_events([], rows)
    first = client.get(f"/errors?site={site.public_id}&endpoint=/benefits").get_data(as_text=True)
    older = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "endpoint=%2Fbenefits" in older
    second = client.get(older).get_data(as_text=True)
    assert second.count("<tr>") == 3 + 1
    assert "elsewhere" not in second and "Newest" in second
