"""Which site the legacy contracts write to: their payloads name none.

`LEGACY_SITE` (a site's public id) chooses it; when empty, a site with public id `legacy` named
"Legacy clients" is used, created on first use. The id is cached per app, so the look-up costs
one query per process, not one per event.
"""

from __future__ import annotations

from flask import Flask

from ...sites import get_or_create_site

DEFAULT_PUBLIC_ID = "legacy"
DEFAULT_NAME = "Legacy clients"
_CACHE = "analytics.legacy_site"


def legacy_public_id(app: Flask) -> str:
    return (app.config.get("LEGACY_SITE") or "").strip() or DEFAULT_PUBLIC_ID


def legacy_site_id(app: Flask) -> int:
    """Return the legacy site's id, creating the site when it does not exist yet (race-safe)."""
    public_id = legacy_public_id(app)
    cached = app.extensions.get(_CACHE)
    if cached is not None and cached[0] == public_id:
        return cached[1]
    site = get_or_create_site(public_id, DEFAULT_NAME)
    app.extensions[_CACHE] = (public_id, site.id)
    return site.id
