"""The events explorer and the rejected payloads: raw rows, for logged-in users only."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request

from ..auth import login_required
from ..explorer import error_endpoints, errors_page, events_page
from ..models import SOURCES
from .common import current_filters, render_page

bp = Blueprint("explorer", __name__)


def as_json(value: Any) -> str:
    """Props and payloads as readable JSON text (escaped by the template like any other value)."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@bp.get("/events")
@login_required
def events() -> str:
    filters = current_filters()
    page = events_page(filters, request.args.get("before"))
    return render_page(
        "explorer/events.html",
        filters,
        page=page,
        sources=SOURCES,
        as_json=as_json,
        first_page=not request.args.get("before"),
    )


@bp.get("/errors")
@login_required
def errors() -> str:
    filters = current_filters()
    endpoint = (request.args.get("endpoint") or "").strip()[:64] or None
    page = errors_page(filters, endpoint, request.args.get("before"))
    return render_page(
        "explorer/errors.html",
        filters,
        page=page,
        endpoint=endpoint,
        endpoints=error_endpoints(),
        as_json=as_json,
        first_page=not request.args.get("before"),
    )
