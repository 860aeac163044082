"""Settings (admins only): sites with their share links, goals and funnels, collector
categories, users, the admin's own password, and the audit log of all of these. API tokens
(`/settings/tokens`) are for every logged-in user: their own, and everyone's for an admin.

Every change is a POST (CSRF-checked like every form) answered by a redirect back here, and is
written to the audit log (who, what, when).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..audit import latest, record
from ..auth import account, admin_required, login_required
from ..categories import add_category, remove_category
from ..extensions import db
from ..filters import parse_filters
from ..goals import (
    create_funnel,
    create_goal,
    delete_funnel,
    delete_goal,
    describe,
    funnels_of,
    goals_of,
    parse_props,
    step_text,
)
from ..ingest.sites import forget_sites
from ..models import GOAL_KINDS, ROLES, Category, Funnel, Goal, Site, User
from ..sites import (
    InvalidInput,
    create_site,
    disable_sharing,
    enable_sharing,
    script_tag,
    set_origins,
    set_retention,
)
from ..users import change_password, create_user, delete_user, set_role

bp = Blueprint("settings", __name__, url_prefix="/settings")


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def _site(site_id: int) -> Site:
    site = db.session.get(Site, site_id)
    if site is None:
        abort(404)
    return site


def _attempt(action: Callable[[], Any], done: str, audit: tuple[str, str]) -> Response:
    """Run one change; log it in the audit log; flash its outcome (the error in words) and go
    back to the page."""
    try:
        action()
    except InvalidInput as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        record(*audit)
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
            {
                "site": s,
                "tag": script_tag(s, request.host_url),
                "share": share_url(s),
                "goals": [(g, describe(g)) for g in goals_of(s.id)],
                "funnels": [
                    (f, " → ".join(step_text(step) for step in f.steps)) for f in funnels_of(s.id)
                ],
            }
            for s in sites
        ],
        goal_kinds=GOAL_KINDS,
        categories=list(db.session.execute(select(Category).order_by(Category.name)).scalars()),
        users=list(db.session.execute(select(User).order_by(User.email)).scalars()),
        roles=ROLES,
        audit=latest(),
    )


@bp.post("/sites")
@admin_required
def site_create() -> Response:
    name = request.form.get("name", "")

    def create() -> None:
        create_site(name, _lines(request.form.get("origins")))
        forget_sites(current_app)

    return _attempt(
        create,
        f"Site {name.strip()!r} created. Paste its script tag below.",
        ("site.create", f"{name.strip()!r}, origins: {_lines(request.form.get('origins'))}"),
    )


@bp.post("/sites/<int:site_id>/origins")
@admin_required
def site_origins(site_id: int) -> Response:
    site = _site(site_id)

    def change() -> None:
        set_origins(site, _lines(request.form.get("origins")))
        forget_sites(current_app)  # the ingest path caches each site's origins

    return _attempt(
        change,
        f"Origins of {site.name!r} saved.",
        ("site.origins", f"{site.public_id}: {_lines(request.form.get('origins'))}"),
    )


@bp.post("/sites/<int:site_id>/retention")
@admin_required
def site_retention(site_id: int) -> Response:
    site = _site(site_id)
    months = request.form.get("retention_months", "")
    return _attempt(
        lambda: set_retention(site, months),
        f"{site.name!r} keeps raw events for {months.strip()} months (applied by `purge`).",
        ("site.retention", f"{site.public_id}: {months.strip()[:10]} months"),
    )


@bp.post("/sites/<int:site_id>/share")
@admin_required
def site_share(site_id: int) -> Response:
    site = _site(site_id)
    if request.form.get("action") == "revoke":
        return _attempt(
            lambda: disable_sharing(site),
            f"Share link of {site.name!r} revoked.",
            ("share.revoke", site.public_id),
        )
    return _attempt(
        lambda: enable_sharing(site),
        f"New share link for {site.name!r} created.",
        ("share.create", site.public_id),
    )


@bp.post("/sites/<int:site_id>/goals")
@admin_required
def goal_add(site_id: int) -> Response:
    """A goal from the form: `kind` says which of path, event_name (+ props), item_id count."""
    site, form = _site(site_id), request.form
    name, kind = form.get("name", "").strip(), form.get("kind", "")

    def add() -> None:
        create_goal(
            site,
            name,
            kind,
            path=form.get("path"),
            event_name=form.get("event_name"),
            props=parse_props(p for p in (form.get("props") or "").splitlines() if p.strip()),
            item_id=form.get("item_id"),
        )

    return _attempt(
        add,
        f"Goal {name!r} added to {site.name!r}.",
        ("goal.add", f"{site.public_id}: {name!r} ({kind[:16]})"),
    )


@bp.post("/sites/<int:site_id>/goals/<int:goal_id>/delete")
@admin_required
def goal_delete(site_id: int, goal_id: int) -> Response:
    site, found = _site(site_id), db.session.get(Goal, goal_id)
    if found is None or found.site_id != site.id:
        abort(404)
    name = found.name
    return _attempt(
        lambda: delete_goal(site, name),
        f"Goal {name!r} deleted.",
        ("goal.delete", f"{site.public_id}: {name!r}"),
    )


@bp.post("/sites/<int:site_id>/funnels")
@admin_required
def funnel_add(site_id: int) -> Response:
    """A funnel from the form: one step a line (path:/x, event:NAME or a goal's name)."""
    site, form = _site(site_id), request.form
    name, steps = form.get("name", "").strip(), (form.get("steps") or "").splitlines()
    return _attempt(
        lambda: create_funnel(site, name, steps),
        f"Funnel {name!r} added to {site.name!r}.",
        ("funnel.add", f"{site.public_id}: {name!r}: {[s.strip() for s in steps if s.strip()]}"),
    )


@bp.post("/sites/<int:site_id>/funnels/<int:funnel_id>/delete")
@admin_required
def funnel_delete(site_id: int, funnel_id: int) -> Response:
    site, found = _site(site_id), db.session.get(Funnel, funnel_id)
    if found is None or found.site_id != site.id:
        abort(404)
    name = found.name
    return _attempt(
        lambda: delete_funnel(site, name),
        f"Funnel {name!r} deleted.",
        ("funnel.delete", f"{site.public_id}: {name!r}"),
    )


@bp.post("/categories")
@admin_required
def category_add() -> Response:
    name = request.form.get("name", "")
    return _attempt(
        lambda: add_category(name),
        f"Category {name.strip()!r} added.",
        ("category.add", repr(name.strip())),
    )


@bp.post("/categories/<int:category_id>/delete")
@admin_required
def category_delete(category_id: int) -> Response:
    found = db.session.get(Category, category_id)
    return _attempt(
        lambda: remove_category(category_id),
        "Category removed.",
        ("category.remove", repr(found.name if found else category_id)),
    )


@bp.post("/users")
@admin_required
def user_create() -> Response:
    form = request.form
    return _attempt(
        lambda: create_user(
            form.get("email", ""), form.get("password", ""), form.get("role", "viewer")
        ),
        f"User {form.get('email', '').strip().lower()} created.",
        ("user.create", f"{form.get('email', '').strip().lower()} as {form.get('role')}"),
    )


@bp.post("/users/<int:user_id>/delete")
@admin_required
def user_delete(user_id: int) -> Response:
    found = db.session.get(User, user_id)
    return _attempt(
        lambda: delete_user(user_id, current_user.id),
        "User deleted.",
        ("user.delete", found.email if found else str(user_id)),
    )


@bp.post("/users/<int:user_id>/role")
@admin_required
def user_role(user_id: int) -> Response:
    role = request.form.get("role", "")
    found = db.session.get(User, user_id)
    return _attempt(
        lambda: set_role(user_id, role, current_user.id),
        f"{found.email if found else 'The user'} is now {role}; their sessions have ended.",
        ("user.role", f"{found.email if found else user_id} -> {role[:16]}"),
    )


@bp.post("/password")
@admin_required
def own_password() -> Response:
    """The logged-in admin changes their own password: every session of theirs ends, and this
    one goes on under the new epoch."""
    form = request.form
    try:
        user = change_password(
            current_user.id,
            form.get("current", ""),
            form.get("new", ""),
            form.get("confirm", ""),
        )
    except InvalidInput as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("settings.index"))
    record("user.password", f"{user.email} changed their password")
    session.clear()
    login_user(account(user))
    flash("Password changed. Your other sessions have ended.")
    return redirect(url_for("settings.index"))


# --- API tokens: every user manages their own; admins also see and revoke everyone's --------


def _token_page(new_token: str | None = None) -> Response:
    """The tokens page: the user's own tokens (everyone's for an admin), and a new one once."""
    from ..tokens import every_token, tokens_of

    sites = list(db.session.execute(select(Site).order_by(Site.name, Site.id)).scalars())
    if current_user.is_admin:
        rows = every_token()
    else:
        rows = [(token, current_user.email) for token in tokens_of(current_user.id)]
    html = render_template(
        "settings/tokens.html",
        filters=parse_filters(request.args, sites) if sites else None,
        hide_filter_bar=True,
        sites=sites,
        token_rows=rows,
        new_token=new_token,
    )
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"  # it may hold a token, shown this once
    return response


@bp.get("/tokens")
@login_required
def tokens() -> Response:
    return _token_page()


@bp.post("/tokens")
@login_required
def token_create() -> Response:
    """Create a token for the logged-in user and show it on this answer only (no redirect: a
    token must not travel through the session cookie or a URL)."""
    from ..tokens import create_token

    try:
        row, token = create_token(current_user.id, request.form.get("name", ""))
    except InvalidInput as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("settings.tokens"))
    record("token.create", f"{current_user.email}: {row.prefix}... {row.name!r}")
    return _token_page(new_token=token)


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def token_revoke(token_id: int) -> Response:
    from ..tokens import revoke_token

    try:
        row = revoke_token(token_id, current_user.id, current_user.is_admin)
    except InvalidInput as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        owner = db.session.get(User, row.user_id)
        record("token.revoke", f"{owner.email if owner else row.user_id}: {row.prefix}...")
        flash(f"Token {row.prefix}... revoked: it no longer opens the API.")
    return redirect(url_for("settings.tokens"))
