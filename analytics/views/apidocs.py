"""The OpenAPI document and a readable page made from it, both served by the app (no CDN)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, render_template

from ..openapi import build_spec

bp = Blueprint("apidocs", __name__)


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(build_spec())


@bp.get("/api/docs")
def docs() -> str:
    spec = build_spec()
    return render_template(
        "api_docs.html",
        spec=spec,
        schemas=spec["components"]["schemas"],
        dumps=lambda value: json.dumps(value, indent=2, ensure_ascii=False),
    )
