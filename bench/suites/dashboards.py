"""Dashboard pages and the recorder's read endpoints under gunicorn, on 100 k to 10 M events.

For each size the main site gets that many demo events over 13 months (and two small sites a
few more), loaded by COPY and timed against a bare COPY; then `settle`, then the app is served as
`make run` serves it, every page is fetched once, and then each is timed: p50 and p95 of
`--requests` GETs after 2 warm-ups.
The pages include a funnel of 4 steps over 30 days (target: p95 <= 1 s at 10 M events), and the
Overview's Goals card, which the page fetches apart (30 days: the same target).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import requests
import sqlalchemy as sa

from analytics.demo_data import simulator_funnel
from analytics.extensions import db
from analytics.goals import create_funnel
from analytics.models import Funnel, Site, utcnow
from analytics.users import create_user
from bench import api_timing
from bench.database import drop_database
from bench.loading import load, refresh_cost, reopen, settle
from bench.report import Table, count, median, ms, percentile
from bench.serving import ROOT, THREADS, served

NAME = "analytics_bench_dashboards"


def database_name(size: int) -> str:
    """One database per size: a run of another size (without --keep, which drops its database
    at the end) once loaded over, then dropped, the 10 M database a --keep run had kept."""
    return f"{NAME}_{size}"


EMAIL, PASSWORD = "bench@example.org", "measured-twice-cut-once"
PAGES = [
    ("Overview", "/overview"),
    ("Actions", "/actions"),
    ("One event (pageview)", "/actions/pageview"),
    ("Benefits/lists", "/lists"),
    ("Explorer, first page", "/events"),
]
PERIODS = ("today", "30d", "12m")
# The segments issue's filters: one value each (split counts), visit-level, event-level and the
# two added dimensions; then several values, a negation and two dimensions at once (visit rows);
# and a negated event-level filter, which only raw events answer.
FILTERS = (
    "referrer=www.google.com", "path=/simulation", "country=FR", "device=mobile",
    "country=FR,BE", "referrer=!www.google.com", "country=FR&device=mobile", "path=!/simulation",
    "path=/simulation,/simulation/resultats", "name=!pageview",
    "referrer=www.google.com&path=/simulation", "item=rsa,apl", "item=!rsa", "prop.screen=390",
)  # fmt: skip
FILTERED = "Overview, filtered "
# The funnel page of a 4-step funnel (the demo's Simulator without its home page) over 30 days.
FUNNEL_STEPS = ["Simulation", "Results", "Benefit details", "Teleservice"]
FUNNEL = "Funnel, 4 steps (/funnels/<id>)"
FUNNEL_NAME = "Bench, 4 steps"
# The Overview's Goals card, fetched apart by the page (5 goals: the demo's Simulator's).
GOALS = "Goals card (/overview/goals)"
WARM_UPS = 2
LOAD_TARGET = 100_000  # rows/s
# p95 targets (ms) at the largest size: (page or endpoint, period) -> limit
OVERVIEW_30D, PAGE_30D, PAGE_12M, API, FILTERED_30D, LIVE = 150, 300, 500, 200, 1000, 100
FUNNEL_30D = 1000


def _times(session: requests.Session, url: str, n: int, warm_ups: int = WARM_UPS) -> list[float]:
    times = []
    for i in range(warm_ups + n):
        started = time.perf_counter()
        response = session.get(url, allow_redirects=False)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
        if i >= warm_ups:
            times.append(elapsed)
    return times


def _urls(public_id: str, funnel_id: int) -> list[tuple[tuple[str, str], str]]:
    """(label, period) and the path of every page and endpoint timed, in the order timed."""
    site = f"site={public_id}"
    found = [
        ((label, period), f"{path}?{site}&period={period}")
        for label, path in PAGES
        for period in PERIODS
    ]
    found += [((FILTERED + q, "30d"), f"/overview?{site}&period=30d&{q}") for q in FILTERS]
    found.append(((FUNNEL, "30d"), f"/funnels/{funnel_id}?{site}&period=30d"))
    found += [((GOALS, p), f"/overview/goals?{site}&period={p}") for p in PERIODS]
    found.append((("Live (/live.json)", "now"), f"/live.json?{site}"))
    start_at = (utcnow() - dt.timedelta(days=30)).date().isoformat()
    found.append((("GET /statistics", "-"), "/statistics"))
    found.append((("GET /benefits?start_at", "-"), f"/benefits?start_at={start_at}"))
    return found


def _measure(
    base: str, public_id: str, n: int, funnel_id: int
) -> dict[tuple[str, str], tuple[float, float]]:
    """(label, period) -> (p50, p95) seconds, for every page and period and both endpoints.

    Every URL is fetched once before any is timed: the first pages timed otherwise paid for
    reading the rollups into a cold cache (a server just started, a database just loaded)
    that every later page then shared: the Overview, timed first, measured 162/203 ms in a run
    where it measured 91/95 ms once warm (0a7f9a2, 10 M events).
    """
    session = requests.Session()
    login = session.post(f"{base}/login", data={"email": EMAIL, "password": PASSWORD})
    login.raise_for_status()
    urls = _urls(public_id, funnel_id)
    for _, path in urls:
        _times(session, base + path, 0, warm_ups=1)
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for key, path in urls:
        times = _times(session, base + path, n)
        found[key] = (median(times), percentile(times, 95))
    session.close()
    return found


def _funnel(site_id: int) -> int:
    """The demo's Simulator goals on the main site, and a funnel of 4 of them: its id."""
    site = db.session.get(Site, site_id)
    kept = db.session.execute(
        sa.select(Funnel.id).where(Funnel.site_id == site_id, Funnel.name == FUNNEL_NAME)
    ).scalar()
    if kept is not None:  # a kept database (--reuse) has them already
        return kept
    simulator_funnel(site)
    return create_funnel(site, FUNNEL_NAME, FUNNEL_STEPS).id


def _one_size(size: int, args: argparse.Namespace) -> tuple[dict, dict]:
    rounds = args.load_rounds if size <= 1_000_000 else 1
    try:
        loaded = reopen(database_name(size)) if args.reuse else None
        reused = loaded is not None
        if loaded is None:
            loaded = load(database_name(size), size, rounds, days=args.days)
        catch_up = settle(loaded.app)
        # 2,000 more events today: not again on a kept database, or it would grow each run
        cost = None if reused else refresh_cost(loaded.app, loaded.site_id)
        with loaded.app.app_context():
            if not reused:
                create_user(EMAIL, PASSWORD, "viewer")
            token = api_timing.make_token(EMAIL)
            funnel_id = _funnel(loaded.site_id)
            db.session.remove()
            db.engine.dispose()
        env = dict(
            os.environ,
            DATABASE_URL=loaded.url,
            SECRET_KEY="bench",
            LEGACY_SITE=loaded.public_id,
            PYTHONPATH=str(ROOT),
        )
        with served("bench.served_app:app", env) as base:
            timings = _measure(base, loaded.public_id, args.requests, funnel_id)
            api_times = api_timing.measure(
                base, (EMAIL, PASSWORD), loaded.public_id, token, args.requests, WARM_UPS
            )
    finally:
        if not args.keep:
            drop_database(database_name(size))
    rates = {
        "api": api_times,
        "rounds": 0 if reused else rounds,
        "load": median(loaded.load_rates) if loaded.load_rates else None,
        "bare": median(loaded.bare_rates) if loaded.bare_rates else None,
        "catch_up": catch_up,
        "refresh": cost,
    }
    return timings, rates


def _limit(label: str, period: str) -> int | None:
    if period == "-":
        return API
    if period == "now":
        return LIVE
    if label == FUNNEL or (label == GOALS and period == "30d"):
        return FUNNEL_30D
    if label == GOALS:
        return None
    if label.startswith(FILTERED):
        return FILTERED_30D
    if period == "30d":
        return OVERVIEW_30D if label == "Overview" else PAGE_30D
    return PAGE_12M if period == "12m" else None


def run(args: argparse.Namespace) -> list[Table]:
    sizes = args.sizes
    timings: dict[int, dict] = {}
    rates: dict[int, dict] = {}
    for size in sizes:
        print(f"dashboards: loading and measuring {size:,} events ...", flush=True)
        timings[size], rates[size] = _one_size(size, args)

    top, low = max(sizes), min(sizes)
    loading = Table(
        "Loading demo data by COPY (generation included) against a bare COPY",
        [
            "events",
            "rounds",
            "loader rows/s (median)",
            "bare COPY rows/s (median)",
            "ratio",
            f"target >= {LOAD_TARGET:,} rows/s",
            "rollups built in",
            "refresh after 1,000 new events today: partial / whole day",
        ],
    )
    for size in sizes:
        r = rates[size]
        if r["load"] is None:  # --reuse: nothing was loaded
            loading.add(f"{size:,}", "reused", "-", "-", "-", "-", f"{r['catch_up']:.1f} s", "-")
            continue
        cell = loading.target(f"load rate at {size:,}", r["load"] >= LOAD_TARGET)
        loading.add(
            f"{size:,}",
            r["rounds"],
            count(r["load"]),
            count(r["bare"]),
            f"{r['load'] / r['bare']:.2f}x",
            cell,
            f"{r['catch_up']:.1f} s ({count(size / r['catch_up'])} events/s)",
            f"{ms(r['refresh'].partial)} / {ms(r['refresh'].whole)} ms "
            f"(today: {r['refresh'].day_events:,} events)",
        )
    loading.notes.append(
        "The bare COPY writes min(size, 1,000,000) pre-built rows into an empty database "
        "of the same schema, in the same run. 'Rollups built in': the refresh that follows the "
        "load (every day it queued), before any page is timed. 'Refresh after 1,000 new events': "
        "one refresh round (month sums included) recounting what the new rows touch, against "
        "one recounting all of today, as every round did before the partial recount."
    )

    pages = Table(
        f"Dashboard response times, ms (p50 / p95 of {args.requests} GETs after {WARM_UPS} "
        f"warm-ups, once every page has been fetched; gunicorn 2 workers x {THREADS} threads)",
        ["page", "period", *[f"{s:,} events" for s in sizes], f"target at {top:,} (p95)"],
    )
    for key in timings[top]:
        label, period = key
        cells = [f"{ms(timings[s][key][0])} / {ms(timings[s][key][1])}" for s in sizes]
        p95 = timings[top][key][1]
        limit = _limit(label, period)
        if limit is None:
            verdict = "-"
        else:
            ok = p95 * 1000 <= limit
            what = f"<= {limit} ms"
            if label == "Overview" and period == "30d" and low != top:
                ratio = p95 / timings[low][key][1]
                ok = ok and ratio <= 1.5
                what += f", <= 1.5x at {low:,} ({ratio:.2f}x)"
            verdict = f"{what}: " + pages.target(f"{label} {period} p95 {what}", ok)
        pages.add(label, period, *cells, verdict)
    pages.notes.append(
        f"The main site holds the events over {args.days} days; two small sites hold 1 % each over "
        f"{min(90, args.days)} days. "
        "`/statistics` and `/benefits` read the main site (LEGACY_SITE); `today`/`30d`/`12m` are "
        "the `period` of the pages."
    )
    api = api_timing.table({s: rates[s]["api"] for s in sizes}, args.requests, WARM_UPS)
    return [loading, pages, api]
