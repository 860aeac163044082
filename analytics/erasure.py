"""The right to erasure: `flask --app wsgi forget ID [--site SITE]` removes everything about one
person, found by an id that person can hand over.

The ids a person can know are the ones their own device or the old clients made: a tracker
session id (`sessionStorage.analytics`, stored as `events.session_id`), a benefits-recorder
`hash_id` (stored as `events.visitor_id`), a collector or `/track` session id (`session_id`).
Our own visitor ids are hashes under a salt that is gone the next day: nobody can hand one over,
and nobody can map one back to a person.

`forget` removes, in one transaction: the events with that session or visitor id, the rollups'
raw copies of them (`rollup_span_events`), and the rejected payloads (`event_errors`) that carry
the id as a JSON string value anywhere or, for bodies that were not JSON, as a substring. The
deletion queues the days it touched (the rollup trigger), and `forget` recounts them at once, so
the dashboards equal a recount from the remaining events when it returns.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field

from sqlalchemy import String, cast, delete, func, or_, select

from .extensions import db
from .models import Event, EventError, RollupPresence, RollupSpanEvent, Site
from .rollups.refresh import refresh
from .rollups.store import as_date

MIN_ID_LENGTH = 6  # shorter ids would match too much in free text


class InvalidId(ValueError):
    """An id too short or too long to erase by."""


@dataclass
class Erasure:
    events: int = 0
    span_events: int = 0
    presence: int = 0
    errors: int = 0
    days: list[tuple[int, dt.date]] = field(default_factory=list)
    recounted: bool = False


def _like_literal(text: str) -> str:
    """`text` for LIKE, its wildcards escaped (with backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches_event(model, person: str):
    return or_(model.session_id == person, model.visitor_id == person)


def forget(person: str, site_id: int | None = None, wait: float = 120.0) -> Erasure:
    """Erase everything stored about the person with this id (see the module's docstring)."""
    person = person.strip()
    if not MIN_ID_LENGTH <= len(person) <= 200:
        raise InvalidId(f"an id to erase is {MIN_ID_LENGTH} to 200 characters")
    done = Erasure()
    where = [_matches_event(Event, person)]
    if site_id is not None:
        where.append(Event.site_id == site_id)
    day_of = func.date(Event.occurred_at)
    done.days = sorted(
        (s, as_date(d))
        for s, d in db.session.execute(
            select(Event.site_id, day_of).where(*where).group_by(Event.site_id, day_of)
        )
    )
    done.events = db.session.execute(delete(Event).where(*where)).rowcount

    span_where = [_matches_event(RollupSpanEvent, person)]
    presence_where = [RollupPresence.key == person]
    error_where = [
        or_(
            cast(EventError.payload, String).like(
                "%" + _like_literal(json.dumps(person, ensure_ascii=False)) + "%", escape="\\"
            ),
            EventError.raw_body.like("%" + _like_literal(person) + "%", escape="\\"),
        )
    ]
    if site_id is not None:
        span_where.append(RollupSpanEvent.site_id == site_id)
        presence_where.append(RollupPresence.site_id == site_id)
        error_where.append(or_(EventError.site_id == site_id, EventError.site_id.is_(None)))
    done.span_events = db.session.execute(delete(RollupSpanEvent).where(*span_where)).rowcount
    done.presence = db.session.execute(delete(RollupPresence).where(*presence_where)).rowcount
    done.errors = db.session.execute(delete(EventError).where(*error_where)).rowcount
    db.session.commit()

    # Recount the days now (the deletion queued them): wait for a refresher that is busy.
    deadline = time.monotonic() + wait
    for site in sorted({s for s, _ in done.days}):
        while refresh(site_id=site, max_rounds=50) < 0:
            if time.monotonic() > deadline:
                return done  # queued: the refresher will recount them
            time.sleep(0.5)
    done.recounted = True
    return done


def site_id_of(public_id: str) -> int | None:
    return db.session.execute(select(Site.id).where(Site.public_id == public_id)).scalar()
