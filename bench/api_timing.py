"""The stats API timed against the page and the CSV that show the same numbers (issue 14: "the
API answers within 10 % of the page that shows the same numbers"). Part of the dashboards suite:
each size's server is timed here right after the pages.

For each endpoint and period, GETs go round robin (page, CSV, API, page, ...) so that a busy
moment of a shared machine slows all three alike; the ratio compares medians.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import requests

from analytics.tokens import create_token, find_user
from bench.report import Table, median, ms

# (what, API path and its own parameters, the CSV of the same numbers)
ENDPOINTS = [
    ("summary", "/api/v1/stats/summary", {}, "/csv/summary.csv"),
    ("timeseries", "/api/v1/stats/timeseries", {}, "/csv/timeseries.csv"),
    ("breakdown by=path", "/api/v1/stats/breakdown", {"by": "path"}, "/csv/pages.csv"),
]
PAGE = "/overview"  # the page that shows all three
PERIODS = ("30d", "12m")
TARGET = 1.10  # API / page, medians
Times = dict[tuple[str, str], dict[str, float]]


def make_token(email: str) -> str:
    """A token for the bench's user (inside an app context)."""
    return create_token(find_user(email).id, "bench")[1]


def _get(session: requests.Session, url: str, headers: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    response = session.get(url, headers=headers, allow_redirects=False)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
    return elapsed


def measure(
    base: str, login: tuple[str, str], public_id: str, token: str, n: int, warm_ups: int
) -> Times:
    """(endpoint, period) -> median seconds of the page, the CSV and the API."""
    session = requests.Session()
    email, password = login
    session.post(f"{base}/login", data={"email": email, "password": password}).raise_for_status()
    bearer = {"Authorization": f"Bearer {token}"}
    api = requests.Session()  # no cookie: a token only
    found: Times = {}
    for what, path, own, csv in ENDPOINTS:
        for period in PERIODS:
            scope = {"site": public_id, "period": period}
            urls: dict[str, tuple[requests.Session, str, dict[str, str] | None]] = {
                "page": (session, f"{base}{PAGE}?{urlencode(scope)}", None),
                "csv": (session, f"{base}{csv}?{urlencode(scope)}", None),
                "api": (api, f"{base}{path}?{urlencode({**scope, **own})}", bearer),
            }
            times: dict[str, list[float]] = {kind: [] for kind in urls}
            for i in range(warm_ups + n):
                for kind, (client, url, headers) in urls.items():
                    elapsed = _get(client, url, headers)
                    if i >= warm_ups:
                        times[kind].append(elapsed)
            found[what, period] = {kind: median(values) for kind, values in times.items()}
    api.close()
    session.close()
    return found


def table(timings: dict[int, Times], n: int, warm_ups: int) -> Table:
    """API against page and CSV per size; the target applies at the largest size."""
    sizes = sorted(timings)
    top = sizes[-1]
    out = Table(
        f"Stats API against the Overview and the CSV of the same numbers, ms (medians of {n} "
        f"GETs after {warm_ups} warm-ups, round robin)",
        [
            "endpoint",
            "period",
            *[f"{s:,} events: page / CSV / API (API/page, API/CSV)" for s in sizes],
            f"target at {top:,}: API <= {TARGET:.2f}x page",
        ],
    )
    for key in timings[top]:
        cells = []
        for size in sizes:
            t = timings[size][key]
            cells.append(
                f"{ms(t['page'])} / {ms(t['csv'])} / {ms(t['api'])} "
                f"({t['api'] / t['page']:.2f}x, {t['api'] / t['csv']:.2f}x)"
            )
        ratio = timings[top][key]["api"] / timings[top][key]["page"]
        verdict = out.target(f"API {key[0]} {key[1]}: {ratio:.2f}x page", ratio <= TARGET)
        out.add(*key, *cells, verdict)
    out.notes.append(
        "The Overview computes every card; an API call computes one of them, as the CSV of that "
        "card does (API/CSV near 1.0 means the API adds nothing of its own: token check, JSON). "
        "Each time is a whole GET, body included, as the pages' times are."
    )
    return out
