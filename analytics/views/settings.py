"""Settings (admins only): sites and their share links, collector categories, users.

Every change is a POST (CSRF-checked like every form) answered by a redirect back here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..auth import admin_required
from ..categories import add_category, remove_category
from ..extensions import db
from ..filters import parse_filters
from ..ingest.sites import forget_sites
from ..models import ROLES, Category, Site, User
from ..sites import (
    InvalidInput,
    create_site,
    disable_sharing,
    enable_sharing,
    script_tag,
    set_origins,
    set_retention,
)
from ..users import create_user, delete_user

bp = Blueprint("settings", __name__, url_prefix="/settings")


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def _site(site_id: int) -> Site:
    site = db.session.get(Site, site_id)
    if site is None:
        abort(404)
    return site


def _attempt(action: Callable[[], Any], done: str) -> Response:
    """Run one change; flash its outcome (the error in words) and go back to the page."""
    try:
        action()
    except InvalidInput as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(done)
    return redirect(url_for("settings.index"))


def share_url(site: Site) -> str | None:
    if not site.share_token:
        return None
    query = urlencode({"site": site.public_id, "share": site.share_token})
    return f"{request.host_url.rstrip('/')}/overview?{query}"


@bp.get("")
@admin_required
def index() -> str:
    sites = list(db.session.execute(select(Site).order_by(Site.name, Site.id)).scalars())
    return render_template(
        "settings/index.html",
        # The nav keeps the site and period the admin came from; no filter bar on this page.
        filters=parse_filters(request.args, sites) if sites else None,
        hide_filter_bar=True,
        sites=sites,
        site_rows=[
            {"site": s, "tag": script_tag(s, request.host_url), "share": share_url(s)}
            for s in sites
        ],
        categories=list(db.session.execute(select(Category).order_by(Category.name)).scalars()),
        users=list(db.session.execute(select(User).order_by(User.email)).scalars()),
        roles=ROLES,
    )


@bp.post("/sites")
@admin_required
def site_create() -> Response:
    name = request.form.get("name", "")

    def create() -> None:
        create_site(name, _lines(request.form.get("origins")))
        forget_sites(current_app)

    return _attempt(create, f"Site {name.strip()!r} created. Paste its script tag below.")


@bp.post("/sites/<int:site_id>/origins")
@admin_required
def site_origins(site_id: int) -> Response:
    site = _site(site_id)

    def change() -> None:
        set_origins(site, _lines(request.form.get("origins")))
        forget_sites(current_app)  # the ingest path caches each site's origins

    return _attempt(change, f"Origins of {site.name!r} saved.")


@bp.post("/sites/<int:site_id>/retention")
@admin_required
def site_retention(site_id: int) -> Response:
    site = _site(site_id)
    months = request.form.get("retention_months", "")
    return _attempt(
        lambda: set_retention(site, months),
        f"{site.name!r} keeps raw events for {months.strip()} months (applied by `purge`).",
    )


@bp.post("/sites/<int:site_id>/share")
@admin_required
def site_share(site_id: int) -> Response:
    site = _site(site_id)
    if request.form.get("action") == "revoke":
        return _attempt(lambda: disable_sharing(site), f"Share link of {site.name!r} revoked.")
    return _attempt(lambda: enable_sharing(site), f"New share link for {site.name!r} created.")


@bp.post("/categories")
@admin_required
def category_add() -> Response:
    name = request.form.get("name", "")
    return _attempt(lambda: add_category(name), f"Category {name.strip()!r} added.")


@bp.post("/categories/<int:category_id>/delete")
@admin_required
def category_delete(category_id: int) -> Response:
    return _attempt(lambda: remove_category(category_id), "Category removed.")


@bp.post("/users")
@admin_required
def user_create() -> Response:
    form = request.form
    return _attempt(
        lambda: create_user(
            form.get("email", ""), form.get("password", ""), form.get("role", "viewer")
        ),
        f"User {form.get('email', '').strip().lower()} created.",
    )


@bp.post("/users/<int:user_id>/delete")
@admin_required
def user_delete(user_id: int) -> Response:
    return _attempt(lambda: delete_user(user_id, current_user.id), "User deleted.")
