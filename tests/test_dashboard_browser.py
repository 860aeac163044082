"""The dashboards in a real headless Chromium: log in, every page draws its charts (SVG, not just
HTML), a CSV link downloads the chart's numbers, and a hostile event name is text everywhere."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from analytics.ingest.writer import event_row, store_events
from tests.accounts import PASSWORD, make_user
from tests.test_dashboard import XSS, week
from tests.test_stats import START, seed_lists, seed_traffic

pytestmark = pytest.mark.browser

DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.fixture
def app_config(database_url: str) -> dict[str, Any]:
    return {"WTF_CSRF_ENABLED": True}  # the real login form, with its token


def test_dashboards_draw_their_charts_and_download_csv(app, site, make_site, live_server, browser):
    seed_traffic(site, make_site(name="Other"))
    seed_lists(site)
    store_events(
        [
            event_row(
                site_id=site.id,
                occurred_at=START,
                source="api",
                name=XSS,
                category=XSS,
                path=XSS,
                item_id=XSS,
                item_position=3,
                list_size=10,
                props={XSS: XSS},
            ),
            event_row(
                site_id=site.id,
                occurred_at=START,
                source="tracker",
                name="impression",
                item_id=XSS,
                item_position=3,
                list_size=10,
            ),
        ],
        [],
    )
    make_user("viewer@example.org", "viewer")
    query = "?" + urlencode(week(site))

    context = browser.new_context(
        accept_downloads=True, user_agent=DESKTOP_CHROME, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    dialogs: list[str] = []
    problems: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    elsewhere: list[str] = []  # no asset, map or font from another host: no CDN
    page.on(
        "request",
        lambda req: None if req.url.startswith(live_server) else elsewhere.append(req.url),
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))

    page.goto(live_server + "/overview" + query)
    assert "/login" in page.url
    page.fill("input[name=email]", "viewer@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview?*")

    xss_path = "/actions/" + quote(XSS, safe="")
    for path in ("/overview", "/actions", "/lists", "/actions/signup", xss_path):
        page.goto(live_server + path + query)
        charts = page.locator("script[data-chart], script[data-map]").count()
        assert charts > 0, path
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}"
        )
        assert page.locator(".js-plotly-plot").count() == charts, path

    # The overview's numbers are the seeded ones, drawn as well as written.
    page.goto(live_server + "/overview" + query)
    assert page.inner_text('[data-metric="pageviews"] .value') == "7"
    page.wait_for_selector("#chart-timeseries .main-svg")
    assert page.locator("#chart-timeseries .scatterlayer .trace").count() == 2
    # The countries map: the countries without visitors in one grey trace, one per country with
    # visitors (France and Belgium in the seed), drawn from the app's own world.json.
    page.wait_for_selector("#chart-countries_map .main-svg")
    assert page.locator("#chart-countries_map .scatterlayer .trace").count() == 1 + 2

    # The hostile name is plain text in tables, headings, the legend, the item picker.
    page.goto(live_server + "/actions" + query)
    page.wait_for_selector("#chart-events_over_time .main-svg")
    assert page.get_by_role("link", name=XSS).count() == 1
    legend = page.locator("#chart-events_over_time .legendtext").all_text_contents()
    assert XSS in legend, legend
    page.get_by_role("link", name=XSS).click()
    assert page.inner_text("h1 .event-name") == XSS
    page.goto(live_server + "/lists" + query)
    assert XSS in page.inner_text("#card-behaviour")
    with page.expect_navigation():  # the picker applies itself
        page.select_option("select[name=item]", XSS)
    page.wait_for_selector("#chart-heatmap .main-svg")
    assert page.inner_text("#card-heatmap h2").endswith(XSS)
    for path in ("/events", "/overview"):  # the explorer shows it too
        page.goto(live_server + path + query)
        page.wait_for_load_state("load")

    # A CSV link gives the chart's numbers as a file.
    page.goto(live_server + "/overview" + query)
    with page.expect_download() as download_info:
        page.click('#card-pages a[data-csv="pages"]')
    download = download_info.value
    assert download.suggested_filename.endswith(".csv") and "pages" in download.suggested_filename
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert sum(int(r["pageviews"]) for r in rows) == 7
    assert {r["path"] for r in rows} == {"/", "/blog", "/pricing"}

    assert dialogs == [], "a script ran"
    assert problems == [], problems
    assert elsewhere == [], elsewhere
    context.close()


def test_clicking_a_referrer_filters_the_overview_and_the_chip_removes_it(
    app, site, make_site, live_server, browser
):
    """Click "social.example" in Referrers: a chip shows, visitors drop to that referrer's 1;
    click the chip: the filter is gone and the numbers are back. A bar click filters too."""
    seed_traffic(site, make_site(name="Other"))
    make_user("viewer@example.org", "viewer")
    viewport = {"width": 1280, "height": 900}
    context = browser.new_context(user_agent=DESKTOP_CHROME, viewport=viewport)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.goto(live_server + "/overview?" + urlencode(week(site)))
    page.fill("input[name=email]", "viewer@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview?*")

    def visitors() -> str:
        return page.inner_text('.kpi[data-metric="visitors"] .value')

    assert visitors() == "4"
    assert page.locator("#filter-chips").count() == 0
    page.click('#card-referrers a.filter:text-is("social.example")')
    page.wait_for_url("**referrer=social.example*")
    chip = page.locator('#filter-chips a.chip[data-filter="referrer"]')
    assert "referrer is social.example" in chip.inner_text()
    assert visitors() == "1"  # v1, whose visit s3 came from social.example
    assert page.locator("#card-referrers tbody tr").count() == 1
    chip.click()
    page.wait_for_function("() => !location.search.includes('referrer=')")
    assert page.locator("#filter-chips").count() == 0
    assert visitors() == "4"

    # A bar of the browsers chart filters on its label (static JS, no inline script).
    page.wait_for_selector("#chart-browsers .bars path, #chart-browsers svg .point path")
    page.locator("#chart-browsers .point path").first.click(force=True)
    page.wait_for_url("**browser=*")
    assert page.locator('#filter-chips a.chip[data-filter="browser"]').count() == 1
    assert problems == []
    context.close()
