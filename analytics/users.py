"""Dashboard accounts: creation and password checks (scrypt via werkzeug)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .models import ROLES, User, utcnow
from .sites import InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


def create_user(email: str, password: str, role: str = "admin") -> User:
    """Create and commit a user; the password is stored only as a salted scrypt hash."""
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise InvalidInput(f"not an email address: {email!r}")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password needs at least {MIN_PASSWORD} characters")
    if db.session.execute(select(User.id).where(User.email == email)).first():
        raise InvalidInput(f"a user {email} already exists")
    user = User(email=email, password_hash=generate_password_hash(password, "scrypt"), role=role)
    db.session.add(user)
    db.session.commit()
    return user


def create_first_admin(email: str, password: str) -> User:
    """Create the first admin, only while no user exists, even when two set-ups race.

    Both racers may insert; after committing, the one that is not the oldest user removes itself
    and is refused. Checked after the fact, this needs no table lock, on either database.
    """
    if user_count() > 0:
        raise InvalidInput("an admin already exists: log in instead")
    user = create_user(email, password, "admin")
    first = db.session.execute(select(func.min(User.id))).scalar_one()
    if user.id != first:
        db.session.delete(user)
        db.session.commit()
        raise InvalidInput("an admin already exists: log in instead")
    return user


def authenticate(email: str, password: str) -> User | None:
    """Return the user when the password matches, and note the time of the login."""
    user = db.session.execute(
        select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()
    if user is None or not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def user_count() -> int:
    return db.session.execute(select(func.count(User.id))).scalar_one()


def delete_user(user_id: int, acting_user_id: int) -> None:
    """Delete another user (never yourself, so at least one admin always remains)."""
    if user_id == acting_user_id:
        raise InvalidInput("you cannot delete your own account")
    user = db.session.get(User, user_id)
    if user is None:
        raise InvalidInput("no such user")
    db.session.delete(user)
    db.session.commit()
