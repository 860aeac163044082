"""The tracker in a real headless Chromium against the app on loopback, checked in the database.

Each test acts like a visitor on the demo pages (open, scroll, click, navigate, submit, close the
tab) and then reads the `events` rows the app stored. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import Event, EventError, Site
from analytics.views.demo import BENEFITS, GUIDE_NAME, OUTBOUND_URL

from .conftest import DESKTOP_CHROME  # the server drops bot user agents, HeadlessChrome too

pytestmark = pytest.mark.browser

LIST_IDS = [benefit.id for benefit in BENEFITS]


@pytest.fixture
def app_config(database_url: str) -> dict[str, Any]:
    return {"DEMO": True, "WTF_CSRF_ENABLED": True}  # as in production: the demo form has a token


_open_tabs: list[Visitor] = []


@pytest.fixture(autouse=True)
def _forget_tabs() -> Iterator[None]:
    yield
    _open_tabs.clear()


def pause(seconds: float) -> None:
    """Wait, letting Playwright deliver its events (requests, routes) meanwhile.

    The sync API only runs event handlers inside its own calls, so a plain sleep would hold back
    route handlers and the request log.
    """
    pages = [tab.page for tab in _open_tabs if not tab.closed]
    if pages:
        pages[-1].wait_for_timeout(seconds * 1000)
    else:
        time.sleep(seconds)


class Visitor:
    """A browser tab plus what it sent: every request, the event batches, and page errors."""

    def __init__(self, context, base: str) -> None:
        self.base = base
        self.page = context.new_page()
        self.closed = False
        _open_tabs.append(self)
        self.requests: list[Any] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)

    def batches(self) -> list[list[dict[str, Any]]]:
        """The JSON arrays POSTed to /api/events, in order."""
        pause(0.05)
        return [
            json.loads(r.post_data)
            for r in self.requests
            if r.method == "POST" and r.url.endswith("/api/events")
        ]

    def scroll_to(self, fraction: float) -> None:
        """Scroll so that the bottom of the viewport sits at `fraction` of the page height."""
        self.page.evaluate(
            """f => window.scrollTo(0, Math.max(0,
                 f * document.documentElement.scrollHeight - innerHeight))""",
            fraction,
        )
        self.page.wait_for_timeout(150)  # let the scroll event fire

    def leave(self) -> None:
        """Close the tab the way a user does (unload handlers run)."""
        self.closed = True
        self.page.close(run_before_unload=True)


@pytest.fixture
def context(browser) -> Iterator[Any]:
    ctx = browser.new_context(user_agent=DESKTOP_CHROME, viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def visitor(context, live_server: str) -> Iterator[Visitor]:
    tab = Visitor(context, live_server)
    yield tab
    assert tab.errors == [], "the tracker must never throw into the host page"


def stored(public_id: str = "demo") -> list[dict[str, Any]]:
    """The events stored for a site, read through a fresh connection."""
    query = (
        sa.select(
            Event.name,
            Event.path,
            Event.category,
            Event.item_id,
            Event.item_position,
            Event.list_size,
            Event.props,
            Event.session_id,
            Event.dedupe_key,
            Event.source,
            Event.referrer,
        )
        .join(Site, Site.id == Event.site_id)
        .where(Site.public_id == public_id)
        .order_by(Event.occurred_at)
    )
    with db.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def wait_for(
    condition: Callable[[list[dict[str, Any]]], bool], public_id: str = "demo", timeout: float = 10
) -> list[dict[str, Any]]:
    """Poll the database until `condition(rows)` holds; return the rows either way."""
    deadline = time.monotonic() + timeout
    rows = stored(public_id)
    while not condition(rows) and time.monotonic() < deadline:
        pause(0.1)
        rows = stored(public_id)
    return rows


def own_props(row: dict[str, Any]) -> dict[str, Any]:
    """An event's properties without the screen width and language the server files there."""
    return {k: v for k, v in (row["props"] or {}).items() if k not in ("screen", "lang")}


def named(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["name"] == name]


def assert_no_duplicates(rows: list[dict[str, Any]]) -> None:
    keys = Counter(row["dedupe_key"] for row in rows)
    assert all(key for key in keys), "every tracker event carries an eid"
    assert [key for key, n in keys.items() if n > 1] == []


def test_results_page_view_costs_one_request_for_ten_impressions(visitor: Visitor, live_server):
    visitor.open("/demo/results")
    rows = wait_for(lambda r: len(named(r, "impression")) >= 10 and named(r, "pageview"))

    assert [row["path"] for row in named(rows, "pageview")] == ["/demo/results"]
    impressions = sorted(named(rows, "impression"), key=lambda row: row["item_position"])
    assert [row["item_id"] for row in impressions] == LIST_IDS
    assert [row["item_position"] for row in impressions] == list(range(1, 11))
    assert {row["list_size"] for row in impressions} == {10}
    assert {row["category"] for row in impressions} == {"results"}
    assert {row["source"] for row in rows} == {"tracker"}
    assert len({row["session_id"] for row in rows}) == 1

    batches = visitor.batches()
    assert len(batches) == 1, "the page view and all impressions of the render share a request"
    assert Counter(event["name"] for event in batches[0]) == {"pageview": 1, "impression": 10}
    own = [r.url.removeprefix(live_server) for r in visitor.requests]
    print(
        f"\n[tracker] a page view with a 10-item list: {len(own)} requests in all "
        f"({', '.join(own)}); {len(batches)} of them to /api/events"
    )
    assert len(own) <= 3  # the page, tracker.js, one batch

    # Open the third result: the click is reported with the same position, sent as the page goes.
    visitor.page.click(f"[data-track-item='{LIST_IDS[2]}'] a")
    visitor.page.wait_for_url("**/demo/benefits/*")
    rows = wait_for(lambda r: named(r, "item_click") and len(named(r, "pageview")) >= 2)
    [click] = named(rows, "item_click")
    assert (click["item_id"], click["item_position"], click["list_size"], click["category"]) == (
        LIST_IDS[2],
        3,
        10,
        "results",
    )
    assert [row["path"] for row in named(rows, "pageview")] == [
        "/demo/results",
        f"/demo/benefits/{LIST_IDS[2]}",
    ]
    assert len({row["session_id"] for row in rows}) == 1, "one tab, one session"
    assert_no_duplicates(rows)


def test_only_half_visible_items_count_and_the_rest_follow_on_scroll(visitor: Visitor) -> None:
    visitor.page.set_viewport_size({"width": 1280, "height": 420})
    visitor.open("/demo/results")
    # What a person sees: the items at least half inside the viewport.
    visible = visitor.page.evaluate(
        """() => [...document.querySelectorAll('[data-track-item]')].filter(el => {
             const r = el.getBoundingClientRect();
             const shown = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
             return shown >= r.height / 2;
           }).map(el => el.getAttribute('data-track-item'))"""
    )
    assert 0 < len(visible) < 10
    wait_for(lambda r: named(r, "pageview") and named(r, "impression"))
    pause(1.2)  # a second batch would have arrived by now
    rows = stored()
    assert sorted(row["item_id"] for row in named(rows, "impression")) == sorted(visible)

    visitor.scroll_to(1.0)
    wait_for(lambda r: len(named(r, "impression")) >= 10)
    visitor.scroll_to(0.0)
    visitor.scroll_to(1.0)
    pause(1.2)
    rows = stored()
    impressions = named(rows, "impression")
    assert sorted(row["item_position"] for row in impressions) == list(range(1, 11))
    assert {row["list_size"] for row in impressions} == {10}
    assert_no_duplicates(rows)


def test_scroll_depth_is_sent_once_per_milestone(visitor: Visitor) -> None:
    visitor.page.set_viewport_size({"width": 1280, "height": 500})
    visitor.open("/demo/article")
    wait_for(lambda r: named(r, "pageview"))
    depths = lambda rows: sorted(row["props"]["depth"] for row in named(rows, "scroll"))  # noqa: E731

    visitor.scroll_to(0.4)
    assert depths(wait_for(lambda r: named(r, "scroll"))) == [25]
    visitor.scroll_to(0.6)
    assert depths(wait_for(lambda r: len(named(r, "scroll")) >= 2)) == [25, 50]
    for _ in range(3):  # up and down again: no new events
        visitor.scroll_to(1.0)
        visitor.scroll_to(0.1)
    visitor.scroll_to(1.0)
    rows = wait_for(lambda r: len(named(r, "scroll")) >= 4)
    pause(1.2)
    rows = stored()
    assert depths(rows) == [25, 50, 75, 100]
    assert {row["path"] for row in named(rows, "scroll")} == {"/demo/article"}
    assert_no_duplicates(rows)


def test_single_page_app_navigation_and_a_list_drawn_by_script(visitor: Visitor) -> None:
    visitor.open("/demo/app/")
    wait_for(lambda r: named(r, "pageview"))
    visitor.page.click("a[data-spa]:text('Plans')")
    rows = wait_for(lambda r: len(named(r, "impression")) >= 4)
    visitor.page.click("a[data-spa]:text('About')")
    visitor.page.go_back()  # popstate, back on the plans tab: a new render of the list
    visitor.page.wait_for_url("**/demo/app/plans")
    rows = wait_for(lambda r: len(named(r, "pageview")) >= 4 and len(named(r, "impression")) >= 8)

    assert [row["path"] for row in named(rows, "pageview")] == [
        "/demo/app/",
        "/demo/app/plans",
        "/demo/app/about",
        "/demo/app/plans",
    ]
    impressions = named(rows, "impression")
    assert {row["category"] for row in impressions} == {"plans"}
    assert Counter(row["item_position"] for row in impressions) == {1: 2, 2: 2, 3: 2, 4: 2}
    assert {row["list_size"] for row in impressions} == {4}

    visitor.page.click("[data-track-item='senior'] button")
    rows = wait_for(lambda r: named(r, "item_click"))
    [click] = named(rows, "item_click")
    assert (click["item_id"], click["item_position"], click["path"]) == (
        "senior",
        3,
        "/demo/app/plans",
    )
    assert len(visitor.batches()) <= 6  # batches, not one request per event
    assert_no_duplicates(rows)


def test_form_submit_sends_the_form_id_never_what_was_typed(visitor: Visitor) -> None:
    secret = "Zebulon-7f3q@example.net"
    visitor.open("/demo/form")
    visitor.page.fill("input[name=name]", secret)
    visitor.page.fill("input[name=email]", secret)
    visitor.page.fill("textarea[name=question]", secret)
    visitor.page.click("button[type=submit]")
    visitor.page.wait_for_selector("text=Thank you")
    rows = wait_for(lambda r: named(r, "form_submit") and len(named(r, "pageview")) >= 2)

    [submit] = named(rows, "form_submit")
    assert own_props(submit) == {"form": "contact"}
    assert submit["path"] == "/demo/form"
    assert secret not in json.dumps(rows, default=str)
    assert all(
        secret not in (r.post_data or "")
        for r in visitor.requests
        if r.method == "POST" and r.url.endswith("/api/events")
    )
    assert_no_duplicates(rows)


def test_tagged_clicks_outbound_links_downloads_and_custom_events(
    visitor: Visitor, live_server: str
) -> None:
    # No network beyond loopback: answer the outside site ourselves.
    visitor.page.route(
        OUTBOUND_URL, lambda route: route.fulfill(body="<p>elsewhere</p>", content_type="text/html")
    )
    visitor.open("/demo/")
    wait_for(lambda r: named(r, "pageview"))
    visitor.page.click("[data-track=newsletter]")
    visitor.page.evaluate("window.analytics.track('signup', {plan: 'pro', seats: 3})")
    with visitor.page.expect_download():
        visitor.page.click("#download-link")
    rows = wait_for(lambda r: named(r, "download") and named(r, "signup"))
    visitor.page.click("#outbound-link")
    visitor.page.wait_for_url(OUTBOUND_URL)
    rows = wait_for(lambda r: named(r, "outbound"))

    [newsletter] = named(rows, "newsletter")
    assert own_props(newsletter) == {"placement": "home"}
    assert [own_props(row) for row in named(rows, "signup")] == [{"plan": "pro", "seats": 3}]
    assert [own_props(row) for row in named(rows, "download")] == [
        {"url": f"{live_server}/demo/files/{GUIDE_NAME}"}
    ]
    assert [own_props(row) for row in named(rows, "outbound")] == [{"url": OUTBOUND_URL}]
    assert {row["path"] for row in rows} == {"/demo/"}
    assert_no_duplicates(rows)


def without_age(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "age"}


def test_closing_the_tab_sends_what_is_still_queued(visitor: Visitor) -> None:
    visitor.open("/demo/")
    wait_for(lambda r: named(r, "pageview"))
    # Queued, and the tab closes long before the one-second batch timer: only the page-hide
    # beacon can deliver it.
    visitor.page.evaluate("window.analytics.track('last_words')")
    visitor.leave()
    rows = wait_for(lambda r: named(r, "last_words"))
    assert len(named(rows, "last_words")) == 1
    assert_no_duplicates(rows)


def test_a_failed_batch_is_sent_again_and_stored_once(visitor: Visitor) -> None:
    answers: list[int] = []

    def flaky(route) -> None:
        # The first batch reaches the server, but the answer the tab gets is a 503: it must
        # resend, and the server must not store the resent events twice.
        response = route.fetch()
        if not answers:
            answers.append(503)
            route.fulfill(status=503, body="{}", content_type="application/json")
        else:
            answers.append(response.status)
            route.fulfill(response=response)

    visitor.page.route("**/api/events", flaky)
    visitor.open("/demo/results")
    rows = wait_for(lambda r: len(named(r, "impression")) >= 10)
    deadline = time.monotonic() + 12
    while len(answers) < 2 and time.monotonic() < deadline:
        pause(0.2)
    batches = visitor.batches()
    assert answers[:2] == [503, 202]
    assert [without_age(e) for e in batches[0]] == [without_age(e) for e in batches[1]], (
        "the retry resends the same events, with the same eids and ts (only their age grew)"
    )
    rows = stored()
    assert len(named(rows, "pageview")) == 1
    assert len(named(rows, "impression")) == 10
    assert_no_duplicates(rows)


DNT_IN_PAGE = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
GPC_IN_PAGE = (
    "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
)
PRIVACY_CASES = {
    # (script run in every page, extra request headers, whether the tracker sends anything)
    "navigator.doNotTrack": (DNT_IN_PAGE, None, False),
    "navigator.globalPrivacyControl": (GPC_IN_PAGE, None, False),
    "DNT set in the browser (page and header)": (DNT_IN_PAGE, {"DNT": "1"}, False),
    # Only the headers (a tracker that ignored the rule): the server stores nothing.
    "DNT header only": (None, {"DNT": "1"}, True),
    "Sec-GPC header only": (None, {"Sec-GPC": "1"}, True),
}


@pytest.mark.parametrize("case", list(PRIVACY_CASES))
def test_nothing_is_stored_with_do_not_track_or_gpc(browser, live_server: str, case: str) -> None:
    in_page, headers, tracker_sends = PRIVACY_CASES[case]
    ctx = browser.new_context(
        user_agent=DESKTOP_CHROME,
        viewport={"width": 1280, "height": 500},
        extra_http_headers=headers,
    )
    try:
        if in_page:
            ctx.add_init_script(in_page)
        tab = Visitor(ctx, live_server)
        # Playwright adds extra headers to the page's own requests but not to beacons sent while
        # a page unloads (a real browser adds DNT to those too), so each page here is left with
        # an empty queue: everything goes out by fetch, with the headers.
        tab.open("/demo/")
        tab.page.click("[data-track=newsletter]")
        tab.page.evaluate("window.analytics.track('custom', {a: 1})")  # exists, does not throw
        pause(1.5)
        tab.open("/demo/results")
        tab.scroll_to(1.0)
        tab.page.click(f"[data-track-item='{LIST_IDS[0]}'] p")
        pause(1.5)
        tab.leave()
        pause(0.5)
        assert tab.errors == []
        assert bool(tab.batches()) is tracker_sends
        assert stored() == []
        with db.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(EventError)).scalar() == 0
    finally:
        ctx.close()


def custom_page(tab: Visitor, path: str, attributes: str, body: str) -> None:
    """Serve a page of our own at the app's origin that loads the real tracker."""
    html = (
        f'<!doctype html><html><head><script defer src="{tab.base}/tracker.js" {attributes}>'
        f"</script></head><body>{body}</body></html>"
    )
    tab.page.route(
        tab.base + path, lambda route: route.fulfill(body=html, content_type="text/html")
    )
    tab.open(path)


def test_a_site_may_opt_out_of_the_browser_privacy_rule(
    browser, live_server: str, make_site
) -> None:
    make_site(public_id="optout")
    ctx = browser.new_context(user_agent=DESKTOP_CHROME)
    try:
        ctx.add_init_script(
            "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
        )
        tab = Visitor(ctx, live_server)
        custom_page(
            tab, "/custom/optout", 'data-site="optout" data-respect-dnt="false"', "<p>x</p>"
        )
        rows = wait_for(lambda r: named(r, "pageview"), public_id="optout")
        assert [row["path"] for row in rows] == ["/custom/optout"]
    finally:
        ctx.close()


def test_every_automatic_feature_can_be_switched_off(
    visitor: Visitor, make_site, live_server: str
) -> None:
    make_site(public_id="quiet")
    switches = " ".join(
        f'data-{name}="false"'
        for name in ("auto-pageview", "clicks", "outbound", "downloads", "scroll", "forms", "lists")
    )
    items = "".join(f'<li data-track-item="i{n}">item {n}</li>' for n in range(1, 4))
    body = (
        f'<ul data-track-list="quiet">{items}</ul>'
        '<button data-track="pressed" data-track-x="1">press</button>'
        '<a id="out" href="https://www.example.org/x">out</a>'
        '<a id="file" href="/demo/files/benefits-guide.pdf">file</a>'
        '<form id="f" action="/custom/quiet" onsubmit="return false"><button id="go">go</button>'
        '</form><div style="height:4000px"></div>'
    )
    custom_page(visitor, "/custom/quiet", f'data-site="quiet" {switches}', body)
    visitor.page.route("https://www.example.org/**", lambda route: route.abort())
    visitor.page.click("li[data-track-item=i2]")
    visitor.page.click("[data-track=pressed]")
    visitor.page.click("#go")
    visitor.page.evaluate(
        "document.getElementById('out').addEventListener('click', e => e.preventDefault());"
        "document.getElementById('file').addEventListener('click', e => e.preventDefault())"
    )
    visitor.page.click("#out")
    visitor.page.click("#file")
    visitor.page.evaluate("history.pushState({}, '', '/custom/quiet/next')")
    visitor.scroll_to(1.0)
    visitor.page.evaluate("window.analytics.track('only_this')")
    rows = wait_for(lambda r: named(r, "only_this"), public_id="quiet")
    pause(1.2)
    rows = stored("quiet")
    assert [row["name"] for row in rows] == ["only_this"]


def test_a_hostile_page_gets_no_error_and_keeps_its_own_analytics(
    visitor: Visitor, make_site
) -> None:
    make_site(public_id="hostile")
    # Storage that throws (as in a sandboxed frame or with storage blocked), another product's
    # window.analytics, and odd markup: an item outside any list, an empty data-track, an SVG.
    visitor.page.add_init_script(
        "Object.defineProperty(window, 'sessionStorage', {get() { throw new Error('blocked') }});"
        "window.analytics = {calls: [], track(name) { this.calls.push(name) }};"
    )
    body = (
        '<div data-track-item="orphan" id="orphan">orphan item</div>'
        '<button data-track="" id="empty">empty name</button>'
        '<a data-track="icon" href="#x" id="icon"><svg width="40" height="40">'
        '<circle id="dot" cx="20" cy="20" r="15"/></svg></a>'
        '<ul data-track-list="l"><li data-track-item="a">a</li></ul>'
    )
    custom_page(visitor, "/custom/hostile", 'data-site="hostile"', body)
    for selector in ("#orphan", "#empty", "#dot", "li"):
        visitor.page.click(selector)
    visitor.page.evaluate("window.analytics.track('theirs')")
    rows = wait_for(lambda r: named(r, "icon") and named(r, "item_click"), public_id="hostile")

    assert visitor.page.evaluate("window.analytics.calls") == ["theirs"]
    assert {row["name"] for row in rows} == {"pageview", "impression", "icon", "item_click"}
    assert len({row["session_id"] for row in rows}) == 1  # a session per page load instead
    assert "theirs" not in {row["name"] for row in rows}


def test_a_very_long_address_still_counts(visitor: Visitor) -> None:
    visitor.open("/demo/article?utm_source=news&ref=" + "x" * 3000)
    rows = wait_for(lambda r: named(r, "pageview"))
    assert [(row["path"], row["name"]) for row in rows] == [("/demo/article", "pageview")]


# --- outages and wrong clocks (issue 11) -------------------------------------------------------

# What a visitor's computer with a wrong clock looks like to a page: Date and timeOrigin shifted,
# performance.now() (a monotonic clock since the page began) not. `__skip` moves that monotonic
# clock on, as if the tab had waited that long.
CLOCK_SCRIPT = """(() => {
  const shift = %d, origin = performance.timeOrigin + shift, now = Date.now, pnow =
    performance.now.bind(performance);
  window.__skip = 0;
  Object.defineProperty(Performance.prototype, "timeOrigin", {get: () => origin});
  Date.now = () => now() + shift;
  performance.now = () => pnow() + window.__skip;
})()"""


def occurred(public_id: str = "demo") -> list[tuple[str, Any]]:
    with db.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(Event.name, Event.occurred_at)
                .join(Site, Site.id == Event.site_id)
                .where(Site.public_id == public_id)
            )
        )


@pytest.mark.parametrize("hours", [1, -1])
def test_a_visitor_clock_an_hour_off_still_dates_events_right(
    context, live_server: str, hours: int
) -> None:
    """An hour ahead, every event used to be refused as in the future; an hour behind, filed an
    hour early. The tracker sends each event's age and the server dates it by its own clock."""
    context.add_init_script(CLOCK_SCRIPT % (hours * 3600 * 1000))
    tab = Visitor(context, live_server)
    tab.open("/demo/results")
    rows = wait_for(lambda r: len(named(r, "impression")) >= 10)
    assert named(rows, "pageview"), rows
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    times = [moment for _, moment in occurred()]
    assert all(abs(moment - now) < dt.timedelta(seconds=40) for moment in times), times
    assert tab.errors == []


def test_an_outage_across_a_navigation_loses_nothing_and_stores_nothing_twice(
    app, visitor: Visitor
) -> None:
    """The analytics server answers 503 (Retry-After: 2) to every event post, beacons included,
    while the visitor reads a page, opens another one, and goes on; then it comes back. Every
    event of both pages is stored, once."""
    down = {"on": True}
    tries: list[float] = []
    serve = app.wsgi_app

    def outage(environ, start_response):
        if down["on"] and environ["PATH_INFO"] == "/api/events":
            tries.append(time.monotonic())
            start_response("503 Service Unavailable", [("Retry-After", "2")])
            return [b"{}"]
        return serve(environ, start_response)

    app.wsgi_app = outage
    visitor.open("/demo/results")
    pause(1.5)
    visitor.page.evaluate("window.analytics.track('during_outage', {n: 1})")
    pause(3)
    visitor.page.click(f"[data-track-item='{LIST_IDS[0]}'] a")  # a navigation, mid-outage
    visitor.page.wait_for_url("**/demo/benefits/*")
    pause(3.5)
    assert stored() == [] and len(tries) >= 3
    queued = visitor.page.evaluate("JSON.parse(sessionStorage.analytics).q.length")
    assert queued >= 14, "the first page's events were carried over to the second"
    gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    # Backoff and Retry-After honoured, not a retry storm. One gap may be shorter: the old page's
    # beacon as it goes (sent whatever the backoff: its last chance) and the new page's first
    # send, its 1 s timer after its page view; how far apart depends on when Chromium fires
    # pagehide (0.83 s once, on a loaded machine).
    assert sorted(gaps)[1] > 0.9 and min(gaps) > 0.5, f"a retry storm: {gaps}"

    down["on"] = False
    rows = wait_for(
        lambda r: len(named(r, "pageview")) >= 2 and len(named(r, "impression")) >= 10,
        timeout=20,
    )
    assert [row["path"] for row in named(rows, "pageview")] == [
        "/demo/results",
        f"/demo/benefits/{LIST_IDS[0]}",
    ]
    assert len(named(rows, "impression")) == 10
    assert len(named(rows, "during_outage")) == 1
    assert len(named(rows, "item_click")) == 1
    assert_no_duplicates(rows)
    pause(1.5)
    assert visitor.page.evaluate("JSON.parse(sessionStorage.analytics).q.length") == 0


def test_the_queue_is_capped_and_gives_up_after_ten_minutes(context, live_server: str) -> None:
    """Past 500 unsent events the oldest go first; an event unsent for 10 minutes goes too.
    Both are counted in the tab's storage (`d`)."""
    context.add_init_script(CLOCK_SCRIPT % 0)
    tab = Visitor(context, live_server)
    tab.page.route("**/api/events", lambda route: route.abort())
    tab.open("/demo/")
    tab.page.evaluate("for (let i = 0; i < 520; i++) window.analytics.track('burst', {i: i})")
    state = tab.page.evaluate("JSON.parse(sessionStorage.analytics)")
    assert len(state["q"]) == 500
    assert state["d"] == 21, "the page view and the first 20 of the burst were dropped"
    assert [e["props"]["i"] for e in state["q"][:2]] == [20, 21]
    tab.page.evaluate("window.__skip = 601000; window.analytics.track('late')")
    state = tab.page.evaluate("JSON.parse(sessionStorage.analytics)")
    assert [e["name"] for e in state["q"]] == ["late"]
    assert state["d"] == 521
    assert tab.errors == []


def test_a_429_is_honoured_like_a_503(app, visitor: Visitor) -> None:
    """Over the per-client limit (INGEST_RATE_LIMIT), the server answers 429 with Retry-After;
    the tracker waits that long, then sends the same events again."""
    tries: list[float] = []
    serve = app.wsgi_app

    def limited(environ, start_response):
        if environ["PATH_INFO"] == "/api/events" and len(tries) < 2:
            tries.append(time.monotonic())
            origin = environ.get("HTTP_ORIGIN", "*")
            start_response("429 Too Many Requests", [
                ("Retry-After", "3"), ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Expose-Headers", "Retry-After"),
            ])  # fmt: skip
            return [b'{"error": "rate limit"}']
        if environ["PATH_INFO"] == "/api/events":
            tries.append(time.monotonic())
        return serve(environ, start_response)

    app.wsgi_app = limited
    visitor.open("/demo/")
    rows = wait_for(lambda r: named(r, "pageview"), timeout=20)
    assert len(named(rows, "pageview")) == 1
    assert_no_duplicates(rows)
    assert tries[1] - tries[0] >= 2.9 and tries[2] - tries[1] >= 2.9, tries
