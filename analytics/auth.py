"""Who may see what: Flask-Login sessions, share links, and the decorators dashboard views use.

- `dashboard_access`: read-only dashboard pages and their chart CSVs. A logged-in user, or anyone
  with the site's share link (`?site=PUBLIC_ID&share=TOKEN`).
- `login_required`: pages with raw data (events explorer, rejected payloads, raw exports): a
  logged-in user only; share links never open them.
- `admin_required`: settings.
Without access, pages redirect to the login page (or to /setup while no user exists yet) and CSV
downloads answer 401. Each marks its view with `access` ("dashboard", "login" or "admin") so tests
can find every protected route.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, abort, g, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user
from sqlalchemy import select

from .extensions import db
from .models import Site, User
from .users import user_count

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see the dashboards."


@dataclass
class Account(UserMixin):
    """The logged-in user as the session sees it (a plain value, detached from the DB session)."""

    id: int
    email: str
    role: str
    epoch: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def get_id(self) -> str:
        """What the session stores: the user and the epoch of their password and role."""
        return f"{self.id}:{self.epoch}"


def account(user: User) -> Account:
    return Account(id=user.id, email=user.email, role=user.role, epoch=user.session_epoch)


@login_manager.user_loader
def load_account(session_id: str) -> Account | None:
    """A session stops working at its next request when its user was deleted, or changed
    password or role since it began (the epoch moved on), whichever node it reaches."""
    user_id, _, epoch = session_id.partition(":")
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_epoch != int(epoch):
        return None
    return account(user)


API_BLUEPRINT = "api"  # the stats API (analytics/views/api.py): token, never session


@login_manager.request_loader
def load_token_account(req: Request) -> Account | None:
    """On the stats API only: the account whose token `Authorization: Bearer` carries.

    API requests have no session (they are sessionless paths), so Flask-Login asks this loader;
    the account then reads what its user may read, with the role as it is now.
    """
    if req.blueprint != API_BLUEPRINT:
        return None
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    from .tokens import authenticate

    owner = authenticate(token.strip())
    if owner is None:
        return None
    return Account(id=owner.user_id, email=owner.email, role=owner.role)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.before_request(_forget_cached_access)


def _forget_cached_access() -> None:
    """Start each request clean: `g` outlives a request when an app context was already pushed
    (tests, scripts), and a user or share link cached there must not leak into the next one."""
    for name in ("_login_user", "share_site", "filters"):
        g.pop(name, None)


def share_site() -> Site | None:
    """The site whose share link this request carries (`site` + matching `share`), if any."""
    if "share_site" not in g:
        g.share_site = None
        token, public_id = request.args.get("share", ""), request.args.get("site", "")
        if token and public_id:
            site = db.session.execute(
                select(Site).where(Site.public_id == public_id)
            ).scalar_one_or_none()
            if site is not None and site.share_token:
                if hmac.compare_digest(site.share_token.encode(), token.encode()):
                    g.share_site = site
    return g.share_site


def visible_sites() -> list[Site]:
    """All sites for a logged-in user; only the shared one for a share-link visitor."""
    if current_user.is_authenticated:
        return list(db.session.execute(select(Site).order_by(Site.name, Site.id)).scalars())
    shared = share_site()
    return [shared] if shared is not None else []


def is_local_path(target: str | None) -> bool:
    """Only same-site paths are followed after login ("/x", never "//evil" or "http://evil")."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _refuse():
    """No access: first-run set-up, 401 for a CSV, else the login page with a way back."""
    if user_count() == 0:
        return redirect(url_for("auth.setup"))
    if request.path.endswith(".csv"):
        abort(401, "Log in to download this file.")
    back = request.full_path.rstrip("?")
    return redirect(url_for(login_manager.login_view, next=back))


View = Callable[..., Any]


def login_required(view: View) -> View:
    """A logged-in user (viewer or admin); share links do not count."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return _refuse()
        return view(*args, **kwargs)

    wrapped.access = "login"  # type: ignore[attr-defined]
    return wrapped


def dashboard_access(view: View) -> View:
    """A logged-in user, or a visitor with the selected site's share link (read-only)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            if share_site() is None:
                return _refuse()
            if request.method not in ("GET", "HEAD"):
                abort(403, "A share link is read-only.")
        return view(*args, **kwargs)

    wrapped.access = "dashboard"  # type: ignore[attr-defined]
    return wrapped


def admin_required(view: View) -> View:
    """A logged-in admin; a viewer gets 403."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return _refuse()
        if not current_user.is_admin:
            abort(403, "Only an admin can change settings.")
        return view(*args, **kwargs)

    wrapped.access = "admin"  # type: ignore[attr-defined]
    return wrapped
