"""`POST /api/events`: parse a body into validated event rows, store them, say what happened."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, current_app
from pydantic import ValidationError

from ..models import utcnow
from ..throttle import ingest_allowed
from .country import country_of
from .payload import field_errors, parse_clean
from .request import RequestMeta
from .schema import EventIn
from .sites import SiteRef, find_site
from .useragent import Agent, parse_agent
from .visitor import visitor_id
from .writer import error_row, event_row, record_errors, store_events

ENDPOINT = "/api/events"


@dataclass
class Outcome:
    """The answer to give: HTTP status, JSON body, and whether the Origin may read it (every
    answer but a refusal of that origin: an allowed origin always can)."""

    status: int
    body: dict[str, Any]
    allow_origin: bool = False
    retry_after: int | None = None  # seconds, for a 429


def describe(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors -> [{"field": "item.position", "message": "..."}]."""
    return [{"field": loc, "message": msg} for loc, msg in field_errors(exc)]


@lru_cache(maxsize=1024)  # a batch repeats its page, and a site its popular pages
def page_fields(url: str | None, path: str | None, referrer: str | None) -> dict[str, Any]:
    """Keep the path and utm_* of a URL; drop its query otherwise (it may hold personal data).

    The dict is shared by every caller of the same page: copy it, never change it.
    """
    fields: dict[str, Any] = {"path": path}
    if url:
        parts = urlsplit(url)
        fields["path"] = (parts.path or "/")[:1024]
        if "utm_" in parts.query:  # parsed only when it can hold them (most URLs do not)
            query = parse_qs(parts.query)
            for key in ("utm_source", "utm_medium", "utm_campaign"):
                if key in query:
                    fields[key] = query[key][0][:100]
    if referrer:
        ref = urlsplit(referrer)
        fields["referrer"] = f"{ref.scheme}://{ref.netloc}{ref.path}"[:1024] if ref.netloc else None
    return fields


def event_fields(event: EventIn) -> dict[str, Any]:
    """The `events` columns an event carries itself (the importer uses these too)."""
    props = dict(event.props or {})
    if event.screen is not None:
        props["screen"] = event.screen
    if event.lang:
        props["lang"] = event.lang
    item = event.item
    return {
        "name": event.name,
        "category": event.category,
        "session_id": event.session,
        "item_id": item.id if item else None,
        "item_position": item.position if item else None,
        "list_size": item.list_size if item else None,
        "dedupe_key": event.eid,
        "props": props or None,
        **page_fields(event.url, event.path, event.referrer),
    }


def _row(
    event: EventIn,
    site: SiteRef,
    visitor: str,
    agent: Agent,
    now: dt.datetime,
    country: str | None,
) -> dict[str, Any]:
    return event_row(
        site_id=site.id,
        source="tracker" if event.session else "api",
        occurred_at=event.ts or now,
        received_at=now,
        visitor_id=visitor,
        browser=agent.browser,
        os=agent.os,
        device=agent.device,
        country=country,
        **event_fields(event),
    )


def _check(
    app: Flask,
    item: Any,
    meta: RequestMeta,
    context: dict[str, Any],
    sites: dict[str, SiteRef | None],
) -> tuple[EventIn | None, SiteRef | None, list[dict[str, str]]]:
    """Validate one item: (event, its site, []) when it may be stored, else the problems.

    `sites` holds the sites this request has looked up (a batch names the same one throughout).
    A refused Origin is reported on the field "origin" (the request header at fault).
    """
    try:
        event = EventIn.model_validate(item, context=context)
    except ValidationError as exc:
        return None, None, describe(exc)
    if event.site in sites:
        site = sites[event.site]
    else:
        site = sites[event.site] = find_site(app, event.site)
    if site is None:
        return event, None, [{"field": "site", "message": f"unknown site id {event.site!r}"}]
    if not site.allows_origin(meta.origin):
        message = f"{meta.origin!r} is not allowed to send events for this site"
        return event, site, [{"field": "origin", "message": message}]
    return event, site, []


def _over_limit(rows: list[dict[str, Any]], visitors: dict[int, str], limit: int) -> Outcome | None:
    """A 429 when this request takes its client past INGEST_RATE_LIMIT events a minute on one
    of its sites (nothing of it is stored: the tracker keeps the events and comes back after
    Retry-After); the first refusal of a minute is recorded in event_errors, not each one."""
    per_site: dict[int, int] = {}
    for row in rows:
        per_site[row["site_id"]] = per_site.get(row["site_id"], 0) + 1
    for site_id, events in per_site.items():
        allowed, retry, crossed = ingest_allowed(site_id, visitors[site_id], events, limit)
        if allowed:
            continue
        reason = f"rate limit: over {limit} events a minute from one client; retry in {retry} s"
        if crossed:
            record_errors([error_row(ENDPOINT, reason, payload=None, site_id=site_id)])
        return Outcome(429, {"error": reason}, allow_origin=True, retry_after=retry)
    return None


def ingest(body: bytes, meta: RequestMeta) -> Outcome:
    """Validate every event in the body; store the valid ones and record the others."""
    if meta.opted_out:
        return Outcome(
            200,
            {
                "accepted": 0,
                "stored": False,
                "reason": "Do-Not-Track or Global Privacy Control is on: nothing was stored",
            },
            allow_origin=True,
        )
    agent = parse_agent(meta.user_agent)
    if agent.is_bot:
        return Outcome(
            202,
            {"accepted": 0, "stored": False, "reason": "bot user agent ignored"},
            allow_origin=True,
        )
    try:
        data = parse_clean(body)
    except ValueError as exc:
        reason = f"body is not valid JSON: {exc}"
        record_errors([error_row(ENDPOINT, reason, raw=body)])
        return Outcome(400, {"error": reason}, allow_origin=True)

    # The app itself, read through its proxy once: each read of `current_app` costs about
    # half a microsecond, and a single event read it half a dozen times.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list):
        reason = "body must be an event object or an array of events"
        record_errors([error_row(ENDPOINT, reason, payload=data)])
        return Outcome(400, {"error": reason}, allow_origin=True)
    if len(items) > config["MAX_BATCH_EVENTS"]:
        reason = f"batch of {len(items)} events is over the limit of {config['MAX_BATCH_EVENTS']}"
        record_errors([error_row(ENDPOINT, reason, payload=None, raw=body)])
        return Outcome(413, {"error": reason}, allow_origin=True)

    now = utcnow()
    context = {
        "now": now,
        "max_age": dt.timedelta(days=config["MAX_EVENT_AGE_DAYS"]),
        "max_future": dt.timedelta(seconds=config["MAX_EVENT_FUTURE_SECONDS"]),
    }
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    visitors: dict[int, str] = {}  # one hash per site in a request, not one per event
    sites: dict[str, SiteRef | None] = {}
    country = country_of(app, meta.ip) if items else None  # once per request too
    for index, item in enumerate(items):
        event, site, problems = _check(app, item, meta, context, sites)
        if not problems:
            visitor = visitors.get(site.id)
            if visitor is None:
                visitor = visitors[site.id] = visitor_id(app, site.id, meta.ip, meta.user_agent)
            rows.append(_row(event, site, visitor, agent, now, country))
            continue
        reason = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        errors.append(error_row(ENDPOINT, reason, payload=item, site_id=site and site.id))
        rejected.append({"index": index, "errors": problems})

    limit = config["INGEST_RATE_LIMIT"]
    if limit and rows:
        refused = _over_limit(rows, visitors, limit)
        if refused is not None:
            return refused
    stored = store_events(rows, errors)
    answer: dict[str, Any] = {"accepted": len(rows)}
    if stored != len(rows):
        answer["duplicates"] = len(rows) - stored
    if not rejected:
        return Outcome(202, answer, allow_origin=True)
    answer["rejected"] = rejected
    if rows:
        return Outcome(202, answer, allow_origin=True)
    first = rejected[0]["errors"][0]
    answer["error"] = (
        f"{first['field']}: {first['message']}" if single else "every event was rejected"
    )
    # Every answer is readable by the page that asked (so the tracker sees a 4xx as final and
    # stops resending), except a refusal of the page's own origin.
    origin_refused = all(p["field"] == "origin" for r in rejected for p in r["errors"])
    return Outcome(403 if origin_refused else 400, answer, allow_origin=not origin_refused)
