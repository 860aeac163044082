"""Settings (admins only): sites, share links, collector categories, users."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..auth import admin_required

bp = Blueprint("settings", __name__)


@bp.get("/settings")
@admin_required
def index() -> str:
    return render_template("settings/index.html", filters=None, sites=[])
