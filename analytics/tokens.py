"""API tokens for the stats API: create (shown once), authenticate, revoke, list.

A token is `an_` followed by 32 random bytes in URL-safe base64. Only its SHA-256 is stored: 32
random bytes cannot be guessed, so a slow password hash would buy nothing and cost every request
one. A token does what its user's role allows (both roles read every site's stats today), and
stops working when revoked or when its user is deleted (the row goes with the user).

Authentication reads the primary database even inside a request served from a read replica, so
a token works as soon as it is created and stops as soon as it is revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from .extensions import db
from .models import ApiToken, User, utcnow
from .sites import InvalidInput

PREFIX = "an_"
SHOWN_CHARS = 10  # characters of a token kept to name it in lists: "an_" and 7 random ones
MAX_TOKEN_LENGTH = 100  # anything longer is not one of ours; not even hashed
MAX_NAME_LENGTH = 100
DEFAULT_NAME = "API token"
# A token's last use is written at most this often: a busy client must not cost a write per call.
USE_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Owner:
    """Who a valid token speaks for: plain values, read once per request."""

    token_id: int
    user_id: int
    email: str
    role: str


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def find_user(email: str) -> User:
    """The user with this email (case-insensitive), or InvalidInput."""
    user = db.session.execute(
        select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        raise InvalidInput(f"no user {email.strip().lower()!r}")
    return user


def create_token(user_id: int, name: str = DEFAULT_NAME) -> tuple[ApiToken, str]:
    """Create and commit a token for the user: its row, and the token itself (never stored)."""
    name = " ".join(name.split()) or DEFAULT_NAME
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a token's name is at most {MAX_NAME_LENGTH} characters")
    if db.session.get(User, user_id) is None:
        raise InvalidInput("no such user")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id, name=name, prefix=token[:SHOWN_CHARS], token_hash=hash_token(token)
    )
    db.session.add(row)
    db.session.commit()
    return row, token


def authenticate(token: str, now: dt.datetime | None = None) -> Owner | None:
    """The owner of a valid, unrevoked token of an existing user; None for anything else.

    The lookup is by the hash, on its unique index; the stored hash is then compared in
    constant time. The last use is written when the stored one is a minute old or more.
    """
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(token)
    primary = {"bind": db.engine}  # never a replica: see the module's docstring
    row = db.session.execute(
        select(
            ApiToken.id,
            ApiToken.token_hash,
            ApiToken.revoked_at,
            ApiToken.last_used_at,
            User.id,
            User.email,
            User.role,
        )
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest),
        bind_arguments=primary,
    ).first()
    if row is None:
        return None
    token_id, stored, revoked_at, last_used_at, user_id, email, role = row
    if not hmac.compare_digest(stored, digest) or revoked_at is not None:
        return None
    now = now or utcnow()
    if last_used_at is None or last_used_at <= now - USE_RESOLUTION:
        # Conditional, so that concurrent requests of one client write once between them.
        db.session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                or_(
                    ApiToken.last_used_at.is_(None),
                    ApiToken.last_used_at <= now - USE_RESOLUTION,
                ),
            )
            .values(last_used_at=now),
            bind_arguments=primary,
        )
        db.session.commit()
    return Owner(token_id, user_id, email, role)


def revoke_token(token_id: int, acting_user_id: int, acting_is_admin: bool) -> ApiToken:
    """Revoke a token: one's own, or anyone's for an admin. Revoking twice keeps the first time."""
    found = db.session.get(ApiToken, token_id)
    if found is None or (found.user_id != acting_user_id and not acting_is_admin):
        raise InvalidInput("no such token")
    if found.revoked_at is None:
        found.revoked_at = utcnow()
        db.session.commit()
    return found


def tokens_of(user_id: int) -> list[ApiToken]:
    """A user's tokens, newest first, revoked ones included."""
    return list(
        db.session.execute(
            select(ApiToken)
            .where(ApiToken.user_id == user_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        ).scalars()
    )


def every_token() -> list[tuple[ApiToken, str]]:
    """Every user's tokens with their owner's email (for admins), newest first."""
    rows = db.session.execute(
        select(ApiToken, User.email)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [(token, email) for token, email in rows]
