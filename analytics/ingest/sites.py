"""Site look-up for the ingest path, cached per app for a few seconds to spare a query per event."""

from __future__ import annotations

import time
from typing import NamedTuple

from flask import Flask
from sqlalchemy import select

from ..extensions import db
from ..models import Site

CACHE_SECONDS = 30.0
MISS_SECONDS = 5.0  # short, so a site created a moment ago is found soon


class SiteRef(NamedTuple):
    id: int
    public_id: str
    origins: tuple[str, ...]

    def allows_origin(self, origin: str | None) -> bool:
        """A request with no Origin (server-to-server) or a site with no list is allowed."""
        if not origin or not self.origins:
            return True
        return origin.rstrip("/") in self.origins


def find_site(app: Flask, public_id: str) -> SiteRef | None:
    """Return the site with this public id, or None; misses are cached too (unknown ids flood)."""
    cache: dict[str, tuple[float, SiteRef | None]] = app.extensions.setdefault(
        "analytics.sites", {}
    )
    now = time.monotonic()
    hit = cache.get(public_id)
    if hit is not None and now - hit[0] < (CACHE_SECONDS if hit[1] else MISS_SECONDS):
        return hit[1]
    with db.engine.connect() as conn:
        row = conn.execute(
            select(Site.id, Site.public_id, Site.origins).where(Site.public_id == public_id)
        ).first()
    ref = None
    if row is not None:
        ref = SiteRef(row.id, row.public_id, tuple(o.rstrip("/") for o in (row.origins or [])))
    if len(cache) > 10_000:
        cache.clear()
    cache[public_id] = (now, ref)
    return ref


def forget_sites(app: Flask) -> None:
    """Drop the cache after sites change in this process (settings page, CLI)."""
    app.extensions.pop("analytics.sites", None)
