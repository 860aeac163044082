"""Managing sites: create, change origins, and the script tag a site owner pastes."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import DEFAULT_RETENTION_MONTHS, Site


class InvalidInput(ValueError):
    """Bad input to a management function; the message is meant for the person who typed it."""


def normalise_origin(value: str) -> str:
    """'https://Example.org/path' -> 'https://example.org'; refuse anything without a host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"not an origin (expected https://host[:port]): {value!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def new_public_id() -> str:
    return secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


def create_site(
    name: str,
    origins: list[str] | tuple[str, ...] = (),
    public_id: str | None = None,
    retention_months: int = DEFAULT_RETENTION_MONTHS,
) -> Site:
    """Create and commit a site; its public id is random unless given."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a site name is 1 to 200 characters")
    site = Site(
        name=name,
        public_id=public_id or new_public_id(),
        origins=[normalise_origin(o) for o in origins],
        retention_months=check_retention(retention_months),
    )
    if db.session.execute(select(Site.id).where(Site.public_id == site.public_id)).first():
        raise InvalidInput(f"a site with public id {site.public_id!r} already exists")
    db.session.add(site)
    db.session.commit()
    return site


MAX_RETENTION_MONTHS = 1200  # a hundred years: "keep everything", in practice


def check_retention(months: object) -> int:
    """A retention period in whole months, 1 to 1200."""
    try:
        value = int(str(months).strip())
    except ValueError:
        raise InvalidInput("the retention is a whole number of months") from None
    if not 1 <= value <= MAX_RETENTION_MONTHS:
        raise InvalidInput(f"the retention is 1 to {MAX_RETENTION_MONTHS} months")
    return value


def set_retention(site: Site, months: object) -> Site:
    site.retention_months = check_retention(months)
    db.session.commit()
    return site


def set_origins(site: Site, origins: list[str]) -> Site:
    site.origins = [normalise_origin(o) for o in origins if o.strip()]
    db.session.commit()
    return site


def script_tag(site: Site, base_url: str) -> str:
    """The one line a site owner pastes into their pages."""
    return (
        f'<script defer src="{base_url.rstrip("/")}/tracker.js" '
        f'data-site="{site.public_id}"></script>'
    )


def get_or_create_site(public_id: str, name: str) -> Site:
    """Return the site with this public id, creating it if needed (safe when two workers race)."""
    found = db.session.execute(select(Site).where(Site.public_id == public_id)).scalar_one_or_none()
    if found is not None:
        return found
    db.session.add(Site(public_id=public_id, name=name, origins=[]))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another worker created it first
    return db.session.execute(select(Site).where(Site.public_id == public_id)).scalar_one()


def enable_sharing(site: Site) -> str:
    """Give the site a new read-only share token (replacing any old one) and return it."""
    site.share_token = secrets.token_urlsafe(24)
    db.session.commit()
    return site.share_token


def disable_sharing(site: Site) -> None:
    """Revoke the share link: the old token stops working at once."""
    site.share_token = None
    db.session.commit()
