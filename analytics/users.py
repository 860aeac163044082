"""Dashboard accounts: creation, password rules and checks (scrypt via werkzeug), and the
changes that end a user's sessions (a new password, a new role)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .models import ROLES, User, utcnow
from .passwords import problem
from .sites import InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_password(password: str, email: str = "") -> None:
    found = problem(password, email)
    if found:
        raise InvalidInput(found)


def create_user(email: str, password: str, role: str = "admin") -> User:
    """Create and commit a user; the password is stored only as a salted scrypt hash."""
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise InvalidInput(f"not an email address: {email!r}")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    check_password(password, email)
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


def change_password(user_id: int, current: str, new: str, confirm: str) -> User:
    """Set a new password after checking the current one; every session of the user ends
    (this one is renewed by the caller)."""
    user = db.session.get(User, user_id)
    if user is None or not check_password_hash(user.password_hash, current):
        raise InvalidInput("the current password is not right")
    if new != confirm:
        raise InvalidInput("the two new passwords differ")
    if new == current:
        raise InvalidInput("the new password is the current one")
    check_password(new, user.email)
    user.password_hash = generate_password_hash(new, "scrypt")
    user.session_epoch += 1
    db.session.commit()
    return user


def set_role(user_id: int, role: str, acting_user_id: int) -> User:
    """Change another user's role; their sessions end, so a demotion takes effect at once."""
    if user_id == acting_user_id:
        raise InvalidInput("you cannot change your own role")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    user = db.session.get(User, user_id)
    if user is None:
        raise InvalidInput("no such user")
    if user.role != role:
        user.role = role
        user.session_epoch += 1
        db.session.commit()
    return user
