"""The app factory: configuration, extensions, blueprints, CLI and error handlers. Wiring only."""

from __future__ import annotations

import os
import secrets
from typing import Any

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import partitions, replica
from .config import DEFAULTS, from_environment
from .extensions import db, migrate


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `test_config` on top."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    _require_secret_key(app)

    replica.init_app(app)
    db.init_app(app)
    migrate.init_app(
        app, db, directory=_migrations_dir(), include_object=partitions.outside_partitions
    )
    from . import (
        auth,
        models,  # noqa: F401  (register the tables with the metadata)
        security,
    )
    from .views import api, apidocs, collect, common, compat, explorer, health, settings
    from .views import assets as asset_views
    from .views import auth as auth_views
    from .views import dashboard as dashboard_views
    from .views import demo as demo_views
    from .views import export as export_views
    from .views import live as live_views

    auth.init_app(app)
    security.init_app(app)
    common.init_app(app)
    for blueprint in (
        collect.bp,
        health.bp,
        apidocs.bp,
        auth_views.bp,
        settings.bp,
        compat.bp,
        explorer.bp,
        export_views.bp,
        dashboard_views.bp,
        live_views.bp,
        asset_views.bp,
        demo_views.bp,
        api.bp,
    ):
        app.register_blueprint(blueprint)
    replica.readers(app, dashboard_views.bp, live_views.bp, explorer.bp, export_views.bp, api.bp)
    security.exempt(collect.bp, compat.bp, api.bp)
    security.sessionless(app, api.bp)  # a token, never a cookie
    security.public(app, collect.bp, compat.bp, health.bp, apidocs.bp)

    from .rollups import background as rollup_refresher

    rollup_refresher.init_app(app)

    proxies = app.config["PROXY_COUNT"]
    if proxies:
        # Behind N reverse proxies, take the client address from X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    from .views.direct import DirectIngest

    # Outermost: the ingest POSTs skip even ProxyFix (it reads the address itself).
    app.wsgi_app = DirectIngest(app, app.wsgi_app, proxies)  # type: ignore[method-assign]

    from .errors import register_error_handlers

    register_error_handlers(app)

    from .cli import register_cli

    register_cli(app)
    return app


def _migrations_dir() -> str:
    """The repository's migrations/ beside the package, else ./migrations (installed package)."""
    beside = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
    return beside if os.path.isdir(beside) else os.path.abspath("migrations")


def _require_secret_key(app: Flask) -> None:
    """Refuse to serve without SECRET_KEY, except in debug, tests and one-off CLI commands."""
    if app.config.get("SECRET_KEY"):
        return
    in_cli = click.get_current_context(silent=True) is not None
    if app.debug or app.testing or in_cli:
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        return
    raise RuntimeError(
        "SECRET_KEY is not set. Set it to a long random string, e.g. "
        "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
    )
