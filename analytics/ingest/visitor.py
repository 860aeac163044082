"""Visitor ids without storing IP addresses: a keyed hash under a salt that lives one day.

The salt is kept in the database (so several app nodes agree) and yesterday's is deleted when
today's is made, after which nobody, us included, can link an id back to an address or to the
same person's id of another day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading

from flask import Flask
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import DailySalt, utcnow

_lock = threading.Lock()


def _salt_for(app: Flask, day: dt.date) -> str:
    cache = app.extensions.setdefault("analytics.salt", {})
    salt = cache.get(day)
    if salt is not None:
        return salt
    with _lock:
        salt = cache.get(day)
        if salt is None:
            salt = _load_or_create(day)
            cache.clear()
            cache[day] = salt
    return salt


def _load_or_create(day: dt.date) -> str:
    with db.engine.begin() as conn:
        salt = conn.execute(select(DailySalt.salt).where(DailySalt.day == day)).scalar()
    if salt is not None:
        return salt
    try:
        with db.engine.begin() as conn:
            conn.execute(DailySalt.__table__.insert().values(day=day, salt=secrets.token_hex(32)))
            conn.execute(delete(DailySalt).where(DailySalt.day < day))
    except IntegrityError:
        pass  # another worker made today's salt first; use theirs
    with db.engine.begin() as conn:
        return conn.execute(select(DailySalt.salt).where(DailySalt.day == day)).scalar_one()


def visitor_id(app: Flask, site_id: int, ip: str | None, user_agent: str | None) -> str:
    """Return a 32-hex-digit id, stable for one visitor on one site for one UTC day."""
    salt = _salt_for(app, utcnow().date())
    return visitor_hash(bytes.fromhex(salt), site_id, ip, user_agent)


def visitor_hash(key: bytes, site_id: int, ip: str | None, user_agent: str | None) -> str:
    """The id itself: a keyed BLAKE2b of site, address and user agent under the day's salt."""
    material = f"{site_id}\x1f{ip or ''}\x1f{user_agent or ''}".encode()
    return hashlib.blake2b(material, key=key, digest_size=16).hexdigest()
