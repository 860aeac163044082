"""The live view: the last 5 and 30 minutes from raw events, its JSON, and its self-refresh."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest

from analytics import stats
from analytics.ingest.writer import event_row, store_events
from analytics.models import utcnow
from analytics.segments import Segment, parse_segment
from tests.accounts import PASSWORD, logged_in, make_user


@dataclasses.dataclass(frozen=True)
class Scope:
    site: Any
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    bucket: str = "minute"
    segment: Segment = Segment()

    def previous(self) -> Scope:
        return self


def seed_now(site, other, now: dt.datetime) -> None:
    """v1 on /a and v2 on /b then /c in the last 5 min; v3 10 min ago; v4 40 min ago."""

    def pv(minutes: float, path: str, visitor: str, on=site, **fields) -> dict:
        return event_row(
            site_id=on.id,
            occurred_at=now - dt.timedelta(minutes=minutes),
            source="tracker",
            name="pageview",
            path=path,
            visitor_id=visitor,
            session_id="s-" + visitor,
            **fields,
        )

    store_events(
        [
            pv(1, "/a", "v1", country="FR"),
            pv(3, "/b", "v2"),
            pv(2, "/c", "v2"),
            event_row(site_id=site.id, occurred_at=now - dt.timedelta(minutes=1), source="api",
                      name="signup", visitor_id="v2", session_id="s-v2"),
            pv(10, "/d", "v3"),
            pv(40, "/e", "v4"),  # too old
            pv(1, "/x", "o1", on=other),  # another site
        ],
        [],
    )  # fmt: skip


def test_live_numbers_pages_and_minutes(site, make_site):
    now = utcnow()
    seed_now(site, make_site(name="Other"), now)
    scope = Scope(site)
    assert stats.live_numbers(scope, now) == {
        "visitors_5m": 2,
        "pageviews_5m": 3,
        "visitors_30m": 3,
        "pageviews_30m": 4,
    }
    pages = stats.live_pages(scope, now)
    assert dict(zip(pages["path"], pages["visitors"], strict=True)) == {"/a": 1, "/c": 1}
    minutes = stats.live_minutes(scope, now)
    assert int(minutes["pageviews"].sum()) == 4
    assert 30 <= len(minutes) <= 31  # every minute, the empty ones too
    # The view's filters apply here too.
    france = dataclasses.replace(scope, segment=parse_segment({"country": "FR"}))
    assert stats.live_numbers(france, now)["visitors_30m"] == 1


def test_live_page_and_json(client, site, make_site):
    seed_now(site, make_site(name="Other"), utcnow())
    client = logged_in(client)
    page = client.get("/live", query_string={"site": site.public_id})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-live="visitors_5m">2<' in html and "/c" in html
    res = client.get("/live.json", query_string={"site": site.public_id, "path": "/a"})
    assert res.status_code == 200 and res.headers["Cache-Control"] == "no-store"
    assert res.json["numbers"]["pageviews_30m"] == 1
    assert res.json["pages"] == [{"path": "/a", "visitors": 1}]
    assert res.json["figure"]["data"][0]["name"] == "Page views"


def test_live_needs_a_login(client, site):
    assert client.get("/live.json", query_string={"site": site.public_id}).status_code in (
        302,
        401,
    )


@pytest.mark.browser
@pytest.mark.parametrize("app_config", [{"LIVE_REFRESH_SECONDS": 0.3}])
def test_the_live_page_refreshes_itself_and_stops_when_hidden(
    app, site, make_site, live_server, browser
):
    now = utcnow()
    seed_now(site, make_site(name="Other"), now)
    make_user("viewer@example.org", "viewer")
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(live_server + "/live?" + urlencode({"site": site.public_id}))
    page.fill("input[name=email]", "viewer@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/live?*")
    assert page.inner_text('[data-live="pageviews_5m"]') == "3"
    # New page views arrive: the page shows them without a reload.
    store_events(
        [
            event_row(site_id=site.id, occurred_at=utcnow(), source="tracker", name="pageview",
                      path=f"/new{n}", visitor_id=f"n{n}", session_id=f"n{n}")
            for n in range(2)
        ],
        [],
    )  # fmt: skip
    page.wait_for_function(
        "() => document.querySelector('[data-live=\"pageviews_5m\"]').textContent === '5'"
    )
    assert "/new1" in page.inner_text("#live-pages")
    page.wait_for_selector("#chart-live_minutes svg")
    # Hidden: no more refreshes.
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.wait_for_timeout(700)  # a refresh already on its way may still land
    before = page.get_attribute("#live", "data-refreshed")
    page.wait_for_timeout(1500)
    assert page.get_attribute("#live", "data-refreshed") == before
    assert problems == []
    context.close()
