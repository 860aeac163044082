"""Realistic demo traffic for a site, so that the dashboards can be seen full.

Visits follow a daily and weekly rhythm with slow growth; each has a source (search, social, a
newsletter with UTM tags, or none), a device, a few page views with scrolls, clicks and forms.
Visits that reach the results page see a list of benefits: impressions and item clicks from the
tracker (lower positions get more clicks) and, as the benefits simulator sends them, records of the
17 event types. Some visits come from the old `/track` demo client (load / scroll / click) and
some events from the Django collector. `load` writes them through the single write path;
on PostgreSQL `demo_copy` writes the same events with COPY. Days are generated oldest first.
`simulator_funnel` gives the demo site the goals and the funnel these visits go through.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .extensions import db
from .goals import create_funnel, create_goal, funnel_named, goal_named
from .ingest.legacy.benefits import CURRENT_VERSION, EVENT_TYPES
from .ingest.writer import event_row, insert_events
from .models import Site, utcnow

BATCH = 5000

# (browser, os, device, weight): families as ua-parser names them.
AGENTS = [
    ("Chrome", "Windows", "desktop", 30),
    ("Mobile Safari", "iOS", "mobile", 20),
    ("Chrome Mobile", "Android", "mobile", 17),
    ("Safari", "Mac OS X", "desktop", 9),
    ("Edge", "Windows", "desktop", 7),
    ("Firefox", "Windows", "desktop", 5),
    ("Firefox", "Linux", "desktop", 3),
    ("Chrome", "Mac OS X", "desktop", 4),
    ("Mobile Safari", "iOS", "tablet", 3),
    ("Samsung Internet", "Android", "mobile", 2),
]
# (country, weight): a French public service's audience, overseas departments included (they have
# ISO codes of their own); None as from a private address.
COUNTRIES: list[tuple[str | None, int]] = [
    ("FR", 78), ("RE", 4), ("BE", 3), ("GP", 2), ("MQ", 2), ("CH", 2), ("MA", 2), ("DZ", 1),
    ("CA", 1), ("DE", 1), ("ES", 1), ("GB", 1), ("GF", 1), (None, 1),
]  # fmt: skip
# (referrer, utm (source, medium, campaign) or None, weight)
SOURCES: list[tuple[str | None, tuple[str, str, str] | None, int]] = [
    (None, None, 34),
    ("https://www.google.com/", None, 30),
    ("https://duckduckgo.com/", None, 5),
    ("https://www.bing.com/", None, 3),
    ("https://www.facebook.com/", None, 5),
    ("https://t.co/", None, 3),
    ("https://www.service-public.fr/particuliers/vosdroits", None, 6),
    (None, ("newsletter", "email", "spring-2026"), 6),
    (None, ("newsletter", "email", "winter-2026"), 3),
    ("https://www.facebook.com/", ("facebook", "social", "aides-logement"), 3),
    ("https://www.google.com/", ("google", "cpc", "simulateur"), 2),
]
LANDINGS = [("/", 45), ("/simulation", 20), ("/blog/aides-au-logement", 12), ("/aides/rsa", 8),
            ("/aides/apl", 7), ("/blog/prime-activite", 5), ("/contact", 3)]  # fmt: skip
NEXT_PAGES = {
    "/": [("/simulation", 55), ("/blog/aides-au-logement", 15), ("/a-propos", 10), ("/contact", 5)],
    "/simulation": [("/simulation/resultats", 80), ("/", 10)],
    "/simulation/resultats": [("/aides/{item}", 70), ("/simulation", 15), ("/contact", 5)],
    "/aides/rsa": [("/simulation", 50), ("/simulation/resultats", 20)],
    "/aides/apl": [("/simulation", 50), ("/simulation/resultats", 20)],
    "/blog/aides-au-logement": [("/simulation", 40), ("/blog/prime-activite", 20), ("/", 10)],
    "/blog/prime-activite": [("/simulation", 40), ("/", 15)],
    "/contact": [("/", 30)],
    "/a-propos": [("/contact", 30), ("/simulation", 30)],
}
BENEFITS = ["rsa", "apl", "prime-activite", "als", "aah", "css", "ars", "paje", "asf", "cmg",
            "bourse-lycee", "aspa", "pass-sport", "cheque-energie"]  # fmt: skip
# How strongly each benefit draws clicks and how often it ranks high (the same on every run).
APPEAL = {
    item: 0.55 + 0.9 * ((i * 5) % len(BENEFITS)) / len(BENEFITS) for i, item in enumerate(BENEFITS)
}
ACTION_TYPES = [t for t in EVENT_TYPES if t not in ("show", "showDetails")]
TELESERVICE_RATE = 0.35  # of the benefit pages opened from the results
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 9, 8, 8, 9, 9, 8, 7, 7, 7, 6, 5, 3, 2]
WEEKDAY_WEIGHTS = [10, 10, 10, 9, 8, 5, 4]  # Monday .. Sunday


def _pick(rng: random.Random, options: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(options, weights=[o[-1] for o in options])[0]


# Builds one stored row from (site_id, occurred_at, name, fields): `event_dict` for the write
# path, or a COPY line (analytics/demo_copy.py). Every generated event goes through one of them.
MakeRow = Callable[[int, dt.datetime, str, dict[str, Any]], Any]


def event_dict(site_id: int, at: dt.datetime, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A row for the single write path (`insert_events`)."""
    return event_row(site_id=site_id, occurred_at=at, received_at=at, name=name, **fields)


class _Visit:
    """One visit being generated: its clock moves forward with every event."""

    def __init__(
        self, rng: random.Random, site_id: int, start: dt.datetime, source: str, make: MakeRow
    ):
        self.rng, self.site_id, self.at, self.source, self.make = rng, site_id, start, source, make
        self.rows: list[tuple[dt.datetime, Any]] = []  # (occurred_at, row)
        self.session = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        self.visitor = f"{rng.getrandbits(128):032x}"
        self.browser, self.os, self.device, _ = _pick(rng, AGENTS)
        # From a generator of its own, so that adding countries changed no other demo figure.
        self.country = _pick(random.Random(self.visitor), COUNTRIES)[0]

    def wait(self, low: float, high: float) -> None:
        self.at += dt.timedelta(seconds=self.rng.uniform(low, high))

    def add(self, name: str, **fields: Any) -> None:
        """Record an event now; `fields` override the visit's own (source, ids, agent)."""
        own = {
            "source": self.source,
            "session_id": self.session,
            "visitor_id": self.visitor,
            "browser": self.browser,
            "os": self.os,
            "device": self.device,
            "country": self.country,
        }
        self.rows.append((self.at, self.make(self.site_id, self.at, name, own | fields)))


def _results_list(visit: _Visit, path: str) -> str | None:
    """Impressions, clicks and benefits records for one results page; returns the opened item."""
    rng = visit.rng
    size = rng.randint(6, 12)
    # A weighted shuffle: more appealing benefits tend to be ranked higher.
    shown = sorted(BENEFITS, key=lambda b: -(rng.random() ** (1 / APPEAL[b])))[:size]
    seen = size if rng.random() < 0.5 else rng.randint(3, size)  # the rest stayed below the fold
    recorder = rng.random() < 0.6  # the benefits simulator records these pages too
    # The recorder identifies people its own way (hash_id), not with our visitor ids.
    record = {
        "source": "benefits",
        "session_id": None,
        "visitor_id": f"{rng.getrandbits(64):016x}",
        "schema_version": CURRENT_VERSION,  # as the recorder stores a record without `version`
        **dict.fromkeys(("browser", "os", "device")),  # it sends no user agent
    }
    for position, item in enumerate(shown[:seen], start=1):
        fields = {"item_id": item, "item_position": position, "list_size": size}
        visit.add("impression", path=path, category="results", **fields)
        if recorder:
            visit.add("show", **record, **fields)
    # Lower positions are opened more: about 30% at the top, falling with the position.
    for position, item in enumerate(shown[:seen], start=1):
        if rng.random() < 0.30 * APPEAL[item] / position**0.75:
            fields = {"item_id": item, "item_position": position, "list_size": size}
            visit.wait(4, 40)
            visit.add("item_click", path=path, category="results", **fields)
            if recorder:
                visit.add("showDetails", **record, **fields)
                for action in ACTION_TYPES:
                    if rng.random() < 0.07:
                        visit.wait(5, 60)
                        visit.add(action, **record, **fields)
            return item
    return None


Known = dict[dt.date, list[tuple[str, tuple[str, str, str]]]]


def _tracker_visit(
    rng: random.Random, site_id: int, start: dt.datetime, known: Known, make: MakeRow
) -> list[tuple[dt.datetime, Any]]:
    visit = _Visit(rng, site_id, start, "tracker", make)
    # A third of the visits are by someone seen earlier the same day (the visitor id lives a day).
    today = known.setdefault(start.date(), [])
    if today and rng.random() < 0.33:
        visit.visitor, (visit.browser, visit.os, visit.device) = rng.choice(today)
    else:
        today.append((visit.visitor, (visit.browser, visit.os, visit.device)))
    referrer, utm, _ = _pick(rng, SOURCES)
    utm_fields = dict(zip(("utm_source", "utm_medium", "utm_campaign"), utm or (), strict=False))
    path = _pick(rng, LANDINGS)[0]
    pages = min(1 + int(rng.expovariate(0.55)), 9)
    details_of = None  # the benefit whose page this is, when opened from the results list
    for n in range(pages):
        extra = {"referrer": referrer, **utm_fields} if n == 0 else {}
        screen = 390 if visit.device == "mobile" else 1440
        visit.add("pageview", path=path, props={"screen": screen}, **extra)
        for depth in (25, 50, 75, 100):
            if rng.random() > 0.5:
                break
            visit.wait(3, 25)
            visit.add("scroll", path=path, props={"depth": depth})
        opened = None
        if path == "/simulation/resultats":
            opened = _results_list(visit, path)
        elif path in ("/simulation", "/contact") and rng.random() < 0.45:
            visit.wait(20, 120)
            form = "simulation" if path == "/simulation" else "contact"
            visit.add("form_submit", path=path, category="forms", props={"form": form})
        elif details_of is not None and rng.random() < TELESERVICE_RATE:
            # The online service of a benefit opened from the results: the Simulator funnel's
            # last step (demo site).
            visit.wait(10, 90)
            visit.add("teleservice", path=path, category="benefits", item_id=details_of)
        elif path.startswith("/aides/") and rng.random() < 0.2:
            visit.add("download", path=path, props={"url": f"{path}/notice.pdf"})
        elif path.startswith("/blog/") and rng.random() < 0.15:
            visit.add("outbound", path=path, props={"url": "https://www.caf.fr/"})
        if rng.random() < 0.06:
            plan = rng.choice(["newsletter", "newsletter", "alerts"])
            visit.add("signup", path=path, category="conversion", props={"list": plan})
        choices = NEXT_PAGES.get(path if not path.startswith("/aides/") else "/aides/rsa")
        if not choices or n == pages - 1:
            break
        path = _pick(rng, choices)[0].format(item=opened or rng.choice(BENEFITS[:4]))
        details_of = opened if opened is not None and path == f"/aides/{opened}" else None
        visit.wait(8, 150)
    return visit.rows


def _legacy_visit(
    rng: random.Random, site_id: int, start: dt.datetime, make: MakeRow
) -> list[tuple[dt.datetime, Any]]:
    """The old FastAPI demo client (`/track`) or the Django collector."""
    if rng.random() < 0.7:
        visit = _Visit(rng, site_id, start, "track", make)
        visit.session = str(uuid.UUID(int=rng.getrandbits(128)))
        page = rng.choice(["/", "/demo", "/demo/page-2"])
        order = 0
        for name in [
            "load",
            *rng.choices(["scroll", "click"], weights=[3, 2], k=rng.randint(0, 6)),
        ]:
            visit.add(name, path=page, visitor_id=None, props={"order": order, "_v": 1})
            order += 1
            visit.wait(1, 30)
        return visit.rows
    visit = _Visit(rng, site_id, start, "collector", make)
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(["button_click", "video_play", "faq_open"])
        visit.add(name, visitor_id=None, category="page interaction",
                  props={"data": {"element": rng.choice(["hero", "footer", "faq-3"])}})  # fmt: skip
        visit.wait(2, 40)
    return visit.rows


def _days(now: dt.datetime, days: int) -> Iterator[tuple[dt.datetime, list[float]]]:
    """Each day of the window, oldest first, with the weight of each of its 24 hours.

    The window is the last `days` days up to half an hour ago (partial hours weigh their part).
    More recent days are a little busier (up to 35%), weekdays more than weekends.
    """
    low, high = now - dt.timedelta(days=days), now - dt.timedelta(minutes=30)
    day = dt.datetime.combine(low.date(), dt.time())
    while day < high:
        age = (now - day) / dt.timedelta(days=1)
        weight = (1 - 0.35 * min(age, days) / days) * WEEKDAY_WEIGHTS[day.weekday()] / 10
        hours = []
        for hour, hour_weight in enumerate(HOUR_WEIGHTS):
            begin = day + dt.timedelta(hours=hour)
            open_part = min(high, begin + dt.timedelta(hours=1)) - max(low, begin)
            hours.append(weight * hour_weight * max(open_part / dt.timedelta(hours=1), 0))
        yield day, hours
        day += dt.timedelta(days=1)


def _start(
    rng: random.Random, now: dt.datetime, days: int, day: dt.datetime, hours: list[float]
) -> dt.datetime:
    """A visit's start on `day`, at an hour drawn by its weight, inside the window."""
    low, high = now - dt.timedelta(days=days), now - dt.timedelta(minutes=30)
    while True:
        hour = rng.choices(range(24), weights=hours)[0]
        start = day + dt.timedelta(hours=hour, seconds=rng.random() * 3600)
        if low <= start < high:
            return start


def generate(
    site_id: int,
    days: int,
    events: int,
    *,
    now: dt.datetime | None = None,
    seed: int | None = None,
    make: MakeRow = event_dict,
) -> Iterator[Any]:
    """Yield exactly `events` rows (built by `make`) over the last `days` days, none in future.

    Day by day, oldest first, each day's rows in time order (as real traffic arrives, so tables
    and their indexes fill in time order): each day gets its share of `events` by its weight.
    """
    rng = random.Random(seed)
    now = now or utcnow()
    window = list(_days(now, days))
    total = sum(sum(hours) for _, hours in window)
    made, share = 0, 0.0
    for day, hours in window:
        share += sum(hours)
        budget = round(events * share / total) - made
        rows: list[tuple[dt.datetime, Any]] = []
        known: Known = {}  # the day's visitors: a visitor id lives one day
        while len(rows) < budget:
            start = _start(rng, now, days, day, hours)
            if rng.random() < 0.06:
                visit = _legacy_visit(rng, site_id, start, make)
            else:
                visit = _tracker_visit(rng, site_id, start, known, make)
            rows.extend(r for r in visit if r[0] < now)
        del rows[budget:]
        rows.sort(key=_time)
        made += len(rows)
        for _, row in rows:
            yield row


def _time(row: tuple[dt.datetime, Any]) -> dt.datetime:
    return row[0]


def load(
    site_id: int,
    days: int,
    events: int,
    *,
    seed: int | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Generate and store demo events in batches of BATCH; return how many were stored."""
    stored = 0
    batch: list[dict[str, Any]] = []
    for row in generate(site_id, days, events, now=now, seed=seed):
        batch.append(row)
        if len(batch) == BATCH:
            stored += _write(batch, progress)
            batch = []
    if batch:
        stored += _write(batch, progress)
    return stored


def _write(batch: list[dict[str, Any]], progress: Callable[[int], None] | None) -> int:
    with db.engine.begin() as conn:
        stored = insert_events(conn, batch)
    if progress is not None:
        progress(len(batch))
    return stored


# (name, kind, definition): the goals of the demo's Simulator funnel, in its order.
SIMULATOR_GOALS: list[tuple[str, str, dict[str, str]]] = [
    ("Home", "page", {"path": "/"}),
    ("Simulation", "page", {"path": "/simulation"}),
    ("Results", "page", {"path": "/simulation/resultats"}),
    ("Benefit details", "page", {"path": "/aides/*"}),
    ("Teleservice", "benefit", {"event_name": "teleservice", "item_id": "*"}),
]
SIMULATOR = "Simulator"


def simulator_funnel(site: Site) -> None:
    """Give a demo site the Simulator funnel (home, simulation, results, a benefit's page, its
    online service) and its goals; what already exists is kept as it is."""
    for name, kind, definition in SIMULATOR_GOALS:
        if goal_named(site.id, name) is None:
            create_goal(site, name, kind, **definition)
    if funnel_named(site.id, SIMULATOR) is None:
        create_funnel(site, SIMULATOR, [name for name, _, _ in SIMULATOR_GOALS])
